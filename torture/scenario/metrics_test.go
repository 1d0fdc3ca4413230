package scenario_test

import (
	"cmp"
	"context"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/eoskit/eos/torture/scenario"
)

// cumulativeValues returns the value of every counter series and the
// count of every histogram and summary series g gathers, by name and
// labels.
func cumulativeValues(t *testing.T, g prometheus.Gatherer) map[string]float64 {
	t.Helper()
	fams, err := g.Gather()
	if err != nil {
		t.Errorf("Gather: %v", err)
	}
	out := map[string]float64{}
	for _, f := range fams {
		for _, m := range f.GetMetric() {
			var pairs []string
			for _, l := range m.GetLabel() {
				pairs = append(pairs, l.GetName()+"="+l.GetValue())
			}
			sort.Strings(pairs)
			key := f.GetName() + "{" + strings.Join(pairs, ",") + "}"
			switch f.GetType() {
			case dto.MetricType_COUNTER:
				out[key] = m.GetCounter().GetValue()
			case dto.MetricType_HISTOGRAM:
				out[key] = float64(m.GetHistogram().GetSampleCount())
			case dto.MetricType_SUMMARY:
				out[key] = float64(m.GetSummary().GetSampleCount())
			}
		}
	}
	return out
}

// runScenario runs o; the scenario is closed when the test ends.
func runScenario(t *testing.T, o scenario.Options) (*scenario.Scenario, *scenario.Result) {
	t.Helper()
	s, err := scenario.New(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	r, err := s.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return s, r
}

const ordersApplied = `eos_inbox_messages_total{consumer=orders,outcome=applied}`

// Without faults, every worker stops gracefully and hands in its final
// values: the gathered count of applied orders is the checker's.
func TestGathererCountsTheRun(t *testing.T) {
	skipShort(t)
	o := scenario.Options{Dir: filepath.Join(t.TempDir(), "run"), Orders: 300, Workers: 2, Accounts: 100, Seed: 7,
		Timeout: 2 * time.Minute, Stderr: testWriter{t}}
	s, r := runScenario(t, o)
	if !r.OK || r.Applied != 300 {
		t.Fatalf("run: ok %v, applied %d, failures %q", r.OK, r.Applied, r.Failures)
	}
	v := cumulativeValues(t, s.Gatherer())
	if got := v[ordersApplied]; got != float64(r.Applied) {
		t.Errorf("%s = %v, want the %d orders the checker found applied", ordersApplied, got, r.Applied)
	}
	const paid = `eos_inbox_messages_total{consumer=payments,outcome=applied}`
	if got := v[paid]; got != float64(r.Applied) {
		t.Errorf("%s = %v, want %d", paid, got, r.Applied)
	}
	for _, name := range []string{`eos_relay_published_total{topic=demo.payments}`, `eos_end_to_end_seconds{consumer=orders}`,
		`eos_inbox_batch_size{consumer=payments}`, `eos_demo_worker_scrape_errors_total{}`} {
		if _, ok := v[name]; !ok {
			t.Errorf("no %s in %v", name, v)
		}
	}
	if got := v[`eos_relay_published_total{topic=demo.payments}`]; got < float64(r.Applied) {
		t.Errorf("relay published %v, want at least %d", got, r.Applied)
	}
	// The producer's copies were suppressed; the sum keeps an exemplar
	// naming one of them.
	if r.DuplicatesSuppressed == 0 {
		t.Fatal("no duplicates in the run: the seed no longer makes any")
	}
	fams, err := s.Gatherer().Gather()
	if err != nil {
		t.Fatal(err)
	}
	var ex *dto.Exemplar
	for _, f := range fams {
		if f.GetName() == "eos_duplicates_suppressed_total" {
			for _, m := range f.GetMetric() {
				ex = cmp.Or(ex, m.GetCounter().GetExemplar())
			}
		}
	}
	if ex == nil || !slices.ContainsFunc(ex.GetLabel(), func(l *dto.LabelPair) bool { return l.GetName() == "message_id" && l.GetValue() != "" }) {
		t.Errorf("exemplar of eos_duplicates_suppressed_total: %v, want one with a message_id", ex)
	}
}

// With workers SIGKILLed and restarted, the gathered counters never go
// backwards, and never count more than was applied.
func TestGathererMonotonicUnderKills(t *testing.T) {
	gathers, decreases, sawOutbox := 0, 0, false
	o := scenario.Options{Dir: filepath.Join(t.TempDir(), "run"), Orders: 2000, Workers: 2, Accounts: 200, Seed: 11,
		Timeout: 3 * time.Minute, Chaos: true, Stderr: testWriter{t}}
	o.OnStart = func(ctx context.Context, s *scenario.Scenario) {
		g := s.Gatherer()
		prev := map[string]float64{}
		tick := time.NewTicker(100 * time.Millisecond) // a sampling rate, not a wait
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			fams, _ := g.Gather()
			for _, f := range fams {
				sawOutbox = sawOutbox || f.GetName() == "eos_outbox_unsent"
			}
			cur := cumulativeValues(t, g)
			gathers++
			for k, was := range prev {
				if now, ok := cur[k]; !ok || now < was {
					decreases++
					t.Errorf("gather %d: %s went from %v to %v (present: %v)", gathers, k, was, now, ok)
				}
			}
			prev = cur
		}
	}
	s, r := runScenario(t, o)
	if !r.OK {
		t.Fatalf("run failed: %q (%s)", r.Failures, r.IncompleteReason)
	}
	if r.Injected.Kills == 0 || gathers < 2 {
		t.Fatalf("%d kills, %d gathers: the test proved nothing", r.Injected.Kills, gathers)
	}
	if !sawOutbox {
		t.Error("no gather had the relay's eos_outbox_unsent")
	}
	final := cumulativeValues(t, s.Gatherer())
	if got := final[ordersApplied]; got > float64(r.Applied) || got == 0 {
		t.Errorf("%s = %v after %d kills, want 1..%d (what the checker found applied)", ordersApplied, got, r.Injected.Kills, r.Applied)
	}
	t.Logf("%d gathers, %d kills: %s = %v of %d applied", gathers, r.Injected.Kills, ordersApplied, final[ordersApplied], r.Applied)
}
