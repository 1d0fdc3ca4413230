package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/eoskit/eos/internal/testenv"
	"github.com/eoskit/eos/serve"
)

func TestServeFlags(t *testing.T) {
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte("tok-123456\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"serve", "--nats", "nats://127.0.0.1:4222"}, "--run: required"},
		{[]string{"serve", "--postgres", "postgres://u@h/db", "--run", "XYZ"}, "--run: want"},
		{[]string{"serve", "--addr", "0.0.0.0:0", "--dir", t.TempDir()}, "not a loopback address"},
		{[]string{"serve", "--token-file", filepath.Join(t.TempDir(), "none")}, "--token-file"},
		{[]string{"demo", "--serve", ":0"}, "not a loopback address"},
		{[]string{"demo", "--serve-linger", "1m"}, "--serve-linger: needs --serve"},
		{[]string{"demo", "--serve", "127.0.0.1:0", "--serve-linger", "-1s"}, "--serve-linger: negative"},
		{[]string{"serve", "--dir", t.TempDir(), "--token-file", tokenFile, "--addr", "0.0.0.0:0"}, "no demo database"},
	} {
		r := runCmd(t, time.Minute, c.args...)
		if r.code != exitUsage || !strings.Contains(r.stderr, c.want) {
			t.Errorf("eos %s: exit %d, stderr %q; want %d naming %q", strings.Join(c.args, " "), r.code, r.stderr, exitUsage, c.want)
		}
		if strings.Contains(r.stderr+r.stdout, "tok-123456") {
			t.Errorf("eos %s printed the token", strings.Join(c.args, " "))
		}
	}
}

// watch is an io.Writer that keeps what is written and reports the first
// match of each pattern on a channel of its own.
type watch struct {
	mu      sync.Mutex
	text    strings.Builder
	pattern []*regexp.Regexp
	found   []chan string
}

func newWatch(patterns ...string) *watch {
	w := &watch{}
	for _, p := range patterns {
		w.pattern = append(w.pattern, regexp.MustCompile(p))
		w.found = append(w.found, make(chan string, 1))
	}
	return w
}

func (w *watch) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.text.Write(p)
	for i, re := range w.pattern {
		if re == nil {
			continue
		}
		if m := re.FindStringSubmatch(w.text.String()); m != nil {
			w.found[i] <- m[len(m)-1]
			w.pattern[i] = nil
		}
	}
	return len(p), nil
}

func (w *watch) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.text.String()
}

// await returns the first match of pattern i, failing the test when the
// command ends first or ctx does.
func await(ctx context.Context, t *testing.T, w *watch, i int, done <-chan int, what string) string {
	t.Helper()
	select {
	case m := <-w.found[i]:
		return m
	case code := <-done:
		t.Fatalf("the command ended (exit %d) before %s; its output:\n%s", code, what, w)
	case <-ctx.Done():
		t.Fatalf("no %s: %v; output:\n%s", what, ctx.Err(), w)
	}
	return ""
}

func httpGet(t *testing.T, url string) string {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %s", url, res.StatusCode, b)
	}
	return string(b)
}

// expected maps each data-key the status page gives a value to the value
// /metrics implies for it.
func expected(t *testing.T, metricsText string) map[string]float64 {
	t.Helper()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(metricsText))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	add := func(key string, v float64) { out[key] += v }
	perConsumer := map[string]string{
		"eos_duplicates_suppressed_total": "duplicates", "eos_quarantined_total": "quarantined",
		"eos_dead_lettered_total": "dead_lettered", "eos_reprocessed_total": "reprocessed",
		"eos_dedupe_store_errors_total": "store_errors", "eos_consumer_ack_pending_messages": "unacked",
		"eos_inbox_in_flight_messages": "in_flight", "eos_inbox_stalled": "stalled",
		"eos_consumer_pending_messages": "lag", "eos_inbox_claims": "claims", "eos_inbox_dead_letters": "dead_letters_now",
		"eos_inbox_quarantine": "quarantine_now",
	}
	perOutbox := map[string]string{"eos_outbox_unsent": "unsent", "eos_outbox_oldest_unsent_seconds": "oldest_unsent_seconds",
		"eos_outbox_parked": "parked"}
	slis := map[string]bool{"eos_duplicates_suppressed_total": true, "eos_duplicate_effects_total": true, "eos_missed_apply_total": true,
		"eos_partial_commits_total": true, "eos_dedupe_store_errors_total": true, "eos_reprocessed_total": true}
	for name, mf := range fams {
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, lp := range m.GetLabel() {
				labels[lp.GetName()] = lp.GetValue()
			}
			var v float64
			switch {
			case m.Counter != nil:
				v = m.Counter.GetValue()
			case m.Gauge != nil:
				v = m.Gauge.GetValue()
			default:
				continue
			}
			if slis[name] {
				add("sli:"+name, v)
			}
			if f, ok := perConsumer[name]; ok {
				add("consumer:"+labels["consumer"]+":"+f, v)
			}
			if name == "eos_inbox_messages_total" && labels["outcome"] == "applied" {
				add("consumer:"+labels["consumer"]+":applied", v)
			}
			if f, ok := perOutbox[name]; ok {
				add("outbox:"+labels["outbox"]+":"+f, v)
			}
		}
	}
	return out
}

// shown returns the page's data-key → data-value pairs that hold a value.
func shown(t *testing.T, dom string) map[string]float64 {
	t.Helper()
	out := map[string]float64{}
	re := regexp.MustCompile(`data-key="([^"]+)" data-value="([^"]*)"`)
	for _, m := range re.FindAllStringSubmatch(dom, -1) {
		if m[2] == "" {
			continue
		}
		v, err := strconv.ParseFloat(m[2], 64)
		if err != nil {
			t.Fatalf("%s shows %q", m[1], m[2])
		}
		out[strings.ReplaceAll(m[1], "&#34;", `"`)] = v
	}
	return out
}

// chromium runs headless Chromium on url with args, returning its stdout.
func chromium(ctx context.Context, t *testing.T, exe, url string, args ...string) string {
	t.Helper()
	base := []string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
		"--disable-component-update", "--disable-sync", "--user-data-dir=" + t.TempDir()}
	cmd := exec.CommandContext(ctx, exe, append(append(base, args...), url)...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("chromium %v: %v\n%s", args, err, errb.String())
	}
	return out.String()
}

// findChromium returns Chromium's path, or skips (fails with
// EOS_TEST_REQUIRE_SERVICES=1) when there is none.
func findChromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if testenv.Require() {
		t.Fatal("chromium not found and EOS_TEST_REQUIRE_SERVICES=1")
	}
	t.Skip("chromium not found: skipping the status page test")
	return ""
}

// TestStatusPageInChromium runs a short demo with --serve, then loads the
// status page in headless Chromium once the run is over (its numbers then
// stay put) and checks each number the page shows against /metrics
// fetched at the same state; it keeps a screenshot. Then it watches the
// same directory with eos serve, while the run lingers and once it ended,
// whose /readyz and numbers must agree.
func TestStatusPageInChromium(t *testing.T) {
	exe := findChromium(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	dir := filepath.Join(t.TempDir(), "demo")
	demoCtx, stopDemo := context.WithCancel(ctx)
	defer stopDemo()
	stdout, stderr := newWatch(`(?m)^verdict: (\w+)`), newWatch(`status page at (http://\S+)`)
	done := make(chan int, 1)
	go func() {
		done <- run(demoCtx, []string{"demo", "--orders", "2000", "--dir", dir, "--timeout", "90s", "--serve", "127.0.0.1:0",
			"--serve-linger", "10m"}, strings.NewReader(""), stdout, stderr)
	}()
	url := await(ctx, t, stderr, 0, done, "status page address")
	t.Logf("status page at %s", url)
	// During the run: the probes answer.
	if rd := httpGet(t, url+"readyz"); !strings.Contains(rd, `"ready": true`) {
		t.Errorf("/readyz during the run: %s", rd)
	}
	if v := await(ctx, t, stdout, 0, done, "verdict"); v != "OK" {
		t.Fatalf("verdict %s; report:\n%s", v, stdout)
	}

	metricsText := httpGet(t, url+"metrics")
	dom := chromium(ctx, t, exe, url, "--dump-dom")
	want, got := expected(t, metricsText), shown(t, dom)
	for _, key := range []string{"consumer:orders:claims", "consumer:orders:dead_letters_now", "consumer:payments:claims",
		"consumer:orders:lag", "consumer:orders:unacked", "outbox:orders:unsent"} {
		if _, ok := got[key]; !ok {
			t.Errorf("the page shows no %s", key)
		}
	}
	if got["consumer:orders:claims"] < 2000 || got["consumer:payments:claims"] < 2000 || got["consumer:orders:dead_letters_now"] == 0 {
		t.Errorf("page: %v; want every order claimed by both consumers, and the malformed orders dead-lettered", got)
	}
	// The workers' counters, summed (no fault: every worker handed in its
	// final values).
	if got["consumer:orders:applied"] != 2000 || got["consumer:payments:applied"] != 2000 || got["sli:eos_duplicate_effects_total"] != 0 {
		t.Errorf("page: %v; want 2000 orders applied and charged, no duplicate effect", got)
	}
	for key, v := range got {
		if strings.HasPrefix(key, "latency:") {
			continue // estimated from the buckets: checked in package serve
		}
		if w, ok := want[key]; !ok || w != v {
			t.Errorf("page shows %s = %g; /metrics gives %g (present %v)", key, v, w, ok)
		}
	}
	for key := range want {
		if _, ok := got[key]; !ok {
			t.Errorf("/metrics has %s, the page does not show it", key)
		}
	}
	if st := statusOf(t, url); len(st.Errors) > 0 || !st.Readiness.Ready {
		t.Errorf("status after the run: errors %q, readiness %+v; want none, ready", st.Errors, st.Readiness)
	}
	if !strings.Contains(dom, "invalid order") {
		t.Error("the page lists no dead letter with its error")
	}

	shot := filepath.Join(t.TempDir(), "status.png")
	chromium(ctx, t, exe, url, "--screenshot="+shot, "--window-size=1280,1800", "--hide-scrollbars")
	if fi, err := os.Stat(shot); err != nil || fi.Size() == 0 {
		t.Fatalf("no screenshot: %v", err)
	}
	t.Logf("screenshot: %s", shot)
	if art := os.Getenv("EOS_TEST_ARTIFACTS"); art != "" {
		copyFile(t, shot, filepath.Join(art, "status.png"))
	}

	// eos serve over the live run's directory (its server, through
	// DIR/nats.url), then over the ended run's (a server of its own).
	serveDir(ctx, t, dir, "live", got)
	// eos reconcile over the live run's directory: through its server too.
	if r := runCmd(t, time.Minute, "reconcile", "--dir", dir); r.code != exitOK {
		t.Errorf("eos reconcile on the live run: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	stopDemo() // ends the linger: the report's status stays
	if code := <-done; code != exitOK {
		t.Fatalf("demo exit %d, want 0 after an interrupted linger", code)
	}
	serveDir(ctx, t, dir, "ended", got)
}

// serveDir runs eos serve --dir dir and checks that it is ready, shows
// the claims the demo's page showed, and that its first scheduled
// reconciliation (at once) finds nothing and is exported.
func serveDir(ctx context.Context, t *testing.T, dir, when string, page map[string]float64) {
	t.Helper()
	serveCtx, stopServe := context.WithCancel(ctx)
	defer stopServe()
	serveErr := newWatch(`status page at (http://\S+)`, `reconciled orders: (\w+)`, `reconciled payments: (\w+)`)
	served := make(chan int, 1)
	go func() {
		served <- run(serveCtx, []string{"serve", "--dir", dir, "--addr", "127.0.0.1:0"}, strings.NewReader(""), io.Discard, serveErr)
	}()
	url := await(ctx, t, serveErr, 0, served, "eos serve's address")
	for i, consumer := range []string{"orders", "payments"} {
		if r := await(ctx, t, serveErr, i+1, served, "reconciliation of "+consumer); r != "ok" {
			t.Errorf("eos serve, run %s: reconciled %s: %s; output:\n%s", when, consumer, r, serveErr)
		}
	}
	for _, series := range []string{`eos_missed_apply_total{consumer="orders"} 0`, `eos_missed_apply_total{consumer="payments"} 0`,
		`eos_duplicate_effects_total{consumer="orders"} 0`, `eos_partial_commits_total{outbox="orders"} 0`,
		`eos_reconcile_runs_total{consumer="orders",result="ok"} 1`} {
		if m := httpGet(t, url+"metrics"); !strings.Contains(m, series) {
			t.Errorf("eos serve, run %s: /metrics has no %s", when, series)
		}
	}
	if rd := httpGet(t, url+"readyz"); !strings.Contains(rd, `"ready": true`) {
		t.Errorf("eos serve, run %s: /readyz %s", when, rd)
	}
	c := claims(statusOf(t, url))
	if len(c) != 2 || c["orders"] != page["consumer:orders:claims"] || c["payments"] != page["consumer:payments:claims"] {
		t.Errorf("eos serve, run %s: claims %v; want those the demo's page showed (%v)", when, c, page)
	}
	stopServe()
	if code := <-served; code != exitOK {
		t.Errorf("eos serve, run %s: exit %d, stderr %s", when, code, serveErr)
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err == nil {
		err = os.MkdirAll(filepath.Dir(to), 0o755)
	}
	if err == nil {
		err = os.WriteFile(to, b, 0o644)
	}
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Errorf("copying the screenshot to %s: %v", to, err)
	}
}

// statusOf fetches and decodes url's status.json.
func statusOf(t *testing.T, url string) serve.Status {
	t.Helper()
	var st serve.Status
	if err := json.Unmarshal([]byte(httpGet(t, url+"status.json")), &st); err != nil {
		t.Fatal(err)
	}
	return st
}

// claims returns each consumer's claims in st.
func claims(st serve.Status) map[string]float64 {
	out := map[string]float64{}
	for _, c := range st.Consumers {
		if c.Claims != nil {
			out[c.Name] = *c.Claims
		}
	}
	return out
}

// TestServeExternalRun runs a demo on PostgreSQL and NATS with --serve and
// a linger, and while it lingers watches the run with eos serve --run
// (the run id its report prints): both pages must show the same numbers.
func TestServeExternalRun(t *testing.T) {
	pg, natsURL := testenv.PostgresURL(t), testenv.NATSURL(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	demoCtx, stopDemo := context.WithCancel(ctx)
	defer stopDemo()
	stdout, stderr := newWatch(`(?m)^verdict: (\w+)`, `run id: ([0-9a-f]+)`), newWatch(`status page at (http://\S+)`)
	done := make(chan int, 1)
	go func() {
		done <- run(demoCtx, []string{"demo", "--orders", "300", "--workers", "2", "--dir", t.TempDir(), "--timeout", "90s",
			"--postgres", pg, "--nats", natsURL, "--serve", "127.0.0.1:0", "--serve-linger", "10m"}, strings.NewReader(""), stdout, stderr)
	}()
	demoURL := await(ctx, t, stderr, 0, done, "status page address")
	if v := await(ctx, t, stdout, 0, done, "verdict"); v != "OK" {
		t.Fatalf("verdict %s; report:\n%s", v, stdout)
	}
	runID := await(ctx, t, stdout, 1, done, "run id")

	serveCtx, stopServe := context.WithCancel(ctx)
	defer stopServe()
	serveErr := newWatch(`status page at (http://\S+)`)
	served := make(chan int, 1)
	go func() {
		served <- run(serveCtx, []string{"serve", "--postgres", pg, "--nats", natsURL, "--run", runID, "--addr", "127.0.0.1:0"},
			strings.NewReader(""), io.Discard, serveErr)
	}()
	serveURL := await(ctx, t, serveErr, 0, served, "eos serve's address")
	if rd := httpGet(t, serveURL+"readyz"); !strings.Contains(rd, `"ready": true`) {
		t.Errorf("eos serve /readyz: %s", rd)
	}
	fromDemo, fromServe := statusOf(t, demoURL), statusOf(t, serveURL)
	dc, sc := claims(fromDemo), claims(fromServe)
	if dc["orders"] < 300 || dc["payments"] < 300 || dc["orders"] != sc["orders"] || dc["payments"] != sc["payments"] {
		t.Errorf("claims: demo's page %v, eos serve's %v; want the same, every order claimed", dc, sc)
	}
	if len(fromServe.DeadLetters) != 2 || fromServe.DeadLetters[0].Total != fromDemo.DeadLetters[0].Total || fromServe.DeadLetters[0].Total == 0 {
		t.Errorf("dead letters: demo's page %+v, eos serve's %+v", fromDemo.DeadLetters, fromServe.DeadLetters)
	}
	stopServe()
	if code := <-served; code != exitOK {
		t.Errorf("eos serve exit %d, stderr %s", code, serveErr)
	}
	stopDemo()
	if code := <-done; code != exitOK {
		t.Errorf("demo exit %d", code)
	}
}
