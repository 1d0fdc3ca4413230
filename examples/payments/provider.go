package payments

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/eoskit/eos"
	"github.com/eoskit/eos/callonce"
	"github.com/eoskit/eos/dedupe"
	"github.com/eoskit/eos/driver/sqlite"
	"github.com/eoskit/eos/httpidem"
)

// ChargesPath is the provider's charge endpoint.
const ChargesPath = "/v1/charges"

// ReplayedHeader is set on an answer replayed for a known Idempotency-Key.
const ReplayedHeader = "Idempotent-Replayed"

// ProviderConfig configures the simulator. The zero value is a provider
// that never fails.
type ProviderConfig struct {
	// FailBefore is the probability that a request fails with 503 before
	// anything is recorded: the Idempotency-Key middleware never sees it.
	FailBefore float64
	// FailAfter is the probability that a request is recorded (charged,
	// its answer stored under its key) and then answered with 500: the
	// client cannot tell whether it was charged and must retry with the
	// same key, which gets the stored answer replayed.
	FailAfter float64
	// Seed seeds the failure draws.
	Seed uint64
	// Now is the clock of the charge records. Default time.Now.
	Now func() time.Time
}

// providerPrefix prefixes eos's tables in the provider's file.
const providerPrefix = "eos_"

// chargeScope is the scope of every key: the simulator has one merchant.
const chargeScope = "merchant " + ChargesPath

// Provider simulates an external payment provider with idempotency keys,
// the way public payment APIs do, on eos's Idempotency-Key middleware
// (httpidem, strict: the key must be the draft's quoted string): the first
// request with a key is executed and its answer stored; every later
// request with the key gets that answer again, byte for byte, with
// Idempotent-Replayed: true (or 422 if its body differs). Its records live
// in their own SQLite file, apart from the scenario's database, as an
// external system's would: the keys in a dedupe.SQL store, and each charge
// row committed in the same transaction as its key's stored answer
// (httpidem.NewTx), so a charge is never recorded without its stored
// answer, nor a 201 stored without its charge.
//
// Charges and keys are separate tables: a client that sent two keys for
// one order would be charged twice, and a checker counting
// [Provider.Charges] per order would see it.
type Provider struct {
	d        *sqlite.Driver
	cfg      ProviderConfig
	h        http.Handler
	mu       sync.Mutex
	rnd      *rand.Rand
	executed atomic.Int64
	replays  atomic.Int64
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
	d, err := sqlite.Open(ctx, path, sqlite.Config{Prefix: providerPrefix, Synchronous: sqlite.SyncNormal, BusyTimeout: 10 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("payments: provider: %w", err)
	}
	p := &Provider{d: d, cfg: cfg, rnd: rand.New(rand.NewPCG(cfg.Seed, cfg.Seed+1))}
	if err := p.init(ctx); err != nil {
		d.Close()
		return nil, fmt.Errorf("payments: provider: open %s: %w", path, err)
	}
	return p, nil
}

// init migrates the file, creates the charges table and builds the
// handler.
func (p *Provider) init(ctx context.Context) error {
	if _, err := p.d.Migrator().Up(ctx); err != nil {
		return err
	}
	for _, s := range []string{
		"CREATE TABLE IF NOT EXISTS charges (charge_id TEXT PRIMARY KEY, order_id TEXT NOT NULL, account TEXT NOT NULL," +
			" amount INTEGER NOT NULL, charged_us INTEGER NOT NULL)",
		"CREATE INDEX IF NOT EXISTS charges_order ON charges (order_id)",
	} {
		if _, err := p.d.DB().ExecContext(ctx, s); err != nil {
			return err
		}
	}
	store, err := dedupe.NewSQL(p.d, dedupe.Config{})
	if err != nil {
		return err
	}
	m, err := httpidem.NewTx(store, p.d, httpidem.Config{
		Scope:    func(*http.Request) (string, error) { return chargeScope, nil },
		Required: true,
		MaxBody:  maxChargeBody,
		// A retry sent while the first request still runs (the client
		// timed out) waits for its answer rather than getting 409.
		Wait:  5 * time.Second,
		Hooks: []httpidem.Hook{replayCounter{&p.replays}},
	})
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.Handle("POST "+ChargesPath, m.Handler(p.charge))
	p.h = mux
	return nil
}

// maxChargeBody bounds a charge request.
const maxChargeBody = 64 << 10

// replayCounter counts the requests answered with a stored answer.
type replayCounter struct{ n *atomic.Int64 }

func (c replayCounter) OnOutcome(_ context.Context, o httpidem.Outcome, _ error) {
	if o == httpidem.OutcomeReplayed {
		c.n.Add(1)
	}
}

// Close closes the records.
func (p *Provider) Close() error { return p.d.Close() }

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

// apiError is the simulator's own error body; the Idempotency-Key
// middleware answers application/problem+json (title, detail) instead.
type apiError struct {
	Error string `json:"error"`
}

// errorBody reads an error answer: the simulator's {"error"}, a problem's
// title and detail, or else the bare text.
func errorBody(data []byte) string {
	var e struct {
		Error  string `json:"error"`
		Title  string `json:"title"`
		Detail string `json:"detail"`
	}
	switch {
	case json.Unmarshal(data, &e) != nil:
	case e.Error != "":
		return e.Error
	case e.Title != "" && e.Detail != "":
		return e.Title + ": " + e.Detail
	case e.Title != "":
		return e.Title
	}
	return strings.TrimSpace(string(data))
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// ServeHTTP serves POST /v1/charges with an Idempotency-Key header and a
// JSON Charge body, failing now and then as ProviderConfig says.
func (p *Provider) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == ChargesPath && r.Method == http.MethodPost && p.draw(p.cfg.FailBefore) {
		writeJSON(w, http.StatusServiceUnavailable, apiError{"simulated outage (nothing charged)"})
		return
	}
	if r.URL.Path == ChargesPath && r.Method == http.MethodPost && p.draw(p.cfg.FailAfter) {
		// The request runs to its end (charged and stored, or replayed);
		// its answer is lost on the way back.
		sw := &statusWriter{header: http.Header{}}
		p.h.ServeHTTP(sw, r)
		p.count(sw.status, sw.header)
		if sw.status/100 == 2 {
			writeJSON(w, http.StatusInternalServerError, apiError{"simulated failure after charging"})
			return
		}
		for k, v := range sw.header {
			w.Header()[k] = v
		}
		w.WriteHeader(sw.status)
		w.Write(sw.body.Bytes())
		return
	}
	p.h.ServeHTTP(&countingWriter{ResponseWriter: w, p: p}, r)
}

// count counts an executed charge from its answer: the middleware sends
// a 201 only after the charge's transaction committed, and a replay
// carries the replayed header.
func (p *Provider) count(status int, h http.Header) {
	if status == http.StatusCreated && h.Get(ReplayedHeader) != "true" {
		p.executed.Add(1)
	}
}

// countingWriter passes an answer on, counting it (Provider.count).
type countingWriter struct {
	http.ResponseWriter
	p     *Provider
	wrote bool
}

func (c *countingWriter) WriteHeader(status int) {
	if !c.wrote {
		c.wrote = true
		c.p.count(status, c.Header())
	}
	c.ResponseWriter.WriteHeader(status)
}

func (c *countingWriter) Write(b []byte) (int, error) {
	if !c.wrote {
		c.WriteHeader(http.StatusOK)
	}
	return c.ResponseWriter.Write(b)
}

// statusWriter keeps an answer instead of sending it.
type statusWriter struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (s *statusWriter) Header() http.Header { return s.header }

func (s *statusWriter) WriteHeader(status int) {
	if s.status == 0 {
		s.status = status
	}
}

func (s *statusWriter) Write(b []byte) (int, error) {
	s.WriteHeader(http.StatusOK)
	return s.body.Write(b)
}

// charge executes one charge in the transaction that stores its key's
// answer. A malformed charge is answered 400, which is stored too: the
// same request stays refused.
func (p *Provider) charge(w http.ResponseWriter, r *http.Request, tx *sql.Tx) error {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxChargeBody))
	if err != nil {
		return err
	}
	c, err := ParseCharge(body)
	if err != nil {
		writeJSON(w, http.StatusBadRequest, apiError{err.Error()})
		return nil
	}
	res := ChargeResult{ChargeID: "ch_" + eos.NewID(), OrderID: c.OrderID, Account: c.Account, Amount: c.Amount, Status: "succeeded"}
	if _, err := tx.ExecContext(r.Context(), "INSERT INTO charges (charge_id, order_id, account, amount, charged_us) VALUES (?, ?, ?, ?, ?)",
		res.ChargeID, c.OrderID, c.Account, c.Amount, p.cfg.Now().UnixMicro()); err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, res)
	return nil
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
	rows, err := p.d.DB().QueryContext(ctx, "SELECT charge_id, order_id, account, amount, charged_us FROM charges")
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
	Keys    int64 // idempotency keys seen (answered or in progress)
	// Replays counts the requests this Provider answered with a stored
	// answer since it was opened (the middleware's replayed outcome).
	Replays int64
}

// Stats counts the records.
func (p *Provider) Stats(ctx context.Context) (ProviderStats, error) {
	s := ProviderStats{Replays: p.replays.Load()}
	err := p.d.DB().QueryRowContext(ctx, "SELECT (SELECT count(DISTINCT order_id) FROM charges),"+
		" (SELECT count(*) FROM "+providerPrefix+"dedupe)").Scan(&s.Charged, &s.Keys)
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
// errors, rate limiting, and 409 (the key's first request still running,
// e.g. after a client timeout). Another 4xx will not change.
func (e *ProviderError) Temporary() bool {
	return e.Status >= 500 || e.Status == http.StatusTooManyRequests || e.Status == http.StatusRequestTimeout ||
		e.Status == http.StatusConflict
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
		return ChargeResult{}, &ProviderError{Status: resp.StatusCode, Message: errorBody(data)}
	}
	var res ChargeResult
	if err := json.Unmarshal(data, &res); err != nil || res.ChargeID == "" {
		return ChargeResult{}, fmt.Errorf("payments: provider: unreadable answer %q", data)
	}
	res.Replayed = resp.Header.Get(ReplayedHeader) == "true"
	return res, nil
}
