package scrape

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
)

// proc is one worker process in a test: its registry, served.
type proc struct {
	reg     *prometheus.Registry
	applied *prometheus.CounterVec
	depth   prometheus.Gauge
	batch   prometheus.Histogram
	srv     *Server
}

func newProc(t *testing.T) *proc {
	t.Helper()
	p := &proc{reg: prometheus.NewRegistry(),
		applied: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "t_messages_total", Help: "messages"}, []string{"consumer"}),
		depth:   prometheus.NewGauge(prometheus.GaugeOpts{Name: "t_depth", Help: "depth"}),
		batch:   prometheus.NewHistogram(prometheus.HistogramOpts{Name: "t_batch", Help: "batch", Buckets: []float64{1, 10, 100}}),
	}
	p.reg.MustRegister(p.applied, p.depth, p.batch)
	var err error
	if p.srv, err = Listen(p.reg); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.srv.Close() })
	return p
}

func newPool(t *testing.T) (*Pool, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	p, err := New(reg, Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p, reg
}

func announce(t *testing.T, p *Pool, child string, start int, w *proc) {
	t.Helper()
	if err := p.Announce(child, start, w.srv.Addr()); err != nil {
		t.Fatal(err)
	}
}

// gathered returns the families p gathers, by name.
func gathered(t *testing.T, p prometheus.Gatherer) map[string]*dto.MetricFamily {
	t.Helper()
	fams, err := p.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]*dto.MetricFamily{}
	for _, f := range fams {
		out[f.GetName()] = f
	}
	return out
}

// series returns the series of f with the label name=value (any, when
// name is empty).
func series(t *testing.T, f *dto.MetricFamily, name, value string) *dto.Metric {
	t.Helper()
	for _, m := range f.GetMetric() {
		if name == "" {
			return m
		}
		for _, l := range m.GetLabel() {
			if l.GetName() == name && l.GetValue() == value {
				return m
			}
		}
	}
	t.Fatalf("%s: no series %s=%q in %v", f.GetName(), name, value, f)
	return nil
}

func counter(t *testing.T, fams map[string]*dto.MetricFamily, name, consumer string) float64 {
	t.Helper()
	f, ok := fams[name]
	if !ok {
		t.Fatalf("no %s in %v", name, fams)
	}
	return series(t, f, "consumer", consumer).GetCounter().GetValue()
}

func TestTwoWorkersSummed(t *testing.T) {
	p, reg := newPool(t)
	a, b := newProc(t), newProc(t)
	a.applied.WithLabelValues("orders").Add(3)
	a.applied.WithLabelValues("payments").Add(1)
	b.applied.WithLabelValues("orders").Add(4)
	a.depth.Set(2)
	b.depth.Set(5)
	announce(t, p, "orders-0", 1, a)
	announce(t, p, "orders-1", 1, b)
	fams := gathered(t, p)
	if got := counter(t, fams, "t_messages_total", "orders"); got != 7 {
		t.Errorf("orders: %v, want 3+4", got)
	}
	if got := counter(t, fams, "t_messages_total", "payments"); got != 1 {
		t.Errorf("payments: %v, want 1", got)
	}
	if f := fams["t_messages_total"]; len(f.GetMetric()) != 2 || f.GetHelp() != "messages" || f.GetType() != dto.MetricType_COUNTER {
		t.Errorf("family %v, want two counters, no worker label", f)
	}
	if got := series(t, fams["t_depth"], "", "").GetGauge().GetValue(); got != 7 {
		t.Errorf("depth %v, want 2+5", got)
	}
	if n := testutil.ToFloat64(p.errors); n != 0 {
		t.Errorf("%v scrape errors", n)
	}
	if _, err := (prometheus.Gatherers{p, reg}).Gather(); err != nil {
		t.Errorf("the sums do not pass a registry's checks: %v", err)
	}
}

func TestHistogramsSummedBucketByBucket(t *testing.T) {
	p, _ := newPool(t)
	a, b := newProc(t), newProc(t)
	for _, v := range []float64{0.5, 5, 50, 500} {
		a.batch.Observe(v)
	}
	b.batch.Observe(5)
	b.batch.Observe(7)
	announce(t, p, "a", 1, a)
	announce(t, p, "b", 1, b)
	h := series(t, gathered(t, p)["t_batch"], "", "").GetHistogram()
	var got []uint64
	for _, bk := range h.GetBucket() {
		got = append(got, bk.GetCumulativeCount())
	}
	if want := []uint64{1, 4, 5}; !equal(got, want) || h.GetSampleCount() != 6 || h.GetSampleSum() != 567.5 {
		t.Errorf("buckets %v, count %d, sum %v; want %v, 6, 567.5", got, h.GetSampleCount(), h.GetSampleSum(), want)
	}
}

func equal(a, b []uint64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// A worker killed and restarted starts again from zero; the sums go on
// from the last values scraped of its first life. Its gauges die with it.
func TestCountersCarriedOverARestart(t *testing.T) {
	p, _ := newPool(t)
	life1 := newProc(t)
	life1.applied.WithLabelValues("orders").Add(5)
	life1.depth.Set(9)
	life1.batch.Observe(5)
	announce(t, p, "w", 1, life1)
	p.Scrape(t.Context())
	life1.applied.WithLabelValues("orders").Add(100) // after the last scrape: lost
	life1.srv.Close()                                // SIGKILL

	// Dead, not known to be yet: skipped, counted, its last values stand in.
	fams := gathered(t, p)
	if got := counter(t, fams, "t_messages_total", "orders"); got != 5 {
		t.Errorf("while down: %v, want the last scraped 5", got)
	}
	if _, ok := fams["t_depth"]; ok {
		t.Error("a gauge of a worker that did not answer was kept")
	}
	if n := testutil.ToFloat64(p.errors); n != 1 {
		t.Errorf("%v scrape errors, want 1", n)
	}
	p.End("w", 1, filepath.Join(t.TempDir(), "none")) // killed: no final values
	life2 := newProc(t)
	life2.applied.WithLabelValues("orders").Add(2)
	life2.depth.Set(1)
	life2.batch.Observe(50)
	announce(t, p, "w", 2, life2)
	announce(t, p, "w", 1, life1) // late: ignored
	fams = gathered(t, p)
	if got := counter(t, fams, "t_messages_total", "orders"); got != 7 {
		t.Errorf("after the restart: %v, want 5+2", got)
	}
	if got := series(t, fams["t_depth"], "", "").GetGauge().GetValue(); got != 1 {
		t.Errorf("depth %v, want the live worker's 1", got)
	}
	if h := series(t, fams["t_batch"], "", "").GetHistogram(); h.GetSampleCount() != 2 {
		t.Errorf("histogram count %d, want 1+1", h.GetSampleCount())
	}
	// A graceful stop hands in the final values, which replace the last
	// scraped.
	life2.applied.WithLabelValues("orders").Add(10)
	path := filepath.Join(t.TempDir(), "final")
	if err := WriteFile(path, life2.reg); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("final values' file: %v, %v; want mode 0600", fi.Mode(), err)
	}
	life2.srv.Close()
	p.End("w", 2, path)
	fams = gathered(t, p)
	if got := counter(t, fams, "t_messages_total", "orders"); got != 17 {
		t.Errorf("after the stop: %v, want 5+12", got)
	}
	if _, ok := fams["t_depth"]; ok {
		t.Error("a stopped worker's gauge was kept")
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the final values' file is still there: %v", err)
	}
	if n := testutil.ToFloat64(p.errors); n != 1 {
		t.Errorf("%v scrape errors, want still 1", n)
	}
}

// Two workers disagreeing on a family's type: the first (by name) wins,
// the other is left out and counted; a different help is not a conflict.
func TestMismatchedFamilies(t *testing.T) {
	p, _ := newPool(t)
	regA, regB := prometheus.NewRegistry(), prometheus.NewRegistry()
	ca := prometheus.NewCounter(prometheus.CounterOpts{Name: "t_x", Help: "counted by a"})
	ca.Add(2)
	regA.MustRegister(ca, prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "t_y", Help: "one help"}, func() float64 { return 1 }))
	gb := prometheus.NewGauge(prometheus.GaugeOpts{Name: "t_x", Help: "a gauge in b"})
	gb.Set(40)
	hb := prometheus.NewHistogram(prometheus.HistogramOpts{Name: "t_h", Buckets: []float64{1}})
	hb.Observe(1)
	regB.MustRegister(gb, hb, prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "t_y", Help: "another help"}, func() float64 { return 2 }))
	regC := prometheus.NewRegistry()
	hc := prometheus.NewHistogram(prometheus.HistogramOpts{Name: "t_h", Buckets: []float64{1, 2}})
	hc.Observe(1)
	regC.MustRegister(hc)
	for i, reg := range []*prometheus.Registry{regA, regB, regC} {
		srv, err := Listen(reg)
		if err != nil {
			t.Fatal(err)
		}
		defer srv.Close()
		if err := p.Announce(string(rune('a'+i)), 1, srv.Addr()); err != nil {
			t.Fatal(err)
		}
	}
	fams := gathered(t, p)
	if f := fams["t_x"]; f.GetType() != dto.MetricType_COUNTER || series(t, f, "", "").GetCounter().GetValue() != 2 {
		t.Errorf("t_x %v, want a's counter alone", f)
	}
	if f := fams["t_y"]; f.GetHelp() != "one help" || series(t, f, "", "").GetCounter().GetValue() != 3 {
		t.Errorf("t_y %v, want 1+2 with a's help", f)
	}
	if h := series(t, fams["t_h"], "", "").GetHistogram(); h.GetSampleCount() != 1 || len(h.GetBucket()) != 1 {
		t.Errorf("t_h %v, want b's alone", h)
	}
	if n := testutil.ToFloat64(p.conflicts); n != 2 {
		t.Errorf("%v conflicts, want 2 (t_x, t_h)", n)
	}
}

// The latest exemplar of a series is kept.
func TestExemplarsKept(t *testing.T) {
	p, _ := newPool(t)
	a, b := newProc(t), newProc(t)
	a.applied.WithLabelValues("orders").(prometheus.ExemplarAdder).AddWithExemplar(1, prometheus.Labels{"message_id": "older"})
	b.applied.WithLabelValues("orders").(prometheus.ExemplarAdder).AddWithExemplar(1, prometheus.Labels{"message_id": "newer"})
	announce(t, p, "a", 1, a)
	announce(t, p, "b", 1, b)
	ex := series(t, gathered(t, p)["t_messages_total"], "consumer", "orders").GetCounter().GetExemplar()
	if ex == nil || len(ex.GetLabel()) != 1 || ex.GetLabel()[0].GetValue() != "newer" {
		t.Errorf("exemplar %v, want the newer one", ex)
	}
}

// What a worker announces is checked: loopback, a port, a Server's path.
func TestAnnouncementsChecked(t *testing.T) {
	p, _ := newPool(t)
	token := strings.Repeat("ab", tokenBytes)
	for _, bad := range []string{"", "127.0.0.1", "10.0.0.1:80/metrics/" + token, "example.com:80/metrics/" + token,
		"127.0.0.1:0/metrics/" + token, "127.0.0.1:80/metrics/xyz", "127.0.0.1:80/other/" + token, "127.0.0.1:80/metrics/" + token + "/x"} {
		if err := p.Announce("w", 1, bad); !errors.Is(err, errAddr) {
			t.Errorf("Announce(%q): %v, want refused", bad, err)
		}
	}
	if err := p.Announce("w", 1, "[::1]:8080/metrics/"+token); err != nil {
		t.Errorf("IPv6 loopback refused: %v", err)
	}
}

// A worker's answer is read up to the byte limit; past it, the scrape
// fails and is counted.
func TestScrapeBounded(t *testing.T) {
	reg := prometheus.NewRegistry()
	p, err := New(reg, Config{MaxBytes: 64})
	if err != nil {
		t.Fatal(err)
	}
	big := newProc(t)
	for i := range 20 {
		big.applied.WithLabelValues(strings.Repeat("c", i+1)).Inc()
	}
	announce(t, p, "w", 1, big)
	fams, err := p.Gather()
	if err != nil || len(fams) != 0 {
		t.Errorf("Gather: %v, %v; want nothing", fams, err)
	}
	if n := testutil.ToFloat64(p.errors); n != 1 {
		t.Errorf("%v scrape errors, want 1", n)
	}
	// And a server answering in another format is refused.
	text := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		w.Write([]byte("t_x 1\n"))
	}))
	defer text.Close()
	if _, err := p.fetch(t.Context(), text.URL); err == nil {
		t.Error("a text answer was accepted")
	}
}
