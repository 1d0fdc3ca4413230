package payments_test

import (
	"context"
	"database/sql"
	"errors"
	"go/parser"
	"go/token"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/eoskit/eos/examples/payments"
)

func TestParseOrder(t *testing.T) {
	for _, c := range []struct {
		payload string
		want    string // "" for valid, else a substring of the error
	}{
		{`{"order_id":"o1","account":"a","amount":5}`, ""},
		{`{"order_id":"o1","account":"a","amount":5,"note":"extra fields are fine"}`, ""},
		{`{"order_id": "o1", "amount": `, "not JSON"},
		{`not json`, "not JSON"},
		{`{"account":"a","amount":5}`, "missing order_id"},
		{`{"order_id":"o1","amount":5}`, "missing account"},
		{`{"order_id":"o1","account":"a","amount":-5}`, "amount must be positive, got -5"},
		{`{"order_id":"o1","account":"a","amount":0}`, "amount must be positive"},
		{`{"order_id":"o1","account":"a","amount":1.5}`, "field amount"},
		{`{"order_id":"o1","account":"a","amount":"5"}`, "field amount"},
		{`{"order_id":"o1","account":"a","amount":100000000001}`, "exceeds the maximum"},
	} {
		o, err := payments.ParseOrder([]byte(c.payload))
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%s: %v", c.payload, err)
		case c.want == "" && (o.ID != "o1" || o.Account != "a" || o.Amount != 5):
			t.Errorf("%s: parsed %+v", c.payload, o)
		case c.want != "":
			var ie *payments.InputError
			if !errors.As(err, &ie) || !strings.Contains(err.Error(), c.want) {
				t.Errorf("%s: got %v, want an InputError with %q", c.payload, err, c.want)
			}
		}
	}
}

func TestMalformedAreRefused(t *testing.T) {
	for _, b := range payments.Malformed("acct-0000") {
		o, err := payments.ParseOrder(b.Message.Payload)
		if err == nil && !b.NoMessageID && o.Account == "acct-0000" {
			t.Errorf("%s (%s) parses as a valid order of an existing account", b.Message.ID, b.Why)
		}
	}
}

func TestGenerateOrdersIsDeterministic(t *testing.T) {
	a, b := payments.GenerateOrders(7, 100, 10), payments.GenerateOrders(7, 100, 10)
	for i := range a {
		if a[i] != b[i] {
			t.Fatalf("order %d differs: %+v %+v", i, a[i], b[i])
		}
		if a[i].Amount < 1 || a[i].Amount > 10_000 {
			t.Fatalf("amount %d out of range", a[i].Amount)
		}
	}
	if c := payments.GenerateOrders(8, 100, 10); c[0] == a[0] && c[1] == a[1] && c[2] == a[2] {
		t.Fatal("another seed gives the same orders")
	}
}

func openProvider(t *testing.T, path string, cfg payments.ProviderConfig) (*payments.Provider, *payments.ProviderClient, string) {
	t.Helper()
	p, err := payments.OpenProvider(context.Background(), path, cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(p)
	t.Cleanup(func() { srv.Close(); p.Close() })
	c, err := payments.NewProviderClient(srv.URL, nil)
	if err != nil {
		t.Fatal(err)
	}
	return p, c, srv.URL
}

func TestProviderIdempotency(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "provider.db")
	p, c, url := openProvider(t, path, payments.ProviderConfig{})
	ch := payments.Charge{OrderID: "o1", Account: "a", Amount: 500}
	first, err := c.Charge(ctx, ch)
	if err != nil || first.Replayed || first.ChargeID == "" {
		t.Fatalf("first charge: %+v %v", first, err)
	}
	again, err := c.Charge(ctx, ch)
	if err != nil || !again.Replayed || again.ChargeID != first.ChargeID {
		t.Fatalf("retry: %+v %v, want a replay of %s", again, err, first.ChargeID)
	}
	var pe *payments.ProviderError
	if _, err := c.Charge(ctx, payments.Charge{OrderID: "o1", Account: "a", Amount: 501}); !errors.As(err, &pe) ||
		pe.Status != http.StatusUnprocessableEntity || pe.Temporary() {
		t.Fatalf("same key, other amount: %v", err)
	}
	resp, err := http.Post(url+payments.ChargesPath, "application/json",
		strings.NewReader(`{"order_id":"o2","account":"a","amount":1}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("no Idempotency-Key: status %d", resp.StatusCode)
	}
	// The key must be the draft's quoted string (callonce.SetHeader sends
	// it so): a bare key is refused before anything runs.
	req, _ := http.NewRequest(http.MethodPost, url+payments.ChargesPath, strings.NewReader(`{"order_id":"o2","account":"a","amount":1}`))
	req.Header.Set("Idempotency-Key", "o2")
	if resp, err = http.DefaultClient.Do(req); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/problem+json") {
		t.Fatalf("unquoted Idempotency-Key: status %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	if st, err := p.Stats(ctx); err != nil || st.Charged != 1 || st.Keys != 1 || st.Replays != 1 {
		t.Fatalf("stats %+v %v", st, err)
	}
	if p.Executed() != 1 {
		t.Fatalf("executed %d", p.Executed())
	}

	// A provider failing before it records anything: temporary, no charge.
	_, down, _ := openProvider(t, path, payments.ProviderConfig{FailBefore: 1})
	if _, err := down.Charge(ctx, payments.Charge{OrderID: "o3", Account: "a", Amount: 1}); !errors.As(err, &pe) || !pe.Temporary() {
		t.Fatalf("outage: %v", err)
	}
	// One failing after it charged: temporary, and the retry replays.
	_, flaky, _ := openProvider(t, path, payments.ProviderConfig{FailAfter: 1})
	if _, err := flaky.Charge(ctx, payments.Charge{OrderID: "o4", Account: "a", Amount: 1}); !errors.As(err, &pe) || !pe.Temporary() {
		t.Fatalf("failure after charging: %v", err)
	}
	p2, c2, _ := openProvider(t, path, payments.ProviderConfig{})
	if r, err := c2.Charge(ctx, payments.Charge{OrderID: "o4", Account: "a", Amount: 1}); err != nil || !r.Replayed {
		t.Fatalf("retry after the failure: %+v %v", r, err)
	}
	charges, err := p2.Charges(ctx)
	if err != nil || len(charges) != 2 {
		t.Fatalf("records after reopening: %v %v", charges, err)
	}
}

// The example is meant to be copied out of the repository: neither its code
// nor its tests may import a package internal to eos.
func TestNoInternalImports(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil || len(files) == 0 {
		t.Fatalf("no Go files: %v", err)
	}
	fset := token.NewFileSet()
	for _, name := range files {
		f, err := parser.ParseFile(fset, name, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range f.Imports {
			if path := strings.Trim(imp.Path.Value, `"`); strings.HasPrefix(path, "github.com/eoskit/eos/") && strings.Contains(path+"/", "/internal/") {
				t.Errorf("%s imports %s", name, path)
			}
		}
	}
}

func TestStoreValidate(t *testing.T) {
	for _, s := range []payments.Store{
		{Dialect: payments.Postgres},
		{DB: &sql.DB{}, Dialect: "oracle"},
		{DB: &sql.DB{}, Dialect: payments.SQLite, Schema: "s"},
		{DB: &sql.DB{}, Dialect: payments.Postgres, Schema: "Bad-Name"},
		{DB: &sql.DB{}, Dialect: payments.Postgres, Schema: "x; DROP TABLE accounts"},
	} {
		if err := s.Validate(); err == nil {
			t.Errorf("%+v: valid", s)
		}
	}
	if err := (payments.Store{DB: &sql.DB{}, Dialect: payments.Postgres, Schema: "pay_1"}).Validate(); err != nil {
		t.Errorf("a plain schema name: %v", err)
	}
}
