package inbox_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/eoskit/eos"
	"github.com/eoskit/eos/driver/drivertest"
	"github.com/eoskit/eos/inbox"
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
							benchInbox(b, drivertest.SQLite(b), mode, ids, batch)
						case "postgres":
							benchInbox(b, drivertest.Postgres(b), mode, ids, batch)
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
		ms[i] = drivertest.Message(id, drivertest.Account(i%benchAccounts), 1)
	}
	return ms
}

type benchDelivery struct{ m eos.Message }

func (d benchDelivery) Message() eos.Message                      { return d.m }
func (d benchDelivery) Ack(context.Context) error                 { return nil }
func (d benchDelivery) Nack(context.Context, time.Duration) error { return nil }

func benchInbox[TTx any](b *testing.B, e *drivertest.Engine[TTx], mode, ids string, batch int) {
	pay := drivertest.Payments[TTx]{E: e}
	pay.Setup(b, benchAccounts, 1<<40)
	p, err := inbox.New(e.Driver, pay.Handler, inbox.Config{Consumer: "bench", MaxBatch: batch})
	if err != nil {
		b.Fatal(err)
	}
	ms := benchMessages(b.N, ids)
	ds := make([]inbox.Delivery, len(ms))
	for i, m := range ms {
		ds[i] = benchDelivery{m}
	}
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
