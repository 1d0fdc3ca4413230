package inbox_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/eoskit/eos"
	"github.com/eoskit/eos/inbox"
	"github.com/eoskit/eos/inbox/inboxtest"
	"github.com/eoskit/eos/internal/testdb"
	"github.com/eoskit/eos/internal/testdb/engines"
)

// BenchmarkInbox measures the payments handler (one balance update, one
// ledger insert per event) with exactly-once processing (mode=eos: the
// inbox claims each batch in one statement) against the same handler and
// batching without any claim (mode=atleastonce). Compare events/s of the two
// modes from the same run; absolute numbers depend on the machine.
func BenchmarkInbox(b *testing.B) {
	// Modes run back to back for each shape, so that both see the same
	// machine state (fsync latency drifts over a run).
	for _, drv := range []string{"sqlite", "postgres"} {
		for _, ids := range []string{"v7", "random"} {
			for _, batch := range []int{1, 16, 256} {
				for _, mode := range []string{"eos", "atleastonce"} {
					name := fmt.Sprintf("driver=%s/mode=%s/ids=%s/batch=%d", drv, mode, ids, batch)
					b.Run(name, func(b *testing.B) {
						switch drv {
						case "sqlite":
							benchInbox(b, testdb.SQLite(b), mode, ids, batch)
						case "postgres":
							benchInbox(b, engines.Postgres(b), mode, ids, batch)
						}
					})
				}
			}
		}
	}
}

const benchAccounts = 1000

func benchMessages(n int, ids string) []eos.Message {
	ms := make([]eos.Message, n)
	for i := range ms {
		id := eos.NewID()
		if ids == "random" {
			id = uuid.NewString()
		}
		ms[i] = testdb.Message(id, testdb.Account(i%benchAccounts), 1)
	}
	return ms
}

func benchInbox[TTx any](b *testing.B, e *testdb.Engine[TTx], mode, ids string, batch int) {
	pay := testdb.Payments[TTx]{E: e}
	pay.Setup(b, benchAccounts, 1<<40)
	p, err := inbox.New(e.Driver, pay.Handler, inbox.Config{Consumer: "bench", MaxBatch: batch})
	if err != nil {
		b.Fatal(err)
	}
	ms := benchMessages(b.N, ids)
	ds := inboxtest.NewDeliveries(ms...).Inbox()
	ctx := context.Background()
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < len(ms); i += batch {
		end := min(i+batch, len(ms))
		if mode == "eos" {
			res, err := p.Process(ctx, ds[i:end])
			if err != nil {
				b.Fatal(err)
			}
			if res.Count(inbox.Applied) != end-i {
				b.Fatalf("applied %d of %d", res.Count(inbox.Applied), end-i)
			}
			continue
		}
		tx, err := e.Driver.Begin(ctx)
		if err != nil {
			b.Fatal(err)
		}
		for _, m := range ms[i:end] {
			if err := pay.Handler(ctx, tx, m); err != nil {
				b.Fatal(err)
			}
		}
		if err := e.Driver.Commit(ctx, tx); err != nil {
			b.Fatal(err)
		}
	}
	elapsed := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "events/s")
}

// BenchmarkInboxPaired runs eos and atleastonce batches alternately on one
// database, so that both see the same disk and cache state, and reports
// both rates and their ratio. fsync latency drifts by tens of percent over
// minutes on a virtual disk; this is the figure to quote for the ratio.
func BenchmarkInboxPaired(b *testing.B) {
	for _, drv := range []string{"sqlite", "postgres"} {
		for _, batch := range []int{1, 16, 256} {
			b.Run(fmt.Sprintf("driver=%s/ids=v7/batch=%d", drv, batch), func(b *testing.B) {
				switch drv {
				case "sqlite":
					benchPaired(b, testdb.SQLite(b), batch)
				case "postgres":
					benchPaired(b, engines.Postgres(b), batch)
				}
			})
		}
	}
}

func benchPaired[TTx any](b *testing.B, e *testdb.Engine[TTx], batch int) {
	pay := testdb.Payments[TTx]{E: e}
	pay.Setup(b, benchAccounts, 1<<40)
	p, err := inbox.New(e.Driver, pay.Handler, inbox.Config{Consumer: "bench", MaxBatch: batch})
	if err != nil {
		b.Fatal(err)
	}
	eosMsgs, aloMsgs := benchMessages(b.N, "v7"), benchMessages(b.N, "v7")
	ctx := context.Background()
	var eosTime, aloTime time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i += batch {
		end := min(i+batch, b.N)
		ds := inboxtest.NewDeliveries(eosMsgs[i:end]...).Inbox()
		t0 := time.Now()
		if _, err := p.Process(ctx, ds); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		tx, err := e.Driver.Begin(ctx)
		if err != nil {
			b.Fatal(err)
		}
		for _, m := range aloMsgs[i:end] {
			if err := pay.Handler(ctx, tx, m); err != nil {
				b.Fatal(err)
			}
		}
		if err := e.Driver.Commit(ctx, tx); err != nil {
			b.Fatal(err)
		}
		eosTime += t1.Sub(t0)
		aloTime += time.Since(t1)
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/eosTime.Seconds(), "eos-events/s")
	b.ReportMetric(float64(b.N)/aloTime.Seconds(), "alo-events/s")
	b.ReportMetric(aloTime.Seconds()/eosTime.Seconds(), "ratio")
}

// BenchmarkIsolation compares the two ways of isolating a failing handler
// at batch 256: redoing the batch without the failed message, or a
// savepoint around every handler, at 0, 1 and 10 failing messages in 100.
func BenchmarkIsolation(b *testing.B) {
	for _, drv := range []string{"sqlite", "postgres"} {
		for _, iso := range []inbox.Isolation{inbox.IsolateAuto, inbox.IsolateRedo, inbox.IsolateSavepoint} {
			for _, pct := range []int{0, 1, 10} {
				b.Run(fmt.Sprintf("driver=%s/isolation=%s/failing=%dpct", drv, iso, pct), func(b *testing.B) {
					switch drv {
					case "sqlite":
						benchIsolation(b, testdb.SQLite(b), iso, pct)
					case "postgres":
						benchIsolation(b, engines.Postgres(b), iso, pct)
					}
				})
			}
		}
	}
}

func benchIsolation[TTx any](b *testing.B, e *testdb.Engine[TTx], iso inbox.Isolation, pct int) {
	const batch = 256
	pay := testdb.Payments[TTx]{E: e}
	pay.Setup(b, benchAccounts, 1<<40)
	failing := map[string]bool{}
	ms := benchMessages(b.N, "v7")
	for i, m := range ms {
		if i%100 < pct {
			failing[m.ID] = true
		}
	}
	h := func(ctx context.Context, tx TTx, m eos.Message) error {
		if err := pay.Handler(ctx, tx, m); err != nil {
			return err
		}
		if failing[m.ID] {
			return fmt.Errorf("rejected")
		}
		return nil
	}
	p, err := inbox.New(e.Driver, h, inbox.Config{Consumer: "bench", MaxBatch: batch, Isolation: iso, MaxAttempts: 1000})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < len(ms); i += batch {
		ds := inboxtest.NewDeliveries(ms[i:min(i+batch, len(ms))]...).Inbox()
		if _, err := p.Process(ctx, ds); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "events/s")
}

// BenchmarkRunners runs 1, 2 and 4 processors (Run) of one consumer over
// one source, as service.InboxConfig.Concurrency does, with the
// per-message payments handler: on PostgreSQL, where each handler call is a
// round trip, runners overlap their round trips and commits; on SQLite,
// with its one writer, they take turns. Handlers run in key order
// (OrderByKey), so concurrent batches lock accounts in one order.
func BenchmarkRunners(b *testing.B) {
	for _, drv := range []string{"sqlite", "postgres"} {
		for _, runners := range []int{1, 2, 4} {
			b.Run(fmt.Sprintf("driver=%s/runners=%d/batch=256", drv, runners), func(b *testing.B) {
				switch drv {
				case "sqlite":
					benchRunners(b, testdb.SQLite(b), runners)
				case "postgres":
					benchRunners(b, engines.Postgres(b), runners)
				}
			})
		}
	}
}

func benchRunners[TTx any](b *testing.B, e *testdb.Engine[TTx], runners int) {
	pay := testdb.Payments[TTx]{E: e}
	pay.Setup(b, benchAccounts, 1<<40)
	p, err := inbox.New(e.Driver, pay.Handler, inbox.Config{Consumer: "bench", MaxBatch: 256, OrderByKey: true})
	if err != nil {
		b.Fatal(err)
	}
	src := inboxtest.NewSource()
	src.Deliver(benchMessages(b.N, "v7")...)
	src.Close()
	ctx := context.Background()
	b.ResetTimer()
	start := time.Now()
	errs := make(chan error, runners)
	for range runners {
		go func() { errs <- p.Run(ctx, src) }()
	}
	for range runners {
		if err := <-errs; !errors.Is(err, inbox.ErrSourceClosed) {
			b.Fatal(err)
		}
	}
	elapsed := time.Since(start)
	b.StopTimer()
	if n := pay.E.Int(b, "SELECT count(*) FROM ledger"); n != int64(b.N) {
		b.Fatalf("%d effects for %d messages", n, b.N)
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "events/s")
}
