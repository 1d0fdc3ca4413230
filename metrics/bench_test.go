package metrics_test

import (
	"context"
	"database/sql"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/eoskit/eos"
	"github.com/eoskit/eos/inbox"
	"github.com/eoskit/eos/inbox/inboxtest"
	"github.com/eoskit/eos/internal/testdb"
	"github.com/eoskit/eos/metrics"
)

const (
	benchAccounts = 100_000
	benchBalance  = int64(1) << 40
)

// BenchmarkInbox measures what the metrics cost the inbox: the payments
// workload with the per-message handler on SQLite, batches of 256, through
// two processors on one database, one without hooks (off) and one feeding
// a Metrics (on), taking turns batch by batch. Every message has a
// CreatedAt, so the end-to-end histogram is observed for each. It reports
// each one's events/s and on/off, the rate with metrics over the rate
// without (the target is at least 0.97).
func BenchmarkInbox(b *testing.B) {
	const batch = 256
	e := testdb.SQLite(b)
	pay := testdb.Payments[*sql.Tx]{E: e}
	pay.Setup(b, benchAccounts, benchBalance)
	m, err := metrics.New(prometheus.NewRegistry(), metrics.Config{})
	if err != nil {
		b.Fatal(err)
	}
	turn := func(name string, hooks []inbox.Hook) testdb.Turn {
		p, err := inbox.New(e.Driver, pay.Handler, inbox.Config{Consumer: "bench-" + name, MaxBatch: batch, Hooks: hooks})
		if err != nil {
			b.Fatal(err)
		}
		return testdb.Turn{Name: name, Batch: func(ctx context.Context, ms []eos.Message) error {
			now := time.Now()
			for i := range ms {
				ms[i].CreatedAt = now
			}
			res, err := p.Process(ctx, inboxtest.NewDeliveries(ms...).Inbox())
			if err != nil {
				return err
			}
			if n := res.Count(inbox.Applied); n != len(ms) {
				return fmt.Errorf("applied %d of %d", n, len(ms))
			}
			return nil
		}}
	}
	turns := []testdb.Turn{turn("off", nil), turn("on", []inbox.Hook{m.InboxHook()})}
	elapsed := testdb.RunTurns(b, batch, benchAccounts, turns)
	pay.CheckLedger(b, 2*b.N, benchAccounts, benchBalance)
	for k, t := range turns {
		b.ReportMetric(float64(b.N)/elapsed[k].Seconds(), t.Name+"-events/s")
	}
	b.ReportMetric(elapsed[0].Seconds()/elapsed[1].Seconds(), "on/off")
}
