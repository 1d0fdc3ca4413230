package observe

import (
	"slices"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// TestMerged: the Observer's own families come from it, the workers'
// others from them, and a family only the Observer has (a reconciler's)
// from it; none twice.
func TestMerged(t *testing.T) {
	own, extra := prometheus.NewRegistry(), prometheus.NewRegistry()
	gauge := func(reg *prometheus.Registry, name string, v float64) {
		g := prometheus.NewGauge(prometheus.GaugeOpts{Name: name, Help: name})
		g.Set(v)
		reg.MustRegister(g)
	}
	gauge(own, "eos_outbox_unsent", 1)            // own family: the Observer's
	gauge(extra, "eos_outbox_unsent", 2)          // left out
	gauge(own, "eos_relay_store_errors_total", 0) // registered, not fed, by the Observer
	gauge(extra, "eos_relay_store_errors_total", 3)
	gauge(own, "eos_missed_apply_total", 4) // only the Observer's
	gauge(extra, "eos_inbox_stalled", 5)    // only the workers'
	mfs, err := merged{own: own, extra: extra}.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	var names []string
	for _, mf := range mfs {
		names = append(names, mf.GetName())
		got[mf.GetName()] = mf.GetMetric()[0].GetGauge().GetValue()
	}
	want := map[string]float64{"eos_outbox_unsent": 1, "eos_relay_store_errors_total": 3, "eos_missed_apply_total": 4, "eos_inbox_stalled": 5}
	if len(names) != len(want) || !slices.IsSorted(names) {
		t.Errorf("families %v, want each of %v once, sorted", names, want)
	}
	for name, v := range want {
		if got[name] != v {
			t.Errorf("%s = %g, want %g", name, got[name], v)
		}
	}
}
