package service_test

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/eoskit/eos"
	"github.com/eoskit/eos/compact"
	"github.com/eoskit/eos/driver/sqlite"
	"github.com/eoskit/eos/inbox"
	"github.com/eoskit/eos/outbox"
	"github.com/eoskit/eos/service"
	"github.com/eoskit/eos/transport/natsjs"
	"github.com/eoskit/eos/transport/natsjs/natsembed"
)

// The full wiring of a service: orders arrive on NATS JetStream, a
// handler writes an invoice and enqueues an "invoice created" message in
// the same transaction as the claim of the order, the relay forwards the
// outbox to JetStream, and the compactor keeps the tables bounded; one
// Service runs them all, and stops them in order.
func Example() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "eos-service-example")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	must := func(err error) {
		if err != nil {
			panic(err)
		}
	}

	// The broker: an embedded NATS server here; nats.Connect for yours.
	srv, err := natsembed.Start(natsembed.Config{Dir: filepath.Join(dir, "nats")})
	must(err)
	defer srv.Shutdown()
	nc, err := srv.Connect()
	must(err)
	defer nc.Close()
	js, err := jetstream.New(nc)
	must(err)
	orders := natsjs.StreamConfig{Name: "ORDERS", Subjects: []string{"orders.>"}}
	billing := natsjs.ConsumerConfig{Stream: "ORDERS", Durable: "billing"}
	_, _, err = natsjs.EnsureStream(ctx, js, orders)
	must(err)
	_, _, err = natsjs.EnsureStream(ctx, js, natsjs.StreamConfig{Name: "INVOICES", Subjects: []string{"invoices.>"}})
	must(err)
	_, _, err = natsjs.EnsureConsumer(ctx, js, billing)
	must(err)

	// The database, with eos's tables and the application's.
	drv, err := sqlite.Open(ctx, filepath.Join(dir, "app.db"), sqlite.Config{})
	must(err)
	defer drv.Close()
	_, err = drv.Migrator().Up(ctx)
	must(err)
	_, err = drv.DB().ExecContext(ctx, "CREATE TABLE invoices (order_id TEXT PRIMARY KEY, amount INTEGER NOT NULL)")
	must(err)

	// The handler: its writes and its outbox messages commit with the
	// claim of the order, or not at all.
	ob, err := outbox.New(drv, outbox.Config{})
	must(err)
	invoice := func(ctx context.Context, tx *sql.Tx, m eos.Message) error {
		if _, err := tx.ExecContext(ctx, "INSERT INTO invoices (order_id, amount) VALUES (?, ?)", m.ID, string(m.Payload)); err != nil {
			return err
		}
		return ob.Enqueue(ctx, tx, "invoices.created", eos.Message{ID: "invoice-" + m.ID, Key: m.Key, Payload: m.Payload})
	}

	// The parts: two runners of the billing inbox, each on a subscriber of
	// the durable consumer; the relay; the compactor.
	quiet := slog.New(slog.DiscardHandler)
	ib, _, err := service.NewInbox(drv, invoice, inbox.Config{Consumer: "billing", Logger: quiet}, service.InboxConfig{
		Concurrency: 2,
		Source: func(ctx context.Context) (inbox.Source, error) {
			cons, err := js.Consumer(ctx, billing.Stream, billing.Durable)
			if err != nil {
				return nil, err
			}
			return natsjs.NewSubscriber(cons, natsjs.SubscriberConfig{})
		},
	})
	must(err)
	pub, err := natsjs.NewPublisher(js, natsjs.PublisherConfig{})
	must(err)
	relay, err := outbox.NewRelay(drv, pub, outbox.RelayConfig{Logger: quiet})
	must(err)
	horizon, err := natsjs.RedeliveryHorizon(orders, billing, 0)
	must(err)
	compactor, err := compact.New(drv, compact.Config{RedeliveryHorizon: horizon, Logger: quiet})
	must(err)
	svc, err := service.New(service.Config{
		Inboxes: []*service.Inbox{ib},
		Runners: []service.Runner{relay, compactor},
		Logger:  quiet,
	})
	must(err)

	invoices, err := nc.SubscribeSync("invoices.>") // to watch the relay's output
	must(err)
	must(svc.Start(ctx)) // a main function calls svc.Run(ctx) instead
	fmt.Println("health:", svc.Health().State)

	// Orders arrive; a producer's retry of o-1 is dropped by JetStream.
	for _, id := range []string{"o-1", "o-2", "o-1"} {
		r, err := pub.PublishMessage(ctx, "orders.placed", eos.Message{ID: id, Key: "customer-7", Payload: []byte("250")})
		must(err)
		fmt.Printf("published %s, duplicate: %v\n", id, r.Duplicate)
	}
	var got []string
	for range 2 {
		m, err := invoices.NextMsg(30 * time.Second) // a bound for a broken run, not a timing
		must(err)
		got = append(got, m.Header.Get("Nats-Msg-Id"))
	}
	slices.Sort(got)
	fmt.Println("relayed:", got)

	stop, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	must(svc.Stop(stop))
	var n int
	must(drv.DB().QueryRowContext(ctx, "SELECT count(*) FROM invoices").Scan(&n))
	fmt.Println("invoices:", n, "health:", svc.Health().State)
	// Output:
	// health: running
	// published o-1, duplicate: false
	// published o-2, duplicate: false
	// published o-1, duplicate: true
	// relayed: [invoice-o-1 invoice-o-2]
	// invoices: 2 health: stopped
}
