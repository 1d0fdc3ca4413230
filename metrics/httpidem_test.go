package metrics_test

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
)

// A real middleware over a SQLite store runs a request, replays it, is
// told of a key reused, then meets its store closed: each outcome is
// counted, the replay as a suppressed duplicate and the failure as a store
// error of the SLIs.
func TestHTTPIdem(t *testing.T) {
	m, reg := newMetrics(t)
	d, store := dedupeSQLite(t)
	mw, err := httpidem.New(store, httpidem.Config{
		Scope: func(*http.Request) (string, error) { return "tenant", nil },
		Hooks: []httpidem.Hook{m.HTTPIdemHook("api")},
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(mw.Handler(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusCreated)
	})))
	defer srv.Close()
	post := func(body string) int {
		r, _ := http.NewRequest(http.MethodPost, srv.URL, strings.NewReader(body))
		r.Header.Set("Idempotency-Key", `"k1"`)
		resp, err := http.DefaultClient.Do(r)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	for _, c := range []struct {
		body   string
		status int
	}{{"a", 201}, {"a", 201}, {"b", 422}} {
		if got := post(c.body); got != c.status {
			t.Fatalf("POST %q: %d, want %d", c.body, got, c.status)
		}
	}
	d.Close()
	if got := post("a"); got != http.StatusServiceUnavailable {
		t.Fatalf("with the store closed: %d, want 503", got)
	}
	value := func(name string, labels map[string]string) float64 { return counterValue(reg, name, labels) }
	for outcome, want := range map[string]float64{"stored": 1, "replayed": 1, "mismatch": 1, "store_error": 1, "released": 0} {
		if got := value("eos_httpidem_requests_total", map[string]string{"name": "api", "outcome": outcome}); got != want {
			t.Errorf("eos_httpidem_requests_total{outcome=%q} = %v, want %v", outcome, got, want)
		}
	}
	if got := value("eos_duplicates_suppressed_total", map[string]string{"consumer": "api"}); got != 1 {
		t.Errorf("eos_duplicates_suppressed_total{consumer=api} = %v, want 1", got)
	}
	if got := value("eos_dedupe_store_errors_total", map[string]string{"consumer": "api"}); got != 1 {
		t.Errorf("eos_dedupe_store_errors_total{consumer=api} = %v, want 1", got)
	}
}

// dedupeSQLite is a dedupe store on a fresh SQLite database, with its
// driver (closing it makes the store fail).
func dedupeSQLite(t *testing.T) (*sqlite.Driver, dedupe.Store) {
	t.Helper()
	d := testdb.NewSQLite(t, sqlite.Config{})
	testdb.Migrate(t, d.Migrator())
	store, err := dedupe.NewSQL(d, dedupe.Config{})
	if err != nil {
		t.Fatal(err)
	}
	return d, store
}
