package metrics_test

import (
	"context"
	"database/sql"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"

	"github.com/eoskit/eos"
	"github.com/eoskit/eos/inbox"
	"github.com/eoskit/eos/inbox/inboxtest"
	"github.com/eoskit/eos/internal/testdb"
	"github.com/eoskit/eos/internal/testdb/engines"
	"github.com/eoskit/eos/metrics"
)

const traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

func newMetrics(t *testing.T) (*metrics.Metrics, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	m, err := metrics.New(reg, metrics.Config{})
	if err != nil {
		t.Fatal(err)
	}
	return m, reg
}

func TestInbox(t *testing.T) {
	engines.Each(t, testInbox, testInbox)
}

// testInbox runs two batches of payments through a real inbox fed to
// the metrics: new messages, a poison one, one failing once, then
// redeliveries (duplicates), a reused id with another payload
// (quarantined) and an invalid message.
func testInbox[TTx any](t *testing.T, e *testdb.Engine[TTx]) {
	ctx := context.Background()
	pay := testdb.Payments[TTx]{E: e}
	pay.Setup(t, 10, 1000)
	m, reg := newMetrics(t)
	failed := map[string]bool{}
	h := func(ctx context.Context, tx TTx, msg eos.Message) error {
		switch msg.ID {
		case "poison":
			return inbox.Permanent(errors.New("poison"))
		case "flaky":
			if !failed[msg.ID] {
				failed[msg.ID] = true
				return errors.New("flaky: first attempt fails")
			}
		}
		return pay.Handler(ctx, tx, msg)
	}
	p, err := inbox.New(e.Driver, h, inbox.Config{Consumer: "pay", Hooks: []inbox.Hook{m.InboxHook()}})
	if err != nil {
		t.Fatal(err)
	}
	created := time.Now().Add(-time.Second)
	msg := func(id, account string, amount int64) eos.Message {
		m := testdb.Message(id, account, amount)
		m.CreatedAt = created
		return m
	}
	m1, m2, m3 := msg("m1", "a1", 1), msg("m2", "a2", 2), msg("m3", "a3", 3)
	inboxtest.Process(ctx, t, p, m1, m2, m3, msg("poison", "a4", 4), msg("flaky", "a5", 5))
	m2again := m2
	m2again.Headers = map[string]string{"traceparent": traceparent}
	inboxtest.Process(ctx, t, p, m1, m2again, msg("m3", "a3", 30), msg("flaky", "a5", 5),
		eos.Message{ID: "", Payload: []byte("1")})

	outcomes := map[string]float64{"applied": 4, "duplicate": 2, "quarantined": 1, "retry": 1, "dead_lettered": 2}
	for o, want := range outcomes {
		c, err := metricsVec(reg, "eos_inbox_messages_total", map[string]string{"consumer": "pay", "outcome": o})
		if err != nil {
			t.Fatal(err)
		}
		if got := c.GetCounter().GetValue(); got != want {
			t.Errorf("eos_inbox_messages_total{outcome=%q} = %v, want %v", o, got, want)
		}
	}
	expect := `
# HELP eos_dead_lettered_total Messages moved to the dead-letter table: failed too often, failed permanently, or invalid.
# TYPE eos_dead_lettered_total counter
eos_dead_lettered_total{consumer="pay"} 2
# HELP eos_dedupe_store_errors_total Failures of the store on the inbox's own path (claim, record, quarantine, admin calls); processing stalls meanwhile.
# TYPE eos_dedupe_store_errors_total counter
eos_dedupe_store_errors_total{consumer="pay"} 0
# HELP eos_duplicates_suppressed_total Deliveries of an already applied message (same id, same fingerprint), acked without applying them again.
# TYPE eos_duplicates_suppressed_total counter
eos_duplicates_suppressed_total{consumer="pay"} 2
# HELP eos_quarantined_total Deliveries reusing an applied message's id with a different fingerprint, stored in quarantine and not applied.
# TYPE eos_quarantined_total counter
eos_quarantined_total{consumer="pay"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(expect), "eos_dead_lettered_total",
		"eos_dedupe_store_errors_total", "eos_duplicates_suppressed_total", "eos_quarantined_total"); err != nil {
		t.Error(err)
	}
	histogram := func(name string) *dto.Histogram {
		t.Helper()
		mt, err := metricsVec(reg, name, map[string]string{"consumer": "pay"})
		if err != nil {
			t.Fatal(err)
		}
		return mt.GetHistogram()
	}
	if h := histogram("eos_inbox_batch_size"); h.GetSampleCount() != 2 || h.GetSampleSum() != 10 {
		t.Errorf("eos_inbox_batch_size: %d batches of %v deliveries, want 2 of 10", h.GetSampleCount(), h.GetSampleSum())
	}
	if h := histogram("eos_inbox_batch_seconds"); h.GetSampleCount() != 2 {
		t.Errorf("eos_inbox_batch_seconds: %d batches, want 2", h.GetSampleCount())
	}
	for _, phase := range []string{"claim", "handle", "commit"} {
		mt, err := metricsVec(reg, "eos_inbox_phase_seconds", map[string]string{"consumer": "pay", "phase": phase})
		if err != nil {
			t.Fatal(err)
		}
		if h := mt.GetHistogram(); h.GetSampleCount() != 2 || h.GetSampleSum() <= 0 {
			t.Errorf("eos_inbox_phase_seconds{phase=%q}: %d batches summing %v s, want 2 summing more than 0",
				phase, h.GetSampleCount(), h.GetSampleSum())
		}
	}
	// The four applied messages, each created a second or more before the
	// commit of its batch.
	if h := histogram("eos_end_to_end_seconds"); h.GetSampleCount() != 4 || h.GetSampleSum() < 4 {
		t.Errorf("eos_end_to_end_seconds: %d samples summing %v, want 4 summing at least 4", h.GetSampleCount(), h.GetSampleSum())
	}

	dup := exemplarOf(t, reg, "eos_duplicates_suppressed_total", "pay")
	if want := map[string]string{"message_id": "m2", "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736"}; !equalMaps(dup, want) {
		t.Errorf("duplicate exemplar %v, want %v", dup, want)
	}
	if q, want := exemplarOf(t, reg, "eos_quarantined_total", "pay"), map[string]string{"message_id": "m3"}; !equalMaps(q, want) {
		t.Errorf("quarantine exemplar %v, want %v", q, want)
	}
}

// TestStoreErrors counts the failures of a store that is down, on a real
// SQLite database behind testdb.Flaky.
func TestStoreErrors(t *testing.T) {
	ctx := context.Background()
	e := testdb.SQLite(t)
	pay := testdb.Payments[*sql.Tx]{E: e}
	pay.Setup(t, 10, 1000)
	m, reg := newMetrics(t)
	flaky := &testdb.Flaky[*sql.Tx]{Driver: e.Driver}
	p, err := inbox.New(flaky, pay.Handler, inbox.Config{Consumer: "pay", Hooks: []inbox.Hook{m.InboxHook()}})
	if err != nil {
		t.Fatal(err)
	}
	flaky.Down.Store(true)
	ds := inboxtest.NewDeliveries(testdb.Message("m1", "a1", 1))
	if _, err := p.Process(ctx, ds.Inbox()); !errors.Is(err, eos.ErrStore) {
		t.Fatalf("Process with the store down: %v, want a store error", err)
	}
	flaky.Down.Store(false)
	inboxtest.Process(ctx, t, p, testdb.Message("m1", "a1", 1))
	expect := `
# HELP eos_dedupe_store_errors_total Failures of the store on the inbox's own path (claim, record, quarantine, admin calls); processing stalls meanwhile.
# TYPE eos_dedupe_store_errors_total counter
eos_dedupe_store_errors_total{consumer="pay"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(expect), "eos_dedupe_store_errors_total"); err != nil {
		t.Error(err)
	}
	if got := applied(t, reg, "pay"); got != 1 {
		t.Errorf("applied %v after the store came back, want 1", got)
	}
}

func applied(t *testing.T, reg *prometheus.Registry, consumer string) float64 {
	t.Helper()
	mt, err := metricsVec(reg, "eos_inbox_messages_total", map[string]string{"consumer": consumer, "outcome": "applied"})
	if err != nil {
		t.Fatal(err)
	}
	return mt.GetCounter().GetValue()
}

// counterValue is the value of the counter series of family name with the
// given labels, 0 when there is none.
func counterValue(reg *prometheus.Registry, name string, labels map[string]string) float64 {
	mt, err := metricsVec(reg, name, labels)
	if err != nil {
		return 0
	}
	return mt.GetCounter().GetValue()
}

// metricsVec gathers reg and returns the series of family name with the
// given labels.
func metricsVec(reg *prometheus.Registry, name string, labels map[string]string) (*dto.Metric, error) {
	mfs, err := reg.Gather()
	if err != nil {
		return nil, err
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, mt := range mf.GetMetric() {
			got := map[string]string{}
			for _, lp := range mt.GetLabel() {
				got[lp.GetName()] = lp.GetValue()
			}
			if equalMaps(got, labels) {
				return mt, nil
			}
		}
	}
	return nil, errors.New("no series " + name + " with those labels")
}

// exemplarOf returns the labels of the exemplar of counter name for
// consumer, failing t if it has none.
func exemplarOf(t *testing.T, reg *prometheus.Registry, name, consumer string) map[string]string {
	t.Helper()
	mt, err := metricsVec(reg, name, map[string]string{"consumer": consumer})
	if err != nil {
		t.Fatal(err)
	}
	ex := mt.GetCounter().GetExemplar()
	if ex == nil {
		t.Fatalf("%s has no exemplar", name)
	}
	out := map[string]string{}
	for _, lp := range ex.GetLabel() {
		out[lp.GetName()] = lp.GetValue()
	}
	return out
}

func equalMaps(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}
