package provider_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/eoskit/eos/dedupe"
	"github.com/eoskit/eos/driver/sqlite"
	"github.com/eoskit/eos/httpidem"
	"github.com/eoskit/eos/internal/testdb"
	"github.com/eoskit/eos/torture/provider"
)

// TestBadCharges: a charge the provider refuses is answered 400 and that
// answer is stored like any other: the same request stays refused, and
// nothing is charged.
func TestBadCharges(t *testing.T) {
	d := testdb.NewSQLite(t, sqlite.Config{})
	testdb.Migrate(t, d.Migrator())
	store, err := dedupe.NewSQL(d, dedupe.Config{})
	if err != nil {
		t.Fatal(err)
	}
	ledger, err := provider.NewSQLLedger(t.Context(), d.DB())
	if err != nil {
		t.Fatal(err)
	}
	p, err := provider.NewTx(store, d, ledger, httpidem.Config{})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(p)
	defer srv.Close()
	for i, body := range []string{
		`{"order_id":"o1","account":"a1","amount":0}`,
		`{"order_id":"","account":"a1","amount":5}`,
		`{"order_id":"o1","account":"a1","amount":5,"currency":"EUR"}`,
		`not json`,
	} {
		for try := range 2 {
			r, _ := http.NewRequest(http.MethodPost, srv.URL+provider.ChargesPath, strings.NewReader(body))
			r.Header.Set("Idempotency-Key", `"bad-`+string(rune('a'+i))+`"`)
			resp, err := http.DefaultClient.Do(r)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusBadRequest || (try == 1) != (resp.Header.Get("Idempotent-Replayed") == "true") {
				t.Fatalf("%s, try %d: %d %v %s", body, try, resp.StatusCode, resp.Header, b)
			}
		}
	}
	cs, err := ledger.Charges(t.Context())
	if err != nil || len(cs) != 0 {
		t.Fatalf("charges %v, %v; want none", cs, err)
	}
}
