package serve_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/eoskit/eos"
	"github.com/eoskit/eos/inbox"
	"github.com/eoskit/eos/inbox/inboxtest"
	"github.com/eoskit/eos/internal/testdb"
	"github.com/eoskit/eos/metrics"
	"github.com/eoskit/eos/outbox"
	"github.com/eoskit/eos/serve"
)

const traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

// newFixture runs a batch through a real inbox: three orders applied, one
// poison (dead-lettered, its error holding a password), then m1 again
// (duplicate, with a trace) and m2 with another payload (quarantined); and
// enqueues two outbox rows, left unsent.
func newFixture(t *testing.T) (*prometheus.Registry, *inbox.Processor[*sqlTx]) {
	t.Helper()
	ctx := context.Background()
	e := testdb.SQLite(t)
	pay := testdb.Payments[*sqlTx]{E: e}
	pay.Setup(t, 10, 1000)
	reg := prometheus.NewRegistry()
	m, err := metrics.New(reg, metrics.Config{})
	if err != nil {
		t.Fatal(err)
	}
	h := func(ctx context.Context, tx *sqlTx, msg eos.Message) error {
		if msg.ID == "poison" {
			return inbox.Permanent(errors.New("cannot reach postgres://app:hunter2@db:5432/x"))
		}
		return pay.Handler(ctx, tx, msg)
	}
	p, err := inbox.New(e.Driver, h, inbox.Config{Consumer: "orders", Hooks: []inbox.Hook{m.InboxHook()}})
	if err != nil {
		t.Fatal(err)
	}
	created := time.Now().Add(-2 * time.Second)
	msg := func(id, account string, amount int64) eos.Message {
		m := testdb.Message(id, account, amount)
		m.CreatedAt = created
		m.Subject = "orders.new"
		return m
	}
	m1 := msg("m1", "a1", 1)
	inboxtest.Process(ctx, t, p, m1, msg("m2", "a2", 2), msg("m3", "a3", 3), msg("poison", "a4", 4))
	m1.Headers = map[string]string{"traceparent": traceparent}
	inboxtest.Process(ctx, t, p, m1, msg("m2", "a2", 20))

	ob, err := outbox.New(e.Driver, outbox.Config{})
	if err != nil {
		t.Fatal(err)
	}
	tx, err := e.Driver.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := ob.Enqueue(ctx, tx, "payments", eos.Message{ID: "c1", Payload: []byte("1")}, eos.Message{ID: "c2", Payload: []byte("2")}); err != nil {
		t.Fatal(err)
	}
	if err := e.Driver.Commit(ctx, tx); err != nil {
		t.Fatal(err)
	}
	if err := m.WatchOutbox("orders", ob.Stats); err != nil {
		t.Fatal(err)
	}
	lag := func(context.Context) (metrics.ConsumerStats, error) {
		return metrics.ConsumerStats{Pending: 7, AckPending: 3}, nil
	}
	if err := m.WatchConsumer("orders", "test", lag); err != nil {
		t.Fatal(err)
	}
	if err := m.WatchInbox("orders", p.Activity); err != nil {
		t.Fatal(err)
	}
	return reg, p
}

func newHandler(t *testing.T, cfg serve.Config) http.Handler {
	t.Helper()
	h, err := serve.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// get requests path of h with the token (none when empty).
func get(t *testing.T, h http.Handler, path, token string) *http.Response {
	t.Helper()
	r := httptest.NewRequest(http.MethodGet, path, nil)
	if token != "" {
		r.Header.Set("Authorization", "Bearer "+token)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w.Result()
}

func body(t *testing.T, res *http.Response) string {
	t.Helper()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestToken(t *testing.T) {
	reg, _ := newFixture(t)
	h := newHandler(t, serve.Config{Gatherer: reg, Token: "s3cret-token"})
	for _, path := range []string{"/", "/status.json", "/metrics", "/readyz"} {
		for _, token := range []string{"", "wrong", "s3cret-token-and-more", "s3cret-toke"} {
			res := get(t, h, path, token)
			if res.StatusCode != http.StatusUnauthorized || !strings.HasPrefix(res.Header.Get("WWW-Authenticate"), "Bearer") {
				t.Errorf("%s with token %q: %d, WWW-Authenticate %q; want 401 with a Bearer challenge",
					path, token, res.StatusCode, res.Header.Get("WWW-Authenticate"))
			}
			if b := body(t, res); strings.Contains(b, "s3cret") {
				t.Errorf("%s: the answer shows the token: %q", path, b)
			}
		}
		if res := get(t, h, path, "s3cret-token"); res.StatusCode != http.StatusOK {
			t.Errorf("%s with the token: %d, want 200", path, res.StatusCode)
		}
	}
	r := httptest.NewRequest(http.MethodGet, "/metrics", nil)
	r.Header.Set("Authorization", "Basic s3cret-token")
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	if w.Code != http.StatusUnauthorized {
		t.Errorf("the token under another scheme: %d, want 401", w.Code)
	}
	if res := get(t, h, "/healthz", ""); res.StatusCode != http.StatusOK || body(t, res) != "ok\n" {
		t.Errorf("/healthz without a token: %d, want 200 ok", res.StatusCode)
	}
	if res := get(t, h, "/nothing", "s3cret-token"); res.StatusCode != http.StatusNotFound {
		t.Errorf("/nothing: %d, want 404", res.StatusCode)
	}
}

func TestReadyz(t *testing.T) {
	reg, _ := newFixture(t)
	storeErr := errors.New("store down: postgres://app:hunter2@db/x")
	var failing bool
	blocked := make(chan struct{})
	defer close(blocked)
	h := newHandler(t, serve.Config{Gatherer: reg, CheckTimeout: 100 * time.Millisecond, Checks: []serve.Check{
		{Name: "store", Func: func(context.Context) error {
			if failing {
				return storeErr
			}
			return nil
		}},
		{Name: "broker", Func: func(context.Context) error { return nil }},
	}})
	var rd serve.Readiness
	decode := func(res *http.Response) {
		t.Helper()
		rd = serve.Readiness{}
		if err := json.NewDecoder(res.Body).Decode(&rd); err != nil {
			t.Fatal(err)
		}
	}
	res := get(t, h, "/readyz", "")
	decode(res)
	if res.StatusCode != http.StatusOK || !rd.Ready || len(rd.Checks) != 2 || !rd.Checks[0].OK || !rd.Checks[1].OK {
		t.Errorf("all pass: %d %+v, want 200 and both ok", res.StatusCode, rd)
	}
	failing = true
	res = get(t, h, "/readyz", "")
	decode(res)
	if res.StatusCode != http.StatusServiceUnavailable || rd.Ready || rd.Checks[0].OK || !rd.Checks[1].OK {
		t.Errorf("store failing: %d %+v, want 503, store failing, broker ok", res.StatusCode, rd)
	}
	if e := rd.Checks[0].Error; !strings.Contains(e, "store down") || strings.Contains(e, "hunter2") {
		t.Errorf("store's error %q: want it shown with its password masked", e)
	}

	// A check that ignores its context fails at the timeout.
	h = newHandler(t, serve.Config{Gatherer: reg, CheckTimeout: 50 * time.Millisecond, Checks: []serve.Check{
		{Name: "stuck", Func: func(context.Context) error { <-blocked; return nil }},
	}})
	res = get(t, h, "/readyz", "")
	decode(res)
	if res.StatusCode != http.StatusServiceUnavailable || rd.Checks[0].OK || !strings.Contains(rd.Checks[0].Error, "timeout") {
		t.Errorf("stuck check: %d %+v, want 503 naming the timeout", res.StatusCode, rd)
	}
}

// metricValue parses a /metrics answer and sums the samples of name
// carrying the given labels.
func metricValue(t *testing.T, text, name string, labels map[string]string) float64 {
	t.Helper()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	mf, ok := fams[name]
	if !ok {
		t.Fatalf("/metrics has no %s", name)
	}
	total := 0.0
	for _, m := range mf.GetMetric() {
		ok := true
		for k, v := range labels {
			found := false
			for _, lp := range m.GetLabel() {
				found = found || (lp.GetName() == k && lp.GetValue() == v)
			}
			ok = ok && found
		}
		if !ok {
			continue
		}
		switch {
		case m.Counter != nil:
			total += m.Counter.GetValue()
		case m.Gauge != nil:
			total += m.Gauge.GetValue()
		}
	}
	return total
}

func TestMetricsAndStatusAgree(t *testing.T) {
	reg, p := newFixture(t)
	h := newHandler(t, serve.Config{Gatherer: reg, Consumers: []serve.Consumer{{Name: "orders", Admin: p}}})

	// The OpenMetrics exposition, with the duplicate's exemplar.
	r := httptest.NewRequest(http.MethodGet, "/metrics", nil)
	r.Header.Set("Accept", "application/openmetrics-text; version=1.0.0")
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	om := w.Body.String()
	if !strings.Contains(om, `eos_duplicates_suppressed_total{consumer="orders"} 1.0 # {`) || !strings.Contains(om, "4bf92f3577b34da6a3ce929d0e0e4736") {
		t.Errorf("OpenMetrics /metrics lacks the duplicate's exemplar:\n%s", om)
	}
	text := body(t, get(t, h, "/metrics", ""))
	for _, name := range []string{"eos_inbox_messages_total", "eos_end_to_end_seconds_bucket", "eos_outbox_unsent", "eos_consumer_pending_messages"} {
		if !strings.Contains(text, name) {
			t.Errorf("/metrics lacks %s", name)
		}
	}

	var st serve.Status
	if err := json.NewDecoder(get(t, h, "/status.json", "").Body).Decode(&st); err != nil {
		t.Fatal(err)
	}
	val := func(name string, labels map[string]string) float64 { return metricValue(t, text, name, labels) }
	orders := map[string]string{"consumer": "orders"}
	want := map[string]float64{
		"eos_duplicates_suppressed_total": val("eos_duplicates_suppressed_total", nil),
		"eos_dedupe_store_errors_total":   val("eos_dedupe_store_errors_total", nil),
		"eos_reprocessed_total":           val("eos_reprocessed_total", nil),
	}
	for _, s := range st.SLIs {
		w, ok := want[s.Metric]
		switch {
		case ok && (s.Value == nil || *s.Value != w):
			t.Errorf("SLI %s: %v, /metrics %g", s.Metric, s.Value, w)
		case !ok && s.Value != nil:
			t.Errorf("SLI %s: %g, want none (no series)", s.Metric, *s.Value)
		}
	}
	if len(st.Consumers) != 1 {
		t.Fatalf("consumers %+v, want orders", st.Consumers)
	}
	c := st.Consumers[0]
	for _, f := range []struct {
		name string
		got  *float64
		want float64
	}{
		{"applied", c.Applied, val("eos_inbox_messages_total", map[string]string{"consumer": "orders", "outcome": "applied"})},
		{"duplicates", c.Duplicates, val("eos_duplicates_suppressed_total", orders)},
		{"quarantined", c.Quarantined, val("eos_quarantined_total", orders)},
		{"dead_lettered", c.DeadLettered, val("eos_dead_lettered_total", orders)},
		{"unacked", c.Unacked, val("eos_consumer_ack_pending_messages", orders)},
		{"in_flight", c.InFlight, val("eos_inbox_in_flight_messages", orders)},
		{"stalled", c.Stalled, val("eos_inbox_stalled", orders)},
		{"lag", c.Lag, val("eos_consumer_pending_messages", orders)},
	} {
		if f.got == nil || *f.got != f.want {
			t.Errorf("consumer %s: %v, /metrics %g", f.name, f.got, f.want)
		}
	}
	// And the values themselves, so that agreeing on nothing fails.
	if *c.Applied != 3 || *c.Duplicates != 1 || *c.Quarantined != 1 || *c.DeadLettered != 1 || *c.Lag != 7 || *c.Unacked != 3 ||
		*c.InFlight != 0 || *c.Stalled != 0 {
		t.Errorf("consumer %+v: want 3 applied, 1 duplicate, 1 quarantined, 1 dead-lettered, lag 7, 3 unacked, none in flight, not stalled", c)
	}
	if len(st.Outboxes) != 1 || *st.Outboxes[0].Unsent != 2 || *st.Outboxes[0].Unsent != val("eos_outbox_unsent", nil) {
		t.Errorf("outboxes %+v: want orders with 2 unsent", st.Outboxes)
	}
	// Every applied message was created 2s before: p50 and p99 both fall
	// in the (1, 2.5] bucket.
	if st.Latency.Count != 3 || st.Latency.P50 == nil || *st.Latency.P50 <= 1 || *st.Latency.P50 > 2.5 || *st.Latency.P99 <= *st.Latency.P50 {
		t.Errorf("latency %+v: want 3 observations, 1 < p50 <= 2.5, p99 above", st.Latency)
	}
	if len(st.DeadLetters) != 1 || len(st.DeadLetters[0].Items) != 1 || st.DeadLetters[0].Total != 1 {
		t.Fatalf("dead letters %+v: want orders' poison", st.DeadLetters)
	}
	dl := st.DeadLetters[0].Items[0]
	if dl.ID != "poison" || !strings.Contains(dl.Error, "cannot reach") || strings.Contains(dl.Error, "hunter2") {
		t.Errorf("dead letter %+v: want poison, its error with the password masked", dl)
	}
	if len(st.Quarantined) != 1 || len(st.Quarantined[0].Items) != 1 || st.Quarantined[0].Items[0].ID != "m2" {
		t.Errorf("quarantined %+v: want orders' m2", st.Quarantined)
	}

	page := body(t, get(t, h, "/", ""))
	for _, want := range []string{`data-key="consumer:orders:applied" data-value="3"`, `data-key="outbox:orders:unsent" data-value="2"`,
		`<td class="mono">poison</td>`, `href="metrics"`, `http-equiv="refresh"`} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %s", want)
		}
	}
	if strings.Contains(page, "hunter2") {
		t.Error("page shows a password")
	}
}

// TestUnderPrefix mounts the handler under /ops/eos/ of a server of its
// own: the page is there, its links relative, and /ops/eos redirects to
// the page.
func TestUnderPrefix(t *testing.T) {
	reg, _ := newFixture(t)
	mux := http.NewServeMux()
	mux.Handle("/ops/eos/", http.StripPrefix("/ops/eos", newHandler(t, serve.Config{Gatherer: reg})))
	srv := httptest.NewServer(mux)
	defer srv.Close()
	res, err := http.Get(srv.URL + "/ops/eos")
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != http.StatusOK || res.Request.URL.Path != "/ops/eos/" || !strings.Contains(body(t, res), `href="status.json"`) {
		t.Errorf("GET /ops/eos: %d at %s, want the page at /ops/eos/", res.StatusCode, res.Request.URL.Path)
	}
	res, err = http.Get(srv.URL + "/ops/eos/metrics")
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != http.StatusOK || !strings.Contains(body(t, res), "eos_outbox_unsent") {
		t.Errorf("GET /ops/eos/metrics: %d", res.StatusCode)
	}
	// Without the mux's own redirect: StripPrefix("/eos") of a request for /eos.
	h := http.StripPrefix("/eos", newHandler(t, serve.Config{Gatherer: reg}))
	r := httptest.NewRequest(http.MethodGet, "/eos?x=1", nil)
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	if w.Code != http.StatusMovedPermanently || w.Header().Get("Location") != "/eos/?x=1" {
		t.Errorf("/eos: %d to %q, want a redirect to /eos/?x=1", w.Code, w.Header().Get("Location"))
	}
	// Never to another host: a request whose stripped path is empty
	// however its URI was spelled.
	for uri, want := range map[string]string{"//evil.example": "/evil.example/", "http://evil.example": "/",
		"http://evil.example//x.example": "/x.example/"} {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.RequestURI, r.URL.Path = uri, ""
		w := httptest.NewRecorder()
		newHandler(t, serve.Config{Gatherer: reg}).ServeHTTP(w, r)
		if got := w.Header().Get("Location"); got != want {
			t.Errorf("request URI %q: redirect to %q, want %q", uri, got, want)
		}
	}
}

func TestLoopback(t *testing.T) {
	for addr, want := range map[string]bool{
		"127.0.0.1:8080": true, "127.1.2.3:80": true, "[::1]:8080": true, "localhost:9000": true, "LOCALHOST:1": true,
		":8080": false, "0.0.0.0:8080": false, "[::]:8080": false, "10.0.0.5:8080": false, "example.com:80": false,
		"localhost.evil.com:80": false, "127.0.0.1": false, "": false,
	} {
		if got := serve.IsLoopback(addr); got != want {
			t.Errorf("IsLoopback(%q) = %v, want %v", addr, got, want)
		}
	}
	if err := serve.RequireToken("127.0.0.1:0", ""); err != nil {
		t.Errorf("loopback without a token: %v", err)
	}
	if err := serve.RequireToken("0.0.0.0:8080", "tok"); err != nil {
		t.Errorf("all interfaces with a token: %v", err)
	}
	err := serve.RequireToken(":8080", "")
	if !errors.Is(err, serve.ErrNoToken) || !strings.Contains(err.Error(), ":8080") {
		t.Errorf("all interfaces without a token: %v, want ErrNoToken naming the address", err)
	}
}

func TestConfigErrors(t *testing.T) {
	reg := prometheus.NewRegistry()
	ok := func(context.Context) error { return nil }
	for name, cfg := range map[string]serve.Config{
		"no gatherer":    {},
		"unnamed check":  {Gatherer: reg, Checks: []serve.Check{{Func: ok}}},
		"nil check":      {Gatherer: reg, Checks: []serve.Check{{Name: "a"}}},
		"check twice":    {Gatherer: reg, Checks: []serve.Check{{Name: "a", Func: ok}, {Name: "a", Func: ok}}},
		"nil admin":      {Gatherer: reg, Consumers: []serve.Consumer{{Name: "a"}}},
		"negative":       {Gatherer: reg, CheckTimeout: -time.Second},
		"recent too big": {Gatherer: reg, Recent: serve.MaxRecent + 1},
		"concurrency":    {Gatherer: reg, MaxConcurrent: -1},
	} {
		var ce *eos.ConfigError
		if _, err := serve.New(cfg); !errors.As(err, &ce) {
			t.Errorf("%s: %v, want a *eos.ConfigError", name, err)
		}
	}
}
