package payments_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/eoskit/eos"
	"github.com/eoskit/eos/driver/sqlite"
	"github.com/eoskit/eos/examples/payments"
	"github.com/eoskit/eos/inbox"
	"github.com/eoskit/eos/inbox/inboxtest"
	"github.com/eoskit/eos/outbox"
)

// The batch handler applies a batch of orders with a few statements; an
// order of an unknown account is dead-lettered and the rest commit.
func ExampleOrderBatchHandler() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "payments-example")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	drv, err := sqlite.Open(ctx, filepath.Join(dir, "eos.db"), sqlite.Config{})
	if err != nil {
		panic(err)
	}
	defer drv.Close()
	if _, err := drv.Migrator().Up(ctx); err != nil {
		panic(err)
	}
	store := payments.Store{DB: drv.DB(), Dialect: payments.SQLite}
	if err := store.Setup(ctx, 2, 10_000); err != nil { // acct-0000, acct-0001
		panic(err)
	}
	ob, err := outbox.New(drv, outbox.Config{})
	if err != nil {
		panic(err)
	}
	h, err := payments.NewOrderBatchHandler(ctx, store, ob, "payments.charge")
	if err != nil {
		panic(err)
	}
	defer h.Close()
	p, err := inbox.NewBatch(drv, h.Handle, inbox.Config{Consumer: payments.OrdersConsumer, OrderByKey: true})
	if err != nil {
		panic(err)
	}
	var msgs []eos.Message
	for _, o := range []payments.Order{
		{ID: "ord-1", Account: "acct-0001", Amount: 250},
		{ID: "ord-2", Account: "acct-0000", Amount: 100},
		{ID: "ord-3", Account: "acct-0001", Amount: 50},
		{ID: "ord-4", Account: "acct-9999", Amount: 10},
	} {
		msgs = append(msgs, o.Message(time.Now()))
	}
	res, err := p.Process(ctx, inboxtest.NewDeliveries(msgs...).Inbox())
	if err != nil {
		panic(err)
	}
	for _, r := range res.Results {
		fmt.Println(r.ID, r.Outcome)
	}
	balances, err := store.Balances(ctx)
	if err != nil {
		panic(err)
	}
	for _, b := range balances {
		fmt.Println(b.Account, b.Balance)
	}
	// Output:
	// ord-1 applied
	// ord-2 applied
	// ord-3 applied
	// ord-4 dead_lettered
	// acct-0000 9900
	// acct-0001 9700
}
