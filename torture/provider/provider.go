package provider

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/eoskit/eos"
	"github.com/eoskit/eos/dedupe"
	"github.com/eoskit/eos/driver"
	"github.com/eoskit/eos/httpidem"
)

// ChargesPath is the charge endpoint.
const ChargesPath = "/v1/charges"

// maxBody bounds a charge request.
const maxBody = 64 << 10

// Charge is a charge request.
type Charge struct {
	OrderID string `json:"order_id"`
	Account string `json:"account"`
	Amount  int64  `json:"amount"`
}

// Result is an executed charge, as answered and listed.
type Result struct {
	ChargeID string    `json:"charge_id"`
	OrderID  string    `json:"order_id"`
	Account  string    `json:"account"`
	Amount   int64     `json:"amount"`
	Status   string    `json:"status"`
	Created  time.Time `json:"created"`
}

// Ledger records executed charges in the transaction of the request's key.
type Ledger[TTx any] interface {
	Record(ctx context.Context, tx TTx, r Result) error
	Charges(ctx context.Context) ([]Result, error)
}

// Provider serves the simulator's endpoints.
type Provider struct {
	mux *http.ServeMux
}

func (p *Provider) ServeHTTP(w http.ResponseWriter, r *http.Request) { p.mux.ServeHTTP(w, r) }

// Scope scopes keys by the caller's credentials and the route: a SHA-256
// of the Authorization header, so that no credential is kept in the store.
func Scope(r *http.Request) (string, error) {
	who := "anonymous"
	if a := r.Header.Get("Authorization"); a != "" {
		sum := sha256.Sum256([]byte(a))
		who = "caller-" + hex.EncodeToString(sum[:8])
	}
	return who + " " + r.URL.Path, nil
}

// config fixes what the provider needs of cfg: a key on every charge, and
// the scope by caller unless cfg has one.
func config(cfg httpidem.Config) httpidem.Config {
	if cfg.Scope == nil {
		cfg.Scope = Scope
	}
	cfg.Required = true
	cfg.MaxBody = maxBody
	return cfg
}

// NewTx returns the provider over a SQL store: each charge row commits
// with its key's response.
func NewTx[TTx any](store httpidem.TxStore[TTx], drv driver.Driver[TTx], ledger Ledger[TTx], cfg httpidem.Config) (*Provider, error) {
	m, err := httpidem.NewTx(store, drv, config(cfg))
	if err != nil {
		return nil, err
	}
	p := &Provider{mux: http.NewServeMux()}
	p.mux.Handle("POST "+ChargesPath, m.Handler(func(w http.ResponseWriter, r *http.Request, tx TTx) error {
		return serveCharge(w, r, func(ctx context.Context, res Result) error { return ledger.Record(ctx, tx, res) })
	}))
	p.mux.HandleFunc("GET "+ChargesPath, listHandler(ledger.Charges))
	return p, nil
}

// New returns the provider over any store, its charges kept in memory
// (lost when the process ends; the keys are not).
func New(store dedupe.Store, cfg httpidem.Config) (*Provider, error) {
	m, err := httpidem.New(store, config(cfg))
	if err != nil {
		return nil, err
	}
	var mem memory
	p := &Provider{mux: http.NewServeMux()}
	p.mux.Handle("POST "+ChargesPath, m.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := serveCharge(w, r, mem.record); err != nil {
			http.Error(w, "internal error", http.StatusInternalServerError)
		}
	})))
	p.mux.HandleFunc("GET "+ChargesPath, listHandler(mem.charges))
	return p, nil
}

// serveCharge validates the request, records the charge and answers 201.
// A bad request is answered 400 and returns nil: that answer is final and
// stored like any other.
func serveCharge(w http.ResponseWriter, r *http.Request, record func(context.Context, Result) error) error {
	var c Charge
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "the body is not a charge: want {\"order_id\",\"account\",\"amount\"}"})
		return nil
	}
	if err := c.validate(); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
		return nil
	}
	res := Result{ChargeID: "ch_" + eos.NewID(), OrderID: c.OrderID, Account: c.Account, Amount: c.Amount,
		Status: "succeeded", Created: time.Now().UTC().Truncate(time.Millisecond)}
	if err := record(r.Context(), res); err != nil {
		return err
	}
	w.Header().Set("Location", ChargesPath+"/"+res.ChargeID)
	writeJSON(w, http.StatusCreated, res)
	return nil
}

func (c Charge) validate() error {
	switch {
	case c.OrderID == "" || len(c.OrderID) > 200:
		return errors.New("order_id: want 1 to 200 characters")
	case c.Account == "" || len(c.Account) > 200:
		return errors.New("account: want 1 to 200 characters")
	case c.Amount <= 0:
		return fmt.Errorf("amount: want > 0, got %d", c.Amount)
	}
	return nil
}

func listHandler(list func(context.Context) ([]Result, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		cs, err := list(r.Context())
		if err != nil {
			http.Error(w, "internal error", http.StatusInternalServerError)
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"charges": cs, "count": len(cs)})
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// memory is the ledger of New.
type memory struct {
	mu sync.Mutex
	cs []Result
}

func (m *memory) record(_ context.Context, r Result) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.cs = append(m.cs, r)
	return nil
}

func (m *memory) charges(context.Context) ([]Result, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.cs), nil
}
