package tracing_test

import (
	"context"
	"database/sql"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/eoskit/eos/callonce"
	"github.com/eoskit/eos/dedupe"
	"github.com/eoskit/eos/driver"
	"github.com/eoskit/eos/driver/sqlite"
	"github.com/eoskit/eos/examples/payments"
	"github.com/eoskit/eos/inbox"
	"github.com/eoskit/eos/internal/testdb"
	"github.com/eoskit/eos/internal/testdb/engines"
	"github.com/eoskit/eos/internal/testjs"
	"github.com/eoskit/eos/outbox"
	"github.com/eoskit/eos/transport/natsjs"
)

// TestPipelineTrace runs the payments pipeline — a producer publishing
// orders under a span of its own, the orders inbox (each order handler in
// turn), the outbox, the relay, the payments inbox calling the provider —
// on a real database and an embedded JetStream, with tracing on every
// step, and follows each order's trace from the producer's span to its
// payment. The broker delivers one order twice (its first ack is turned
// into a nak after the commit, as when an ack is lost), and that delivery
// shows in the order's trace as eos.decision=duplicate.
func TestPipelineTrace(t *testing.T) {
	for _, db := range []struct {
		name string
		open func(t *testing.T) (driver.Driver[*sql.Tx], payments.Store)
	}{{"sqlite", openSQLite}, {"postgres", openPostgres}} {
		for _, batch := range []bool{false, true} {
			name := db.name + map[bool]string{false: "/handler=message", true: "/handler=batch"}[batch]
			t.Run(name, func(t *testing.T) {
				drv, store := db.open(t)
				testPipelineTrace(t, drv, store, batch)
			})
		}
	}
}

func openSQLite(t *testing.T) (driver.Driver[*sql.Tx], payments.Store) {
	d := testdb.NewSQLite(t, sqlite.Config{})
	testdb.Migrate(t, d.Migrator())
	return d, payments.Store{DB: d.DB(), Dialect: payments.SQLite}
}

func openPostgres(t *testing.T) (driver.Driver[*sql.Tx], payments.Store) {
	d, db, schema := engines.PostgresStdlibDB(t)
	testdb.Migrate(t, d.Migrator())
	return d, payments.Store{DB: db, Dialect: payments.Postgres, Schema: schema}
}

const (
	orderTopic  = "orders.created"
	chargeTopic = "payments.charge"
)

func testPipelineTrace(t *testing.T, drv driver.Driver[*sql.Tx], store payments.Store, batch bool) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	r := newRecorder(t, "nats")
	if err := store.Setup(ctx, 2, 1_000_000); err != nil {
		t.Fatal(err)
	}
	js, _ := testjs.Start(t)
	orderSub := consumer(ctx, t, js, "ORDERS", "orders.>", payments.OrdersConsumer)
	paySub := consumer(ctx, t, js, "PAYMENTS", "payments.>", payments.PaymentsConsumer)
	natsPub, err := natsjs.NewPublisher(js, natsjs.PublisherConfig{})
	if err != nil {
		t.Fatal(err)
	}
	pub := r.Publisher(natsPub)

	// The producer publishes two orders under its own span.
	orders := []payments.Order{{ID: "ord-1", Account: payments.Account(0, 2), Amount: 100}, {ID: "ord-2", Account: payments.Account(1, 2), Amount: 50}}
	pctx, checkout := r.start(ctx, "checkout")
	var envs []outbox.Envelope
	for _, o := range orders {
		envs = append(envs, outbox.Envelope{Topic: orderTopic, Message: o.Message(time.Now())})
	}
	if acked, err := pub.Publish(pctx, envs); err != nil || acked != len(envs) {
		t.Fatalf("publishing orders: %d, %v", acked, err)
	}
	checkout.End()

	// The orders inbox, with the outbox under tracing.
	ob, err := outbox.New(drv, outbox.Config{Hooks: []outbox.Hook{r.OutboxHook()}})
	if err != nil {
		t.Fatal(err)
	}
	cfg := inbox.Config{Consumer: payments.OrdersConsumer, Hooks: []inbox.Hook{r.InboxHook()}}
	var orderInbox *inbox.Processor[*sql.Tx]
	if batch {
		h, err := payments.NewOrderBatchHandler(ctx, store, ob, chargeTopic)
		if err != nil {
			t.Fatal(err)
		}
		defer h.Close()
		orderInbox, err = inbox.NewBatch(drv, h.Handle, cfg)
		if err != nil {
			t.Fatal(err)
		}
	} else {
		h, err := payments.NewOrderHandler(ctx, store, ob, chargeTopic)
		if err != nil {
			t.Fatal(err)
		}
		defer h.Close()
		if orderInbox, err = inbox.New(drv, h.Handle, cfg); err != nil {
			t.Fatal(err)
		}
	}
	// ord-1's first ack becomes a nak: JetStream delivers it again.
	lost := false
	consume(ctx, t, orderInbox, orderSub, func(d inbox.Delivery) inbox.Delivery {
		if d.Message().ID == "ord-1" && !lost {
			lost = true
			return ackLost{d}
		}
		return d
	}, map[string]inbox.Outcome{"ord-1": inbox.Applied, "ord-2": inbox.Applied}, map[string]inbox.Outcome{"ord-1": inbox.Duplicate})

	// The relay publishes the charges; the payments inbox charges them.
	relay, err := outbox.NewRelay(drv, r.Publisher(natsPub), outbox.RelayConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if n, err := relay.Forward(ctx); err != nil || n != len(orders) {
		t.Fatalf("relay forwarded %d, %v; want %d", n, err, len(orders))
	}
	provider, err := payments.OpenProvider(ctx, filepath.Join(t.TempDir(), "provider.db"), payments.ProviderConfig{})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(provider)
	defer func() { srv.Close(); provider.Close() }()
	client, err := payments.NewProviderClient(srv.URL, nil)
	if err != nil {
		t.Fatal(err)
	}
	calls, err := dedupe.NewSQL(drv, dedupe.Config{})
	if err != nil {
		t.Fatal(err)
	}
	caller, err := callonce.New(calls, callonce.Config{})
	if err != nil {
		t.Fatal(err)
	}
	ph, err := payments.NewPaymentHandler(ctx, store, client, caller)
	if err != nil {
		t.Fatal(err)
	}
	defer ph.Close()
	payInbox, err := inbox.New(drv, ph.Handle, inbox.Config{Consumer: payments.PaymentsConsumer, Hooks: []inbox.Hook{r.InboxHook()}})
	if err != nil {
		t.Fatal(err)
	}
	consume(ctx, t, payInbox, ph.Source(paySub), nil, map[string]inbox.Outcome{"charge-ord-1": inbox.Applied, "charge-ord-2": inbox.Applied}, nil)

	// Each order's trace, step by step.
	spans := r.exp.GetSpans()
	for _, o := range orders {
		tr := checkout.SpanContext().TraceID()
		send := one(t, spans, "send "+orderTopic, o.ID, checkout.SpanContext())
		decisions := map[string]bool{}
		for _, s := range find(spans, "process "+orderTopic, o.ID) {
			checkParent(t, s, send.SpanContext)
			if attr(s, "messaging.consumer.group.name") != payments.OrdersConsumer || attr(s, "messaging.system") != "nats" {
				t.Errorf("%s: attributes %v", s.Name, s.Attributes)
			}
			decisions[attr(s, "eos.decision")] = true
		}
		want := map[string]bool{"applied": true}
		if o.ID == "ord-1" {
			want["duplicate"] = true
		}
		if len(decisions) != len(want) || !decisions["applied"] || (o.ID == "ord-1") != decisions["duplicate"] {
			t.Errorf("%s: decisions %v in its trace, want %v", o.ID, decisions, want)
		}
		charge := payments.ChargeID(o.ID)
		create := one(t, spans, "create "+chargeTopic, charge, send.SpanContext)
		relayed := one(t, spans, "send "+chargeTopic, charge, create.SpanContext)
		paid := one(t, spans, "process "+chargeTopic, charge, relayed.SpanContext)
		if d := attr(paid, "eos.decision"); d != "applied" {
			t.Errorf("%s: decision %q", paid.Name, d)
		}
		for _, s := range []tracetest.SpanStub{send, create, relayed, paid} {
			if s.SpanContext.TraceID() != tr {
				t.Errorf("%s of %s is in trace %v, want the producer's %v", s.Name, o.ID, s.SpanContext.TraceID(), tr)
			}
		}
	}
}

// ackLost is a delivery whose ack the broker never gets: it naks instead,
// so the broker delivers the message again at once, as it would after a
// lost ack once the ack wait passed.
type ackLost struct{ inbox.Delivery }

func (d ackLost) Ack(ctx context.Context) error { return d.Delivery.Nack(ctx, 0) }

// consume fetches from sub and processes through p, each delivery through
// wrap if given, until the outcomes of first and then of again were seen
// (again: of later deliveries of the same ids).
func consume(ctx context.Context, t *testing.T, p *inbox.Processor[*sql.Tx], sub inbox.Source, wrap func(inbox.Delivery) inbox.Delivery, first, again map[string]inbox.Outcome) {
	t.Helper()
	seen := map[string]int{}
	pending := len(first) + len(again)
	for pending > 0 {
		ds, err := sub.Fetch(ctx, 16, 200*time.Millisecond)
		if err != nil {
			t.Fatalf("fetch: %v (waiting for %d outcomes: first %v, again %v)", err, pending, first, again)
		}
		if len(ds) == 0 {
			continue
		}
		if wrap != nil {
			for i := range ds {
				ds[i] = wrap(ds[i])
			}
		}
		res, err := p.Process(ctx, ds)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range res.Results {
			seen[r.ID]++
			want, ok := first[r.ID]
			if seen[r.ID] > 1 {
				want, ok = again[r.ID]
			}
			if !ok || r.Outcome != want || seen[r.ID] > 2 {
				t.Fatalf("%s: delivery %d %v, want first %v, again %v", r.ID, seen[r.ID], r.Outcome, first[r.ID], again[r.ID])
			}
			pending--
		}
	}
}

func consumer(ctx context.Context, t *testing.T, js jetstream.JetStream, stream, subjects, durable string) *natsjs.Subscriber {
	t.Helper()
	if _, _, err := natsjs.EnsureStream(ctx, js, natsjs.StreamConfig{Name: stream, Subjects: []string{subjects}}); err != nil {
		t.Fatal(err)
	}
	cons, _, err := natsjs.EnsureConsumer(ctx, js, natsjs.ConsumerConfig{Stream: stream, Durable: durable})
	if err != nil {
		t.Fatal(err)
	}
	sub, err := natsjs.NewSubscriber(cons, natsjs.SubscriberConfig{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sub.Close)
	return sub
}

// find returns the spans named name of message id.
func find(spans tracetest.SpanStubs, name, id string) []tracetest.SpanStub {
	var out []tracetest.SpanStub
	for _, s := range spans {
		if s.Name == name && attr(s, "messaging.message.id") == id {
			out = append(out, s)
		}
	}
	return out
}

// one returns the one span named name of message id, checking its parent.
func one(t *testing.T, spans tracetest.SpanStubs, name, id string, parent trace.SpanContext) tracetest.SpanStub {
	t.Helper()
	got := find(spans, name, id)
	if len(got) != 1 {
		t.Fatalf("%d spans %q of %s, want 1", len(got), name, id)
	}
	checkParent(t, got[0], parent)
	return got[0]
}

func checkParent(t *testing.T, s tracetest.SpanStub, parent trace.SpanContext) {
	t.Helper()
	if s.Parent.TraceID() != parent.TraceID() || s.Parent.SpanID() != parent.SpanID() {
		t.Errorf("%s (%s): parent %v/%v, want %v/%v", s.Name, attr(s, "messaging.message.id"), s.Parent.TraceID(), s.Parent.SpanID(), parent.TraceID(), parent.SpanID())
	}
}
