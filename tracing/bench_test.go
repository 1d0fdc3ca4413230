package tracing_test

import (
	"context"
	"database/sql"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/eoskit/eos"
	"github.com/eoskit/eos/inbox"
	"github.com/eoskit/eos/internal/testdb"
	"github.com/eoskit/eos/tracing"
)

// BenchmarkInbox measures what tracing costs the inbox: the payments
// workload with the per-message handler on SQLite, batches of 256, through
// three processors of one consumer on one database taking turns batch by
// batch — without the hook (off), with the hook of a Tracing without a
// provider (nil), and with the hook of a Tracing on the SDK sampling every
// span into a span processor that drops them (on: the cost of making the
// spans, not of exporting them). Every message carries a traceparent, as
// from a traced producer. It reports each one's events/s and on/off and
// nil/off, the ratios of their rates to the rate without tracing.
func BenchmarkInbox(b *testing.B) {
	const batch, accounts = 256, 100_000
	const balance = int64(1) << 40
	e := testdb.SQLite(b)
	pay := testdb.Payments[*sql.Tx]{E: e}
	pay.Setup(b, accounts, balance)
	tp := sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.AlwaysSample()), sdktrace.WithSpanProcessor(dropSpans{}))
	defer tp.Shutdown(context.Background())
	on, err := tracing.New(tp, tracing.Config{})
	if err != nil {
		b.Fatal(err)
	}
	off, err := tracing.New(nil, tracing.Config{})
	if err != nil {
		b.Fatal(err)
	}
	pctx, producer := tp.Tracer("bench").Start(context.Background(), "producer")
	producer.End()
	headers := tracing.Inject(pctx, nil)
	turn := func(name string, hooks []inbox.Hook) testdb.Turn {
		return pay.HookedTurn(b, name, batch, hooks, func(ms []eos.Message) {
			for i := range ms {
				ms[i].Subject, ms[i].Headers = "orders.created", headers
			}
		})
	}
	turns := []testdb.Turn{turn("off", nil), turn("nil", []inbox.Hook{off.InboxHook()}), turn("on", []inbox.Hook{on.InboxHook()})}
	elapsed := testdb.RunTurns(b, batch, accounts, turns)
	pay.CheckLedger(b, len(turns)*b.N, accounts, balance)
	for k, t := range turns {
		b.ReportMetric(float64(b.N)/elapsed[k].Seconds(), t.Name+"-events/s")
		if k > 0 {
			b.ReportMetric(elapsed[0].Seconds()/elapsed[k].Seconds(), t.Name+"/off")
		}
	}
}

// dropSpans is a span processor that drops every span: what remains is
// the cost of making them.
type dropSpans struct{}

func (dropSpans) OnStart(context.Context, sdktrace.ReadWriteSpan) {}
func (dropSpans) OnEnd(sdktrace.ReadOnlySpan)                     {}
func (dropSpans) Shutdown(context.Context) error                  { return nil }
func (dropSpans) ForceFlush(context.Context) error                { return nil }

// BenchmarkOnBatchDone measures the inbox hook alone on a batch of 256
// applied results with a traceparent each, on the SDK as in BenchmarkInbox.
func BenchmarkOnBatchDone(b *testing.B) {
	tp := sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.AlwaysSample()), sdktrace.WithSpanProcessor(dropSpans{}))
	defer tp.Shutdown(context.Background())
	tr, err := tracing.New(tp, tracing.Config{})
	if err != nil {
		b.Fatal(err)
	}
	pctx, producer := tp.Tracer("bench").Start(context.Background(), "producer")
	producer.End()
	headers := tracing.Inject(pctx, nil)
	now := time.Now()
	r := &inbox.BatchResult{Consumer: "bench", Rounds: 1, Started: now.Add(-5 * time.Millisecond), CommittedAt: now,
		Phases: inbox.Phases{Claim: time.Millisecond, Handle: 3 * time.Millisecond, Commit: time.Millisecond}}
	for range 256 {
		r.Results = append(r.Results, inbox.Result{ID: eos.NewIDAt(now), Outcome: inbox.Applied, Subject: "orders.created", Headers: headers})
	}
	h := tr.InboxHook().(inbox.BatchDoneHook)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		h.OnBatchDone(ctx, r)
	}
}
