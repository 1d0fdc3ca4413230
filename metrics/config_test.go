package metrics_test

import (
	"errors"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/eoskit/eos"
	"github.com/eoskit/eos/metrics"
)

func TestNewRefusesBadConfig(t *testing.T) {
	if _, err := metrics.New(nil, metrics.Config{}); !errors.Is(err, eos.ErrInvalidConfig) {
		t.Errorf("nil registerer: %v, want a config error", err)
	}
	_, err := metrics.New(prometheus.NewRegistry(), metrics.Config{BatchSizeBuckets: []float64{1, 4, 4}})
	var ce *eos.ConfigError
	if !errors.As(err, &ce) || ce.Field != "metrics.Config.BatchSizeBuckets" {
		t.Errorf("buckets not increasing: %v, want a config error on BatchSizeBuckets", err)
	}
}

func TestWithDefaults(t *testing.T) {
	c, err := metrics.Config{}.WithDefaults()
	if err != nil {
		t.Fatal(err)
	}
	if len(c.LatencyBuckets) == 0 || len(c.BatchSecondsBuckets) == 0 || len(c.BatchSizeBuckets) == 0 || c.NoExemplars {
		t.Errorf("defaults not applied: %+v", c)
	}
	c.LatencyBuckets[0] = -1
	if metrics.DefaultLatencyBuckets[0] == -1 {
		t.Error("WithDefaults handed out the default slice itself")
	}
}

// TestRegisterConflict: a second New on one registry is an error, not a
// panic, and a New that fails unregisters what it had registered.
func TestRegisterConflict(t *testing.T) {
	reg := &liveRegisterer{Registerer: prometheus.NewRegistry(), live: map[prometheus.Collector]bool{}}
	other := prometheus.NewCounter(prometheus.CounterOpts{Name: "eos_relay_parked_total", Help: "someone else's"})
	if err := reg.Register(other); err != nil {
		t.Fatal(err)
	}
	_, err := metrics.New(reg, metrics.Config{})
	var re *metrics.RegisterError
	if !errors.Is(err, metrics.ErrRegister) || !errors.As(err, &re) || re.Metric != "eos_relay_parked_total" {
		t.Fatalf("New on a registry holding one of its names: %v", err)
	}
	if len(reg.live) != 1 || !reg.live[other] {
		t.Fatalf("the failed New left %d collectors registered", len(reg.live)-1)
	}

	reg2 := prometheus.NewRegistry()
	if _, err := metrics.New(reg2, metrics.Config{}); err != nil {
		t.Fatal(err)
	}
	var are prometheus.AlreadyRegisteredError
	if _, err := metrics.New(reg2, metrics.Config{}); !errors.Is(err, metrics.ErrRegister) || !errors.As(err, &are) {
		t.Fatalf("second New on one registry: %v, want ErrRegister and AlreadyRegisteredError", err)
	}
}

// liveRegisterer is a real registry that keeps the set of collectors
// registered on it.
type liveRegisterer struct {
	prometheus.Registerer
	live map[prometheus.Collector]bool
}

func (r *liveRegisterer) Register(c prometheus.Collector) error {
	if err := r.Registerer.Register(c); err != nil {
		return err
	}
	r.live[c] = true
	return nil
}

func (r *liveRegisterer) Unregister(c prometheus.Collector) bool {
	delete(r.live, c)
	return r.Registerer.Unregister(c)
}

// TestExemplarBound: exemplar labels stay within Prometheus's bound
// whatever the id (client_golang panics beyond it), and a malformed
// traceparent adds no trace id.
func TestExemplarBound(t *testing.T) {
	long := strings.Repeat("é", 300) + "\xff"
	for _, c := range []struct {
		name, id, traceparent string
		trace                 bool
	}{
		{"long id", long, "", false},
		{"long id with trace", long, traceparent, true},
		{"upper-case trace", "m", strings.ToUpper(traceparent), false},
		{"zero trace", "m", "00-00000000000000000000000000000000-00f067aa0ba902b7-01", false},
		{"short", "m", "00-4bf92f3577b34da6a3ce929d0e0e4736-01", false},
		{"version ff", "m", "ff" + traceparent[2:], false},
		{"future version, longer", "m", "01" + traceparent[2:] + "-more", true},
		{"version 00, longer", "m", traceparent + "-more", false},
		{"future version, no dash", "m", "01" + traceparent[2:] + "more", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			labels := metrics.ExemplarForTest(c.id, map[string]string{"traceparent": c.traceparent})
			n := 0
			for k, v := range labels {
				if !utf8.ValidString(v) {
					t.Errorf("label %s not valid UTF-8", k)
				}
				n += utf8.RuneCountInString(k) + utf8.RuneCountInString(v)
			}
			if n > prometheus.ExemplarMaxRunes {
				t.Errorf("exemplar of %d runes", n)
			}
			if _, ok := labels["trace_id"]; ok != c.trace {
				t.Errorf("trace_id present %v, want %v (%v)", ok, c.trace, labels)
			}
			// Accepted by client_golang (it panics on a bad exemplar).
			prometheus.NewCounter(prometheus.CounterOpts{Name: "x"}).(prometheus.ExemplarAdder).AddWithExemplar(1, labels)
		})
	}
}
