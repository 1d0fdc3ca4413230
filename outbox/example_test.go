package outbox_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/eoskit/eos"
	"github.com/eoskit/eos/driver/sqlite"
	"github.com/eoskit/eos/outbox"
	"github.com/eoskit/eos/outbox/outboxtest"
)

func Example() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "eos-example")
	defer os.RemoveAll(dir)
	drv, err := sqlite.Open(ctx, filepath.Join(dir, "app.db"), sqlite.Config{})
	if err != nil {
		panic(err)
	}
	defer drv.Close()
	if _, err := drv.Migrator().Up(ctx); err != nil {
		panic(err)
	}
	ob, _ := outbox.New(drv, outbox.Config{})

	// In the same transaction as the business write: both or neither.
	tx, _ := drv.Begin(ctx)
	ob.Enqueue(ctx, tx, "payments.charge",
		eos.Message{ID: "charge-1", Key: "acct-7", Payload: []byte(`{"amount":500}`)},
		eos.Message{ID: "charge-2", Key: "acct-7", Payload: []byte(`{"amount":250}`)})
	drv.Commit(ctx, tx)

	// An in-memory publisher stands in for a transport's (natsjs.Publisher).
	pub := outboxtest.NewPublisher()
	relay, _ := outbox.NewRelay(drv, pub, outbox.RelayConfig{})
	n, err := relay.Forward(ctx) // Run does this in a loop, woken by enqueues
	for _, m := range pub.Published() {
		fmt.Printf("publish %s id=%s key=%s %s\n", m.Topic, m.ID, m.Key, m.Payload)
	}
	fmt.Println("forwarded", n, err)
	// Output:
	// publish payments.charge id=charge-1 key=acct-7 {"amount":500}
	// publish payments.charge id=charge-2 key=acct-7 {"amount":250}
	// forwarded 2 <nil>
}
