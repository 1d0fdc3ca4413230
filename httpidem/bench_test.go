package httpidem_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/eoskit/eos/httpidem"
	"github.com/eoskit/eos/internal/testdb"
)

// BenchmarkHTTPIdem measures a POST over loopback HTTP through the
// middleware, each with a fresh key (a claim and a completion per
// request), against the same handler without it. Each iteration sends
// one bare request and one through the middleware, alternately, so the
// ratio p50(store)/p50(none) compares requests of the same moments of the
// same run. It reports the middleware's p50 and p99 latency in µs and
// that ratio; store=none reports the bare handler's.
func BenchmarkHTTPIdem(b *testing.B) {
	h := http.HandlerFunc(benchHandler)
	b.Run("store=none", func(b *testing.B) { benchHTTPIdem(b, nil, h) })
	for _, s := range stores() {
		b.Run("store="+s.name, func(b *testing.B) { benchHTTPIdem(b, s.open, h) })
	}
}

// BenchmarkHTTPIdemWrite is BenchmarkHTTPIdem with a handler that does
// what a create endpoint does: it commits a row (SQLite, in a file of its
// own, apart from the key store). The ratio then weighs the middleware
// against a handler with a durable effect, the kind it exists for.
func BenchmarkHTTPIdemWrite(b *testing.B) {
	e := testdb.SQLite(b)
	e.Script(b, "CREATE TABLE charges (id INTEGER PRIMARY KEY, body BLOB NOT NULL)")
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		ctx := r.Context()
		tx, err := e.Driver.Begin(ctx)
		if err == nil {
			if err = e.Exec(ctx, tx, "INSERT INTO charges (body) VALUES ($1)", body); err == nil {
				err = e.Driver.Commit(ctx, tx)
			}
		}
		if err != nil {
			e.Driver.Rollback(ctx, tx)
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		benchHandler(w, r)
	})
	b.Run("store=none", func(b *testing.B) { benchHTTPIdem(b, nil, h) })
	for _, s := range stores() {
		b.Run("store="+s.name, func(b *testing.B) { benchHTTPIdem(b, s.open, h) })
	}
}

// benchHandler is a small JSON endpoint: it reads the body and answers
// 201 with a few headers, as a create endpoint does.
func benchHandler(w http.ResponseWriter, r *http.Request) {
	io.Copy(io.Discard, r.Body)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Location", "/v1/charges/ch_1")
	w.WriteHeader(http.StatusCreated)
	io.WriteString(w, `{"id":"ch_1","amount":100,"status":"succeeded"}`)
}

func benchHTTPIdem(b *testing.B, open openStore, h http.Handler) {
	bare := httptest.NewServer(h)
	defer bare.Close()
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
	post := func(url, key string) {
		r, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(`{"order_id":"o1","account":"a1","amount":100}`))
		r.Header.Set("Content-Type", "application/json")
		r.Header.Set("X-Tenant", "t1")
		if key != "" {
			r.Header.Set("Idempotency-Key", key)
		}
		resp, err := hc.Do(r)
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusCreated || resp.Header.Get("Idempotent-Replayed") != "" {
			b.Fatalf("status %d replayed %q", resp.StatusCode, resp.Header.Get("Idempotent-Replayed"))
		}
	}
	var idemURL string
	if open != nil {
		store, _ := open(b, time.Now)
		m, err := httpidem.New(store, httpidem.Config{Scope: tenantScope})
		if err != nil {
			b.Fatal(err)
		}
		srv := httptest.NewServer(m.Handler(h))
		defer srv.Close()
		idemURL = srv.URL + "/v1/charges"
	}
	run := fmt.Sprint(time.Now().UnixNano())
	none := make([]time.Duration, 0, b.N)
	with := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		t0 := time.Now()
		post(bare.URL+"/v1/charges", "")
		none = append(none, time.Since(t0))
		if open == nil {
			continue
		}
		t0 = time.Now()
		post(idemURL, fmt.Sprintf(`"%s-%d"`, run, i))
		with = append(with, time.Since(t0))
	}
	b.StopTimer()
	p50none := quantile(none, 0.5)
	if open == nil {
		b.ReportMetric(us(p50none), "p50-µs")
		b.ReportMetric(us(quantile(none, 0.99)), "p99-µs")
		return
	}
	p50 := quantile(with, 0.5)
	b.ReportMetric(us(p50), "p50-µs")
	b.ReportMetric(us(quantile(with, 0.99)), "p99-µs")
	b.ReportMetric(us(p50none), "none-p50-µs")
	b.ReportMetric(float64(p50)/float64(p50none), "p50-ratio")
}

func quantile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[min(len(s)-1, int(q*float64(len(s))))]
}

func us(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }
