package httpidem_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eoskit/eos"
	"github.com/eoskit/eos/dedupe"
	"github.com/eoskit/eos/dedupe/dedupetest"
	"github.com/eoskit/eos/failpoint"
	"github.com/eoskit/eos/httpidem"
)

// openStore opens a fresh, empty store whose clock is now, and returns it
// with a function that breaks it (closes its connections).
type openStore func(t testing.TB, now func() time.Time) (dedupe.Store, func())

// client never reuses a connection: net/http's Transport resends a request
// carrying an Idempotency-Key on its own when a reused connection breaks,
// which would hide the aborted requests these tests look at.
var client = &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}

// tenantScope scopes keys by the X-Tenant header (a stand-in for the
// authenticated subject) and the route.
func tenantScope(r *http.Request) (string, error) {
	tenant := r.Header.Get("X-Tenant")
	if tenant == "" {
		return "", &httpidem.Problem{Type: "about:blank", Title: "Unauthorized", Status: http.StatusUnauthorized}
	}
	return tenant + " " + r.URL.Path, nil
}

// app is the handler behind the middleware, counting its runs per path.
type app struct {
	runs  sync.Map // path → *atomic.Int64
	block chan struct{}
	gate  chan struct{}
	// causes receives why /hold's context ended.
	causes chan error
	// entered receives once per run of /slow, before it blocks on block.
	entered chan struct{}
}

func newApp() *app {
	return &app{block: make(chan struct{}), gate: make(chan struct{}), causes: make(chan error, 1), entered: make(chan struct{}, 128)}
}

func (a *app) count(path string) *atomic.Int64 {
	v, _ := a.runs.LoadOrStore(path, new(atomic.Int64))
	return v.(*atomic.Int64)
}

func (a *app) Runs(path string) int64 { return a.count(path).Load() }

func (a *app) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	n := a.count(r.URL.Path).Add(1)
	body, _ := io.ReadAll(r.Body)
	switch r.URL.Path {
	case "/slow":
		a.entered <- struct{}{}
		if n == 1 {
			<-a.block
		}
	case "/gate": // the first run waits for the gate to open
		if n == 1 {
			<-a.gate
		}
	case "/hold": // the first run holds on until its context ends
		if n == 1 {
			a.entered <- struct{}{}
			<-r.Context().Done()
			a.causes <- context.Cause(r.Context())
		}
	case "/flaky": // fails the first time, then works
		if n == 1 {
			http.Error(w, "try again", http.StatusServiceUnavailable)
			return
		}
	case "/panic":
		if n == 1 {
			panic("handler bug")
		}
	case "/big":
		w.Write(bytes.Repeat([]byte("x"), 4096))
		return
	case "/rejected":
		http.Error(w, "insufficient funds", http.StatusPaymentRequired)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Location", "/v1/charges/ch_"+fmt.Sprint(n))
	h.Set("Set-Cookie", "session=secret")
	h.Set("X-Not-Stored", "1")
	w.WriteHeader(http.StatusCreated)
	fmt.Fprintf(w, `{"run":%d,"path":%q,"body":%q}`, n, r.URL.Path, body)
}

// req is one request of a scenario.
type req struct {
	method, path, key, tenant, body string
	noKey                           bool
}

func (q req) send(t testing.TB, url string) *http.Response {
	t.Helper()
	if q.method == "" {
		q.method = http.MethodPost
	}
	if q.tenant == "" {
		q.tenant = "t1"
	}
	r, err := http.NewRequest(q.method, url+q.path, strings.NewReader(q.body))
	if err != nil {
		t.Fatal(err)
	}
	r.Header.Set("Content-Type", "application/json")
	r.Header.Set("X-Tenant", q.tenant)
	if !q.noKey {
		r.Header.Set("Idempotency-Key", q.key)
	}
	resp, err := client.Do(r)
	if err != nil {
		t.Fatalf("%s %s: %v", q.method, q.path, err)
	}
	return resp
}

// answer is a response read whole.
type answer struct {
	status int
	header http.Header
	body   []byte
}

func (q req) do(t testing.TB, url string) answer {
	t.Helper()
	resp := q.send(t, url)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return answer{resp.StatusCode, resp.Header, b}
}

func (a answer) replayed() bool { return a.header.Get("Idempotent-Replayed") == "true" }

// problem checks that a is an RFC 9457 problem of the given type and
// status.
func (a answer) problem(t testing.TB, status int, typ string) {
	t.Helper()
	var p struct {
		Type, Title string
		Status      int
	}
	if a.status != status || a.header.Get("Content-Type") != "application/problem+json" {
		t.Fatalf("got %d %s %s, want a %d problem", a.status, a.header.Get("Content-Type"), a.body, status)
	}
	if err := json.Unmarshal(a.body, &p); err != nil || p.Type != typ || p.Status != status || p.Title == "" {
		t.Fatalf("problem %s: want type %s (%v)", a.body, typ, err)
	}
}

// server serves app behind a middleware over a fresh store.
type server struct {
	url      string
	app      *app
	clock    *dedupetest.Clock
	store    dedupe.Store
	outcomes *outcomes
}

// outcomes is a hook recording the middleware's outcomes.
type outcomes struct {
	mu  sync.Mutex
	all []httpidem.Outcome
}

func (o *outcomes) OnOutcome(_ context.Context, oc httpidem.Outcome, _ error) {
	o.mu.Lock()
	o.all = append(o.all, oc)
	o.mu.Unlock()
}

func (o *outcomes) list() []httpidem.Outcome {
	o.mu.Lock()
	defer o.mu.Unlock()
	return slices.Clone(o.all)
}

func newServer(t testing.TB, open openStore, cfg httpidem.Config) *server {
	t.Helper()
	c := dedupetest.NewClock()
	store, _ := open(t, c.Now)
	if cfg.Scope == nil {
		cfg.Scope = tenantScope
	}
	if cfg.MaxResult == 0 {
		cfg.MaxResult = 2048
	}
	if cfg.Logger == nil {
		cfg.Logger = testLogger(t)
	}
	oc := &outcomes{}
	cfg.Hooks = append(cfg.Hooks, oc)
	m, err := httpidem.New(store, cfg)
	if err != nil {
		t.Fatal(err)
	}
	a := newApp()
	ts := httptest.NewUnstartedServer(m.Handler(a))
	ts.Config.ErrorLog = log.New(io.Discard, "", 0) // the panicking handler's stack
	ts.Start()
	t.Cleanup(ts.Close)
	t.Cleanup(func() {
		select {
		case <-a.block:
		default:
			close(a.block)
		}
	})
	return &server{url: ts.URL, app: a, clock: c, store: store, outcomes: oc}
}

// testRules runs the draft's rules, as a table of requests, each sent in
// order to one server.
func testRules(t *testing.T, open openStore) {
	s := newServer(t, open, httpidem.Config{Required: true, Policy: httpidem.Policy{Headers: []string{"X-Custom"}}})
	type step struct {
		name    string
		req     req
		status  int
		problem string // the problem type, when the middleware answers itself
		replay  bool
		runs    int64 // the path's handler runs after the step
	}
	charge := req{path: "/v1/charges", key: `"k1"`, body: `{"amount":100,"account":"a1"}`}
	reordered := charge
	reordered.body = "{\"account\": \"a1\",\n \"amount\": 100}"
	other := charge
	other.body = `{"amount":999,"account":"a1"}`
	var first answer
	steps := []step{
		{name: "first request runs", req: charge, status: 201, runs: 1},
		{name: "retry is replayed", req: charge, status: 201, replay: true, runs: 1},
		{name: "same JSON re-encoded is the same request", req: reordered, status: 201, replay: true, runs: 1},
		{name: "different body: 422", req: other, status: 422, problem: httpidem.ProblemKeyReused, runs: 1},
		{name: "different route: 422 (scope keeps the tenant)", req: req{path: "/v1/charges", method: "PATCH", key: `"k1"`, body: charge.body}, status: 422, problem: httpidem.ProblemKeyReused, runs: 1},
		{name: "another tenant, same key: its own run", req: req{path: "/v1/charges", key: `"k1"`, tenant: "t2", body: charge.body}, status: 201, runs: 2},
		{name: "another tenant's retry: its own replay", req: req{path: "/v1/charges", key: `"k1"`, tenant: "t2", body: charge.body}, status: 201, replay: true, runs: 2},
		{name: "missing key: 400", req: req{path: "/v1/charges", noKey: true, body: charge.body}, status: 400, problem: httpidem.ProblemKeyMissing, runs: 2},
		{name: "empty key: 400", req: req{path: "/v1/charges", key: `""`}, status: 400, problem: httpidem.ProblemKeyInvalid, runs: 2},
		{name: "unquoted key: 400", req: req{path: "/v1/charges", key: "k1"}, status: 400, problem: httpidem.ProblemKeyInvalid, runs: 2},
		{name: "256 characters: 400", req: req{path: "/v1/charges", key: `"` + strings.Repeat("k", 256) + `"`}, status: 400, problem: httpidem.ProblemKeyInvalid, runs: 2},
		{name: "not ASCII: 400", req: req{path: "/v1/charges", key: "\"caf\xc3\xa9\""}, status: 400, problem: httpidem.ProblemKeyInvalid, runs: 2},
		{name: "an integer, not a string: 400", req: req{path: "/v1/charges", key: "42"}, status: 400, problem: httpidem.ProblemKeyInvalid, runs: 2},
		{name: "255 characters: accepted", req: req{path: "/v1/charges", key: `"` + strings.Repeat("k", 255) + `"`}, status: 201, runs: 3},
		{name: "GET passes through", req: req{method: "GET", path: "/v1/charges", noKey: true}, status: 201, runs: 4},
		{name: "no tenant: the scope's problem", req: req{path: "/v1/charges", key: `"k9"`, tenant: " "}, status: 401, problem: "about:blank", runs: 4},
		{name: "a scope over the store's bound: 500, not run", req: req{path: "/v1/charges", key: `"k9"`, tenant: strings.Repeat("t", 600)}, status: 500, problem: httpidem.ProblemUnprocessed, runs: 4},
		{name: "5xx is sent", req: req{path: "/flaky", key: `"k2"`}, status: 503, runs: 1},
		{name: "5xx released the key: the retry runs", req: req{path: "/flaky", key: `"k2"`}, status: 201, runs: 2},
		{name: "then it is replayed", req: req{path: "/flaky", key: `"k2"`}, status: 201, replay: true, runs: 2},
		{name: "4xx is the answer", req: req{path: "/rejected", key: `"k3"`}, status: 402, runs: 1},
		{name: "4xx is replayed", req: req{path: "/rejected", key: `"k3"`}, status: 402, replay: true, runs: 1},
		{name: "response over MaxResult is sent", req: req{path: "/big", key: `"k4"`}, status: 200, runs: 1},
		{name: "and not stored: the retry runs", req: req{path: "/big", key: `"k4"`}, status: 200, runs: 2},
	}
	for i, st := range steps {
		before := len(s.outcomes.list())
		got := st.req.do(t, s.url)
		if oc, want := s.outcomes.list()[before:], stepOutcome(st.req, st.problem, st.status, st.replay); !slices.Equal(oc, want) {
			t.Fatalf("step %d (%s): outcomes %v, want %v", i, st.name, oc, want)
		}
		if st.problem != "" {
			got.problem(t, st.status, st.problem)
		} else if got.status != st.status {
			t.Fatalf("step %d (%s): status %d %s, want %d", i, st.name, got.status, got.body, st.status)
		}
		if got.replayed() != st.replay {
			t.Fatalf("step %d (%s): replayed %v, want %v", i, st.name, got.replayed(), st.replay)
		}
		if runs := s.app.Runs(st.req.path); runs != st.runs {
			t.Fatalf("step %d (%s): %d runs of %s, want %d", i, st.name, runs, st.req.path, st.runs)
		}
		if i == 0 {
			first = got
		}
		if i == 1 { // the replay is the first response, byte for byte
			if !bytes.Equal(got.body, first.body) || got.header.Get("Location") != first.header.Get("Location") ||
				got.header.Get("Content-Type") != "application/json" {
				t.Fatalf("replay %d %v %q differs from %d %v %q", got.status, got.header, got.body, first.status, first.header, first.body)
			}
			if got.header.Get("Set-Cookie") != "" || got.header.Get("X-Not-Stored") != "" || first.header.Get("Set-Cookie") == "" {
				t.Fatalf("replay headers %v (first %v): Set-Cookie and unlisted headers are not stored", got.header, first.header)
			}
		}
	}
}

// stepOutcome is the outcome the hooks are told of a step of testRules.
func stepOutcome(q req, problem string, status int, replayed bool) []httpidem.Outcome {
	var o httpidem.Outcome
	switch {
	case q.method == http.MethodGet:
		return []httpidem.Outcome{}
	case problem == httpidem.ProblemKeyReused:
		o = httpidem.OutcomeMismatch
	case problem != "":
		o = httpidem.OutcomeRefused
	case replayed:
		o = httpidem.OutcomeReplayed
	case q.path == "/big" || status >= 500:
		o = httpidem.OutcomeReleased
	default:
		o = httpidem.OutcomeStored
	}
	return []httpidem.Outcome{o}
}

// testPanicReleases: a handler panic gives the key up.
func testPanicReleases(t *testing.T, open openStore) {
	s := newServer(t, open, httpidem.Config{})
	q := req{path: "/panic", key: `"p1"`}
	// net/http answers a panicking handler by closing the connection.
	if r, err := client.Do(mustRequest(t, s.url, q)); err == nil {
		r.Body.Close()
	}
	if got := q.do(t, s.url); got.status != 201 || got.replayed() || s.app.Runs("/panic") != 2 {
		t.Fatalf("after a panic: %d replayed=%v runs=%d, want a fresh run", got.status, got.replayed(), s.app.Runs("/panic"))
	}
}

// testInProgress: a retry while the first request runs gets 409 with
// Retry-After; once the first finishes, the retry is replayed.
func testInProgress(t *testing.T, open openStore) {
	s := newServer(t, open, httpidem.Config{Lease: 30 * time.Second})
	q := req{path: "/slow", key: `"s1"`}
	firstc := make(chan answer, 1)
	go func() { firstc <- q.do(t, s.url) }()
	<-s.app.entered
	got := q.do(t, s.url)
	got.problem(t, 409, httpidem.ProblemInProgress)
	if ra := got.header.Get("Retry-After"); ra != "30" {
		t.Fatalf("Retry-After %q, want the lease's 30 (seconds, rounded up)", ra)
	}
	close(s.app.block)
	first := <-firstc
	again := q.do(t, s.url)
	if first.status != 201 || again.status != 201 || !again.replayed() || !bytes.Equal(first.body, again.body) || s.app.Runs("/slow") != 1 {
		t.Fatalf("first %d %s, retry %d %s replayed=%v, runs %d", first.status, first.body, again.status, again.body, again.replayed(), s.app.Runs("/slow"))
	}
}

// testWaitThenReplay: with Config.Wait, a retry waits for the running
// request and gets its response.
func testWaitThenReplay(t *testing.T, open openStore) {
	s := newServer(t, open, httpidem.Config{Wait: time.Minute})
	q := req{path: "/slow", key: `"w1"`}
	firstc := make(chan answer, 1)
	go func() { firstc <- q.do(t, s.url) }()
	<-s.app.entered
	retryc := make(chan answer, 1)
	go func() { retryc <- q.do(t, s.url) }()
	// The retry polls the store; let the first finish whenever.
	close(s.app.block)
	first, retry := <-firstc, <-retryc
	if first.status != 201 || retry.status != 201 || !retry.replayed() || !bytes.Equal(first.body, retry.body) || s.app.Runs("/slow") != 1 {
		t.Fatalf("first %d %s, waiting retry %d %s replayed=%v, runs %d", first.status, first.body, retry.status, retry.body, retry.replayed(), s.app.Runs("/slow"))
	}
}

// testConcurrentOnce: 100 concurrent requests with one key run the handler
// exactly once; every other one is told so (409) or replayed. The first
// run holds on until half of the others were answered, so that at least
// those met the key held.
func testConcurrentOnce(t *testing.T, open openStore) {
	s := newServer(t, open, httpidem.Config{})
	q := req{path: "/gate", key: `"c1"`, body: `{"amount":1}`}
	const n = 100
	answers := make([]answer, n)
	var wg sync.WaitGroup
	var answered atomic.Int64
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			answers[i] = q.do(t, s.url)
			if answered.Add(1) == n/2 {
				close(s.app.gate)
			}
		})
	}
	close(start)
	wg.Wait()
	var fresh, replays, conflicts int
	var body []byte
	for _, a := range answers {
		switch {
		case a.status == 201 && !a.replayed():
			fresh++
			body = a.body
		case a.status == 201:
			replays++
		case a.status == 409:
			conflicts++
		default:
			t.Fatalf("unexpected answer %d %s", a.status, a.body)
		}
	}
	if runs := s.app.Runs(q.path); runs != 1 || fresh != 1 || conflicts < n/2 {
		t.Fatalf("%d runs, %d fresh answers (%d replays, %d conflicts): want exactly one", runs, fresh, replays, conflicts)
	}
	for _, a := range answers {
		if a.status == 201 && !bytes.Equal(a.body, body) {
			t.Fatalf("a replay %q differs from the run's %q", a.body, body)
		}
	}
	t.Logf("%d replays, %d conflicts", replays, conflicts)
}

// testCrashThenRetry: the process dies after the handler, before the
// response is stored (a failpoint); a retry while the lease lives is
// told to wait; after the lease expires, a retry runs the handler once
// more, and only once.
func testCrashThenRetry(t *testing.T, open openStore) {
	fp := &failpoint.Set{}
	fp.Arm("httpidem.before_complete", failpoint.Times(1, failpoint.Error()))
	s := newServer(t, open, httpidem.Config{Lease: time.Minute, Test: eos.TestConfig{Failpoints: fp}})
	q := req{path: "/v1/charges", key: `"x1"`, body: `{"amount":5}`}
	r, err := client.Do(mustRequest(t, s.url, q))
	if err == nil {
		b, rerr := io.ReadAll(r.Body)
		r.Body.Close()
		if rerr == nil {
			t.Fatalf("the crashed request was answered: %d %s", r.StatusCode, b)
		}
	}
	if runs := s.app.Runs(q.path); runs != 1 {
		t.Fatalf("%d runs before the crash was noticed", runs)
	}
	q.do(t, s.url).problem(t, 409, httpidem.ProblemInProgress)
	s.clock.Advance(time.Minute + time.Second)
	after := q.do(t, s.url)
	if after.status != 201 || after.replayed() || s.app.Runs(q.path) != 2 {
		t.Fatalf("after the lease: %d replayed=%v runs=%d, want one more run", after.status, after.replayed(), s.app.Runs(q.path))
	}
	for range 3 {
		if again := q.do(t, s.url); !again.replayed() || !bytes.Equal(again.body, after.body) || s.app.Runs(q.path) != 2 {
			t.Fatalf("retry: %d replayed=%v runs=%d, want the stored response", again.status, again.replayed(), s.app.Runs(q.path))
		}
	}
}

// testStaleOwner: the first request's lease expires while its handler
// runs and a retry takes the key over; the stale owner's response is not
// stored, the new owner's is.
func testStaleOwner(t *testing.T, open openStore) {
	s := newServer(t, open, httpidem.Config{Lease: time.Minute})
	q := req{path: "/slow", key: `"o1"`}
	firstc := make(chan answer, 1)
	go func() { firstc <- q.do(t, s.url) }()
	<-s.app.entered
	s.clock.Advance(2 * time.Minute)
	second := q.do(t, s.url)
	<-s.app.entered
	close(s.app.block)
	<-firstc
	third := q.do(t, s.url)
	if second.status != 201 || second.replayed() || !third.replayed() || !bytes.Equal(third.body, second.body) {
		t.Fatalf("second %d %s, third %d %s replayed=%v: want the new owner's response stored", second.status, second.body, third.status, third.body, third.replayed())
	}
}

// testLogger logs to t's output.
func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), nil))
}

// testLeaseLost: a lease that expires while the handler runs, and that a
// retry takes over, cannot be renewed: the handler's context ends with
// ErrLeaseLost, and its response is not stored.
func testLeaseLost(t *testing.T, open openStore) {
	s := newServer(t, open, httpidem.Config{Lease: 30 * time.Millisecond}) // renewed every 10ms
	q := req{path: "/hold", key: `"l1"`}
	firstc := make(chan answer, 1)
	go func() { firstc <- q.do(t, s.url) }()
	<-s.app.entered
	s.clock.Advance(time.Minute)
	second := q.do(t, s.url) // takes the key over and runs
	if cause := <-s.app.causes; !errors.Is(cause, httpidem.ErrLeaseLost) {
		t.Fatalf("the first handler's context ended with %v, want ErrLeaseLost", cause)
	}
	<-firstc
	if third := q.do(t, s.url); second.status != 201 || !third.replayed() || !bytes.Equal(third.body, second.body) {
		t.Fatalf("second %d %s, third %d %s: want the new owner's response stored", second.status, second.body, third.status, third.body)
	}
}

func mustRequest(t testing.TB, url string, q req) *http.Request {
	r, err := http.NewRequestWithContext(context.Background(), http.MethodPost, url+q.path, strings.NewReader(q.body))
	if err != nil {
		t.Fatal(err)
	}
	r.Header.Set("Content-Type", "application/json")
	r.Header.Set("X-Tenant", "t1")
	r.Header.Set("Idempotency-Key", q.key)
	return r
}

// testStoreDown: with the store failing, the handler never runs: 503.
func testStoreDown(t *testing.T, open openStore) {
	c := dedupetest.NewClock()
	store, breakStore := open(t, c.Now)
	m, err := httpidem.New(store, httpidem.Config{Scope: tenantScope, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	a := newApp()
	ts := httptest.NewServer(m.Handler(a))
	defer ts.Close()
	breakStore()
	got := req{path: "/v1/charges", key: `"d1"`}.do(t, ts.URL)
	got.problem(t, 503, httpidem.ProblemStoreUnavailable)
	if a.Runs("/v1/charges") != 0 {
		t.Fatal("the handler ran without a claim")
	}
}

// runAll runs every middleware test on one store.
func runAll(t *testing.T, open openStore) {
	for name, f := range map[string]func(*testing.T, openStore){
		"Rules":          testRules,
		"PanicReleases":  testPanicReleases,
		"InProgress":     testInProgress,
		"WaitThenReplay": testWaitThenReplay,
		"ConcurrentOnce": testConcurrentOnce,
		"CrashThenRetry": testCrashThenRetry,
		"StaleOwner":     testStaleOwner,
		"LeaseLost":      testLeaseLost,
		"StoreDown":      testStoreDown,
	} {
		t.Run(name, func(t *testing.T) { f(t, open) })
	}
}
