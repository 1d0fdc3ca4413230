package tracing_test

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/eoskit/eos"
	"github.com/eoskit/eos/driver/sqlite"
	"github.com/eoskit/eos/inbox"
	"github.com/eoskit/eos/inbox/inboxtest"
	"github.com/eoskit/eos/outbox"
	"github.com/eoskit/eos/tracing"
)

// A producer's span carried in an order's headers into an inbox, whose
// handler continues the trace into the charge it enqueues; the order,
// delivered twice, shows in the same trace once applied and once as a
// duplicate.
func Example() {
	ctx := context.Background()
	must := func(err error) {
		if err != nil {
			panic(err)
		}
	}
	// The program's OpenTelemetry SDK (here: spans kept in memory).
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	defer tp.Shutdown(ctx)
	tr, err := tracing.New(tp, tracing.Config{System: "nats"})
	must(err)

	dir, err := os.MkdirTemp("", "eos-tracing-example")
	must(err)
	defer os.RemoveAll(dir)
	drv, err := sqlite.Open(ctx, filepath.Join(dir, "eos.db"), sqlite.Config{})
	must(err)
	defer drv.Close()
	_, err = drv.Migrator().Up(ctx)
	must(err)

	ob, err := outbox.New(drv, outbox.Config{Hooks: []outbox.Hook{tr.OutboxHook()}})
	must(err)
	handle := func(ctx context.Context, tx *sql.Tx, m eos.Message) error {
		ctx = tracing.ContextFor(ctx, m) // the handler's work joins the order's trace
		return ob.Enqueue(ctx, tx, "payments.charge", eos.Message{ID: "charge-" + m.ID, Payload: m.Payload})
	}
	p, err := inbox.New(drv, handle, inbox.Config{Consumer: "orders", Hooks: []inbox.Hook{tr.InboxHook()}})
	must(err)

	// The producer writes its span into the order's headers.
	pctx, checkout := tp.Tracer("shop").Start(ctx, "checkout")
	order := eos.Message{ID: "ord-1", Payload: []byte(`{"amount":100}`), Subject: "orders.created",
		Headers: tracing.Inject(pctx, nil)}
	checkout.End()

	for range 2 { // the broker delivers the order twice
		_, err := p.Process(ctx, inboxtest.NewDeliveries(order).Inbox())
		must(err)
	}
	for _, s := range exp.GetSpans() {
		if !strings.HasPrefix(s.Name, "process") && !strings.HasPrefix(s.Name, "create") {
			continue
		}
		decision := ""
		for _, a := range s.Attributes {
			if a.Key == tracing.AttrDecision {
				decision = a.Value.AsString()
			}
		}
		fmt.Printf("%-24s %-10s in the checkout's trace: %v\n", s.Name, decision, s.SpanContext.TraceID() == checkout.SpanContext().TraceID())
	}
	// Output:
	// create payments.charge              in the checkout's trace: true
	// process orders.created   applied    in the checkout's trace: true
	// process orders.created   duplicate  in the checkout's trace: true
}
