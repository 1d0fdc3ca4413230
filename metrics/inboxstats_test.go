package metrics_test

import (
	"context"
	"database/sql"
	"errors"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/eoskit/eos"
	"github.com/eoskit/eos/inbox"
	"github.com/eoskit/eos/inbox/inboxtest"
	"github.com/eoskit/eos/internal/testdb"
	"github.com/eoskit/eos/metrics"
)

// TestWatchInboxStore reads a real inbox's rows: three claims, of which one a
// dead letter, and a quarantined delivery; then a failing read.
func TestWatchInboxStore(t *testing.T) {
	ctx := context.Background()
	e := testdb.SQLite(t)
	pay := testdb.Payments[*sql.Tx]{E: e}
	pay.Setup(t, 10, 1000)
	h := func(ctx context.Context, tx *sql.Tx, msg eos.Message) error {
		if msg.ID == "poison" {
			return inbox.Permanent(errors.New("poison"))
		}
		return pay.Handler(ctx, tx, msg)
	}
	p, err := inbox.New(e.Driver, h, inbox.Config{Consumer: "pay"})
	if err != nil {
		t.Fatal(err)
	}
	m, reg := newMetrics(t)
	failing := false
	stats := func(ctx context.Context) (inbox.Stats, error) {
		if failing {
			return inbox.Stats{}, errors.New("store down")
		}
		return p.Stats(ctx)
	}
	if err := m.WatchInboxStore("pay", stats); err != nil {
		t.Fatal(err)
	}
	inboxtest.Process(ctx, t, p, testdb.Message("m1", "a1", 1), testdb.Message("m2", "a2", 2), testdb.Message("poison", "a3", 3))
	inboxtest.Process(ctx, t, p, testdb.Message("m1", "a1", 10))
	names := []string{"eos_inbox_claims", "eos_inbox_dead_letters", "eos_inbox_quarantine", "eos_inbox_stats_errors_total"}
	const help = `
# HELP eos_inbox_stats_errors_total Reads of an inbox's stored rows for a scrape that failed or timed out; the gauges were left out.
# TYPE eos_inbox_stats_errors_total counter
`
	want := `
# HELP eos_inbox_claims Dedupe records the inbox keeps for the consumer: ids claimed and not compacted.
# TYPE eos_inbox_claims gauge
eos_inbox_claims{consumer="pay"} 3
# HELP eos_inbox_dead_letters Dead letters of the consumer in the store now, waiting to be requeued or discarded.
# TYPE eos_inbox_dead_letters gauge
eos_inbox_dead_letters{consumer="pay"} 1
# HELP eos_inbox_quarantine Quarantined deliveries of the consumer in the store now.
# TYPE eos_inbox_quarantine gauge
eos_inbox_quarantine{consumer="pay"} 1` + help + `eos_inbox_stats_errors_total{consumer="pay"} 0
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), names...); err != nil {
		t.Error(err)
	}
	failing = true
	if err := testutil.GatherAndCompare(reg, strings.NewReader(help+`eos_inbox_stats_errors_total{consumer="pay"} 1
`), names...); err != nil {
		t.Errorf("failing read: %v", err)
	}
	if err := m.WatchInboxStore("pay", stats); !errors.Is(err, metrics.ErrRegister) {
		t.Errorf("second WatchInboxStore: %v, want ErrRegister", err)
	}
	var ce *eos.ConfigError
	if err := m.WatchInboxStore("", stats); !errors.As(err, &ce) {
		t.Errorf("empty consumer: %v", err)
	}
	if err := m.WatchInboxStore("x", nil); !errors.As(err, &ce) {
		t.Errorf("nil stats: %v", err)
	}
}
