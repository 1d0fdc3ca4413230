package httpidem_test

import (
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/eoskit/eos"
	"github.com/eoskit/eos/dedupe"
	"github.com/eoskit/eos/dedupe/dedupetest"
	"github.com/eoskit/eos/failpoint"
	"github.com/eoskit/eos/httpidem"
	"github.com/eoskit/eos/internal/testdb"
	"github.com/eoskit/eos/internal/testdb/engines"
)

// TestTx: with NewTx, the handler's row and the key's response commit
// together or not at all.
func TestTx(t *testing.T) {
	engines.Each(t, func(t *testing.T, e *testdb.Engine[*sql.Tx]) { testTx(t, e) }, func(t *testing.T, e *testdb.Engine[pgx.Tx]) { testTx(t, e) })
}

func testTx[TTx any](t *testing.T, e *testdb.Engine[TTx]) {
	e.Script(t, "CREATE TABLE charges (id TEXT PRIMARY KEY, amount BIGINT NOT NULL)")
	clk := dedupetest.NewClock()
	store, err := dedupe.NewSQL(e.Driver, dedupe.Config{Test: eos.TestConfig{Now: clk.Now}})
	if err != nil {
		t.Fatal(err)
	}
	fp := &failpoint.Set{}
	m, err := httpidem.NewTx(store, e.Driver, httpidem.Config{Scope: tenantScope, Required: true, Logger: testLogger(t), Test: eos.TestConfig{Failpoints: fp}})
	if err != nil {
		t.Fatal(err)
	}
	fail := map[string]error{} // path → the error the handler returns once
	status := map[string]int{} // path → the status the handler answers once
	runs := map[string]int{}
	ts := httptest.NewServer(m.Handler(func(w http.ResponseWriter, r *http.Request, tx TTx) error {
		var c struct{ Amount int64 }
		if err := json.NewDecoder(r.Body).Decode(&c); err != nil {
			return err
		}
		runs[r.URL.Path]++ // requests are sequential in this test
		id := fmt.Sprintf("%s#%d", r.URL.Path, runs[r.URL.Path])
		if err := e.Exec(r.Context(), tx, "INSERT INTO charges (id, amount) VALUES ($1, $2)", id, c.Amount); err != nil {
			return err
		}
		if err := fail[r.URL.Path]; err != nil {
			delete(fail, r.URL.Path)
			return err
		}
		st := http.StatusCreated
		if s := status[r.URL.Path]; s != 0 {
			delete(status, r.URL.Path)
			st = s
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(st)
		fmt.Fprintf(w, `{"id":%q}`, id)
		return nil
	}))
	defer ts.Close()
	rows := func(path string) int64 {
		return e.Int(t, "SELECT count(*) FROM charges WHERE id LIKE $1", path+"#%")
	}
	body := `{"amount":7}`

	q := req{path: "/ok", key: `"t1"`, body: body}
	first, again := q.do(t, ts.URL), q.do(t, ts.URL)
	if first.status != 201 || !again.replayed() || string(again.body) != string(first.body) || rows("/ok") != 1 {
		t.Fatalf("first %d %s, retry %d %s replayed=%v, rows %d", first.status, first.body, again.status, again.body, again.replayed(), rows("/ok"))
	}

	// The handler fails: its row is rolled back and the key released.
	fail["/err"] = errors.New("ledger closed")
	q = req{path: "/err", key: `"t2"`, body: body}
	q.do(t, ts.URL).problem(t, 500, httpidem.ProblemUnprocessed)
	if n := rows("/err"); n != 0 {
		t.Fatalf("a failed handler committed %d rows", n)
	}
	if got := q.do(t, ts.URL); got.status != 201 || got.replayed() || rows("/err") != 1 {
		t.Fatalf("retry after a failure: %d replayed=%v rows=%d", got.status, got.replayed(), rows("/err"))
	}

	// A 5xx answer rolls back too.
	status["/5xx"] = http.StatusServiceUnavailable
	q = req{path: "/5xx", key: `"t3"`, body: body}
	if got := q.do(t, ts.URL); got.status != 503 || rows("/5xx") != 0 {
		t.Fatalf("5xx: %d, rows %d", got.status, rows("/5xx"))
	}
	if got := q.do(t, ts.URL); got.status != 201 || rows("/5xx") != 1 {
		t.Fatalf("retry after a 5xx: %d, rows %d", got.status, rows("/5xx"))
	}

	// The process dies before the commit: nothing is left but the claim;
	// after its lease, the retry runs once and commits once.
	fp.Arm("httpidem.before_complete", failpoint.Times(1, failpoint.Error()))
	q = req{path: "/crash", key: `"t4"`, body: body}
	if r, err := client.Do(mustRequest(t, ts.URL, q)); err == nil {
		r.Body.Close()
	}
	if n := rows("/crash"); n != 0 {
		t.Fatalf("the crashed request committed %d rows", n)
	}
	q.do(t, ts.URL).problem(t, 409, httpidem.ProblemInProgress)
	clk.Advance(httpidem.DefaultLease + time.Second)
	if got := q.do(t, ts.URL); got.status != 201 || got.replayed() || rows("/crash") != 1 {
		t.Fatalf("after the lease: %d replayed=%v rows=%d", got.status, got.replayed(), rows("/crash"))
	}
	if got := q.do(t, ts.URL); !got.replayed() || rows("/crash") != 1 {
		t.Fatalf("retry: replayed=%v rows=%d", got.replayed(), rows("/crash"))
	}

	// 100 concurrent requests with one key commit one row. (On SQLite they
	// queue for its one connection behind the first one's transaction, and
	// find its response stored.)
	q = req{path: "/many", key: `"t5"`, body: body}
	var wg sync.WaitGroup
	answers := make([]answer, 100)
	for i := range answers {
		wg.Go(func() { answers[i] = q.do(t, ts.URL) })
	}
	wg.Wait()
	fresh := 0
	for _, a := range answers {
		switch {
		case a.status == 201 && !a.replayed():
			fresh++
		case a.status == 201 || a.status == 409:
		default:
			t.Fatalf("concurrent: %d %s", a.status, a.body)
		}
	}
	if n := rows("/many"); n != 1 || fresh != 1 {
		t.Fatalf("100 concurrent requests: %d rows, %d fresh answers; want 1", n, fresh)
	}
}
