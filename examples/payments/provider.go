package payments

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/eoskit/eos"
	"github.com/eoskit/eos/callonce"

	_ "modernc.org/sqlite" // database/sql driver "sqlite" for the provider's records
)

// ChargesPath is the provider's charge endpoint.
const ChargesPath = "/v1/charges"

// ReplayedHeader is set on an answer replayed for a known Idempotency-Key.
const ReplayedHeader = "Idempotent-Replayed"

// ProviderConfig configures the simulator. The zero value is a provider
// that never fails.
type ProviderConfig struct {
	// FailBefore is the probability that a request fails with 503 before
	// anything is recorded.
	FailBefore float64
	// FailAfter is the probability that a request is recorded (charged) and
	// then answered with 500: the client cannot tell whether it was charged
	// and must retry with the same key, which replays the charge.
	FailAfter float64
	// Seed seeds the failure draws.
	Seed uint64
	// Now is the clock. Default time.Now.
	Now func() time.Time
}

// Provider simulates an external payment provider with idempotency keys,
// the way public payment APIs do: the first request with a key is executed
// and its answer stored; every later request with the key gets that answer
// again (or 422 if its body differs). Its records live in their own SQLite
// file, apart from the scenario's database, as an external system's would.
//
// Charges and idempotency keys are separate tables: a client that sent two
// keys for one order would be charged twice, and [Check] would count it.
type Provider struct {
	db       *sql.DB
	cfg      ProviderConfig
	mu       sync.Mutex
	rnd      *rand.Rand
	executed atomic.Int64
}

// OpenProvider opens (creating if needed) the provider's records at path.
//
// The file is written with synchronous=NORMAL: in WAL mode that loses
// nothing when a process dies, only on power loss, which the simulator does
// not need to survive.
func OpenProvider(ctx context.Context, path string, cfg ProviderConfig) (*Provider, error) {
	if cfg.FailBefore < 0 || cfg.FailBefore > 1 || cfg.FailAfter < 0 || cfg.FailAfter > 1 {
		return nil, fmt.Errorf("payments: provider failure probabilities must be within 0..1")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	// Created here, owner-only, before SQLite creates it with 0644: its -wal
	// and -shm files take the database file's mode.
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("payments: provider: %w", err)
	}
	if err := errors.Join(f.Chmod(0o600), f.Close()); err != nil {
		return nil, fmt.Errorf("payments: provider: %w", err)
	}
	q := url.Values{}
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous(NORMAL)")
	q.Add("_pragma", "busy_timeout(10000)")
	q.Set("_txlock", "immediate")
	db, err := sql.Open("sqlite", "file:"+path+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("payments: provider: %w", err)
	}
	db.SetMaxOpenConns(1)
	for _, s := range []string{
		"CREATE TABLE IF NOT EXISTS idempotency_keys (key TEXT PRIMARY KEY, request_hash BLOB NOT NULL, charge_id TEXT NOT NULL," +
			" requests INTEGER NOT NULL, created_us INTEGER NOT NULL)",
		"CREATE TABLE IF NOT EXISTS charges (charge_id TEXT PRIMARY KEY, order_id TEXT NOT NULL, account TEXT NOT NULL," +
			" amount INTEGER NOT NULL, charged_us INTEGER NOT NULL)",
		"CREATE INDEX IF NOT EXISTS charges_order ON charges (order_id)",
	} {
		if _, err := db.ExecContext(ctx, s); err != nil {
			db.Close()
			return nil, fmt.Errorf("payments: provider: open %s: %w", path, err)
		}
	}
	return &Provider{db: db, cfg: cfg, rnd: rand.New(rand.NewPCG(cfg.Seed, cfg.Seed+1))}, nil
}

// Close closes the records.
func (p *Provider) Close() error { return p.db.Close() }

func (p *Provider) draw(prob float64) bool {
	if prob <= 0 {
		return false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.rnd.Float64() < prob
}

// ChargeResult is the provider's answer to a charge.
type ChargeResult struct {
	ChargeID string `json:"charge_id"`
	OrderID  string `json:"order_id"`
	Account  string `json:"account"`
	Amount   int64  `json:"amount"`
	Status   string `json:"status"`
	// Replayed is set when the answer is the stored one for a key seen
	// before (the Idempotent-Replayed header).
	Replayed bool `json:"-"`
}

type apiError struct {
	Error string `json:"error"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// ServeHTTP serves POST /v1/charges with an Idempotency-Key header and a
// JSON Charge body.
func (p *Provider) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != ChargesPath {
		writeJSON(w, http.StatusNotFound, apiError{"no such endpoint: " + r.URL.Path})
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		writeJSON(w, http.StatusMethodNotAllowed, apiError{"use POST"})
		return
	}
	key := idempotencyKey(r.Header.Get("Idempotency-Key"))
	if key == "" {
		writeJSON(w, http.StatusBadRequest, apiError{"missing Idempotency-Key header"})
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 64<<10))
	if err != nil {
		writeJSON(w, http.StatusBadRequest, apiError{"reading body: " + err.Error()})
		return
	}
	c, err := ParseCharge(body)
	if err != nil {
		writeJSON(w, http.StatusBadRequest, apiError{err.Error()})
		return
	}
	if p.draw(p.cfg.FailBefore) {
		writeJSON(w, http.StatusServiceUnavailable, apiError{"simulated outage (nothing charged)"})
		return
	}
	res, status, err := p.charge(r.Context(), key, c)
	if err != nil {
		writeJSON(w, http.StatusInternalServerError, apiError{err.Error()})
		return
	}
	if status == http.StatusUnprocessableEntity {
		writeJSON(w, status, apiError{"Idempotency-Key " + strconv.Quote(key) + " was used with a different request"})
		return
	}
	if p.draw(p.cfg.FailAfter) {
		writeJSON(w, http.StatusInternalServerError, apiError{"simulated failure after charging"})
		return
	}
	if res.Replayed {
		w.Header().Set(ReplayedHeader, "true")
	}
	writeJSON(w, status, res)
}

// idempotencyKey reads the header's value: the IETF draft's Structured
// Field string ("key", with \" and \\ escapes), or, as many payment APIs
// take it, the bare key. A malformed quoted value is no key.
func idempotencyKey(v string) string {
	if len(v) < 2 || v[0] != '"' || v[len(v)-1] != '"' {
		return v
	}
	var b strings.Builder
	for i := 1; i < len(v)-1; i++ {
		switch c := v[i]; {
		case c == '\\':
			if i++; i == len(v)-1 || (v[i] != '"' && v[i] != '\\') {
				return ""
			}
			b.WriteByte(v[i])
		case c == '"':
			return ""
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// charge executes c under key, or replays the stored answer, in one
// transaction.
func (p *Provider) charge(ctx context.Context, key string, c Charge) (ChargeResult, int, error) {
	canon, _ := json.Marshal(c)
	sum := sha256.Sum256(canon)
	tx, err := p.db.BeginTx(ctx, nil)
	if err != nil {
		return ChargeResult{}, 0, err
	}
	defer tx.Rollback()
	var hash []byte
	var chargeID string
	err = tx.QueryRowContext(ctx, "SELECT request_hash, charge_id FROM idempotency_keys WHERE key = ?", key).Scan(&hash, &chargeID)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		chargeID = "ch_" + eos.NewID()
		now := p.cfg.Now().UnixMicro()
		if _, err := tx.ExecContext(ctx, "INSERT INTO charges (charge_id, order_id, account, amount, charged_us) VALUES (?, ?, ?, ?, ?)",
			chargeID, c.OrderID, c.Account, c.Amount, now); err != nil {
			return ChargeResult{}, 0, err
		}
		if _, err := tx.ExecContext(ctx, "INSERT INTO idempotency_keys (key, request_hash, charge_id, requests, created_us) VALUES (?, ?, ?, 1, ?)",
			key, sum[:], chargeID, now); err != nil {
			return ChargeResult{}, 0, err
		}
		if err := tx.Commit(); err != nil {
			return ChargeResult{}, 0, err
		}
		p.executed.Add(1)
		return ChargeResult{ChargeID: chargeID, OrderID: c.OrderID, Account: c.Account, Amount: c.Amount, Status: "succeeded"}, http.StatusCreated, nil
	case err != nil:
		return ChargeResult{}, 0, err
	}
	if _, err := tx.ExecContext(ctx, "UPDATE idempotency_keys SET requests = requests + 1 WHERE key = ?", key); err != nil {
		return ChargeResult{}, 0, err
	}
	if err := tx.Commit(); err != nil {
		return ChargeResult{}, 0, err
	}
	if !bytes.Equal(hash, sum[:]) {
		return ChargeResult{}, http.StatusUnprocessableEntity, nil
	}
	return ChargeResult{ChargeID: chargeID, OrderID: c.OrderID, Account: c.Account, Amount: c.Amount, Status: "succeeded", Replayed: true}, http.StatusOK, nil
}

// ChargeRecord is one charge the provider executed.
type ChargeRecord struct {
	ChargeID  string
	OrderID   string
	Account   string
	Amount    int64
	ChargedAt time.Time
}

// Charges returns every charge the provider executed.
func (p *Provider) Charges(ctx context.Context) ([]ChargeRecord, error) {
	rows, err := p.db.QueryContext(ctx, "SELECT charge_id, order_id, account, amount, charged_us FROM charges")
	if err != nil {
		return nil, fmt.Errorf("payments: provider charges: %w", err)
	}
	defer rows.Close()
	var out []ChargeRecord
	for rows.Next() {
		var r ChargeRecord
		var us int64
		if err := rows.Scan(&r.ChargeID, &r.OrderID, &r.Account, &r.Amount, &us); err != nil {
			return nil, fmt.Errorf("payments: provider charges: %w", err)
		}
		r.ChargedAt = time.UnixMicro(us)
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("payments: provider charges: %w", err)
	}
	return out, nil
}

// Executed returns how many charges this Provider executed since it was
// opened: a free count for progress displays. [Provider.Charges] and
// [Provider.Stats] read the records.
func (p *Provider) Executed() int64 { return p.executed.Load() }

// ProviderStats counts the provider's records.
type ProviderStats struct {
	Charged int64 // distinct orders charged
	Keys    int64 // idempotency keys seen
	Replays int64 // requests answered from a stored key
}

// Stats counts the records.
func (p *Provider) Stats(ctx context.Context) (ProviderStats, error) {
	var s ProviderStats
	err := p.db.QueryRowContext(ctx, "SELECT (SELECT count(DISTINCT order_id) FROM charges),"+
		" (SELECT count(*) FROM idempotency_keys), (SELECT coalesce(sum(requests - 1), 0) FROM idempotency_keys)").Scan(&s.Charged, &s.Keys, &s.Replays)
	if err != nil {
		return ProviderStats{}, fmt.Errorf("payments: provider stats: %w", err)
	}
	return s, nil
}

// ProviderError is a non-2xx answer of the provider.
type ProviderError struct {
	Status  int
	Message string
}

func (e *ProviderError) Error() string {
	return fmt.Sprintf("payments: provider answered %d %s: %s", e.Status, http.StatusText(e.Status), e.Message)
}

// Temporary reports whether retrying with the same key may succeed: server
// errors and rate limiting. A 4xx other than 429 will not change.
func (e *ProviderError) Temporary() bool {
	return e.Status >= 500 || e.Status == http.StatusTooManyRequests || e.Status == http.StatusRequestTimeout
}

// ProviderClient calls the provider.
type ProviderClient struct {
	endpoint string
	hc       *http.Client
}

// NewProviderClient returns a client of the provider at baseURL (e.g.
// "http://127.0.0.1:8080"). hc nil means a client with a 10s timeout.
func NewProviderClient(baseURL string, hc *http.Client) (*ProviderClient, error) {
	u, err := url.Parse(baseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("payments: provider URL %q: want http(s)://host[:port]", baseURL)
	}
	if hc == nil {
		hc = &http.Client{Timeout: 10 * time.Second}
	}
	return &ProviderClient{endpoint: strings.TrimSuffix(baseURL, "/") + ChargesPath, hc: hc}, nil
}

// Charge asks the provider to execute c, with c.OrderID as the
// Idempotency-Key. A non-2xx answer is a *ProviderError.
func (c *ProviderClient) Charge(ctx context.Context, ch Charge) (ChargeResult, error) {
	return c.ChargeWithKey(ctx, ch.OrderID, ch)
}

// ChargeWithKey asks the provider to execute ch, with key as the
// Idempotency-Key (callonce.SetHeader). A non-2xx answer is a
// *ProviderError.
func (c *ProviderClient) ChargeWithKey(ctx context.Context, key string, ch Charge) (ChargeResult, error) {
	body, err := json.Marshal(ch)
	if err != nil {
		return ChargeResult{}, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.endpoint, bytes.NewReader(body))
	if err != nil {
		return ChargeResult{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	callonce.SetHeader(req, key)
	resp, err := c.hc.Do(req)
	if err != nil {
		return ChargeResult{}, fmt.Errorf("payments: provider: %w", err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return ChargeResult{}, fmt.Errorf("payments: provider: reading answer: %w", err)
	}
	if resp.StatusCode/100 != 2 {
		var ae apiError
		if json.Unmarshal(data, &ae) != nil || ae.Error == "" {
			ae.Error = strings.TrimSpace(string(data))
		}
		return ChargeResult{}, &ProviderError{Status: resp.StatusCode, Message: ae.Error}
	}
	var res ChargeResult
	if err := json.Unmarshal(data, &res); err != nil || res.ChargeID == "" {
		return ChargeResult{}, fmt.Errorf("payments: provider: unreadable answer %q", data)
	}
	res.Replayed = resp.Header.Get(ReplayedHeader) == "true"
	return res, nil
}
