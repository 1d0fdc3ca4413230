package postgres_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/eoskit/eos/driver"
	"github.com/eoskit/eos/driver/postgres"
	"github.com/eoskit/eos/internal/testdb/engines"
	"github.com/eoskit/eos/outbox"
)

// BenchmarkOutboxClaimBacklog measures what one relay pass costs the
// database while a backlog waits: OutboxClaim of a batch of
// outbox.DefaultBatchSize and Complete marking it sent, as the relay does.
// Each case enqueues, on a fresh schema, a history of rows already sent
// (left as a long-running relay leaves them: marked, not vacuumed) and then
// the backlog, keys taking turns row by row; after each pass as many rows
// are enqueued again (untimed), so the backlog stays as it is.
//
// The planner's statistics are those of the table when the history was
// sent (stats=stale: analyzed with no row unsent, as autovacuum leaves them
// until the backlog grows enough to trigger it again) or none at all
// (stats=none: never analyzed, as on a server without autovacuum). It
// reports the milliseconds of a pass (ms/claim, claim and complete).
func BenchmarkOutboxClaimBacklog(b *testing.B) {
	parent := b // the schema outlives the runs of a case
	for _, c := range []struct{ backlog, keys int }{{10_000, 1000}, {100_000, 1000}, {100_000, 10}} {
		for _, stats := range []string{"stale", "none"} {
			var d *postgres.Driver
			var next int
			name := fmt.Sprintf("backlog=%d/keys=%d/stats=%s", c.backlog, c.keys, stats)
			b.Run(name, func(b *testing.B) {
				if d == nil { // once per case, whatever b.N: the passes keep the backlog
					d = engines.NewPostgres(parent)
					next = backlogSetup(b, d, c.backlog, c.keys, stats == "stale")
				}
				benchClaimBacklog(b, d, c.keys, &next)
			})
		}
	}
}

// backlogSetup migrates d, enqueues and marks sent a history as long as
// the backlog (analyzing the table then if analyze), enqueues the backlog,
// and returns the number of rows enqueued.
func backlogSetup(b *testing.B, d *postgres.Driver, backlog, keys int, analyze bool) int {
	ctx := context.Background()
	if _, err := d.Migrator().Up(ctx); err != nil {
		b.Fatal(err)
	}
	n := backlogEnqueue(b, d, 0, backlog, keys)
	if _, err := d.Pool().Exec(ctx, "UPDATE eos_outbox SET sent_at = now()"); err != nil {
		b.Fatal(err)
	}
	if analyze {
		if _, err := d.Pool().Exec(ctx, "ANALYZE eos_outbox"); err != nil {
			b.Fatal(err)
		}
	}
	return backlogEnqueue(b, d, n, backlog, keys)
}

// backlogEnqueue enqueues n rows numbered from first, the key of row i
// being i%keys, and returns first+n.
func backlogEnqueue(b *testing.B, d *postgres.Driver, first, n, keys int) int {
	ctx := context.Background()
	now := time.Now()
	payload := make([]byte, 256)
	for start := first; start < first+n; start += 4000 {
		rows := make([]driver.OutboxRow, 0, 4000)
		for i := start; i < min(start+4000, first+n); i++ {
			rows = append(rows, driver.OutboxRow{ID: fmt.Sprintf("m%d", i), Topic: "t", Key: fmt.Sprintf("account-%d", i%keys),
				Payload: payload, CreatedAt: now, EnqueuedAt: now})
		}
		tx, err := d.Begin(ctx)
		if err != nil {
			b.Fatal(err)
		}
		if err := d.Executor(tx).OutboxInsert(ctx, rows); err != nil {
			b.Fatal(err)
		}
		if err := d.Commit(ctx, tx); err != nil {
			b.Fatal(err)
		}
	}
	return first + n
}

func benchClaimBacklog(b *testing.B, d *postgres.Driver, keys int, next *int) {
	ctx := context.Background()
	var elapsed time.Duration
	b.ResetTimer()
	for range b.N {
		start := time.Now()
		batch, err := d.OutboxClaim(ctx, outbox.DefaultBatchSize)
		if err != nil {
			b.Fatal(err)
		}
		rows := batch.Rows()
		if len(rows) != outbox.DefaultBatchSize {
			b.Fatalf("claimed %d rows, want %d", len(rows), outbox.DefaultBatchSize)
		}
		if err := batch.Complete(ctx, driver.OutboxOutcome{Sent: driver.Seqs(rows), At: time.Now()}); err != nil {
			b.Fatal(err)
		}
		elapsed += time.Since(start)
		b.StopTimer()
		*next = backlogEnqueue(b, d, *next, len(rows), keys)
		b.StartTimer()
	}
	b.ReportMetric(float64(elapsed.Microseconds())/1000/float64(b.N), "ms/claim")
}
