package reconcile_test

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"

	"github.com/eoskit/eos"
	"github.com/eoskit/eos/driver/sqlite"
	"github.com/eoskit/eos/inbox"
	"github.com/eoskit/eos/inbox/inboxtest"
	"github.com/eoskit/eos/reconcile"
)

// A producer records what it sends in its own table; the consumer applies
// all but one of those messages. Reconciliation reads the table a page at
// a time (keyset: $1 is the last id of the previous page, $2 the page
// size) and finds the one never applied.
func ExampleReconciler_Run() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "eos-reconcile-example")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	drv, err := sqlite.Open(ctx, filepath.Join(dir, "app.db"), sqlite.Config{})
	if err != nil {
		panic(err)
	}
	defer drv.Close()
	if _, err := drv.Migrator().Up(ctx); err != nil {
		panic(err)
	}
	db := drv.DB()
	if _, err := db.ExecContext(ctx, "CREATE TABLE sent (id TEXT PRIMARY KEY); INSERT INTO sent VALUES ('m1'), ('m2'), ('m3')"); err != nil {
		panic(err)
	}
	p, err := inbox.New(drv, func(context.Context, *sql.Tx, eos.Message) error { return nil }, inbox.Config{Consumer: "orders"})
	if err != nil {
		panic(err)
	}
	if _, err := p.Process(ctx, []inbox.Delivery{
		inboxtest.NewDelivery(eos.Message{ID: "m1", Payload: []byte("{}")}),
		inboxtest.NewDelivery(eos.Message{ID: "m3", Payload: []byte("{}")}),
	}); err != nil {
		panic(err)
	}

	r, err := reconcile.New(drv, reconcile.SQLSource{DB: db, Query: "SELECT id FROM sent WHERE id > $1 ORDER BY id LIMIT $2"},
		reconcile.Config{Consumer: "orders"})
	if err != nil {
		panic(err)
	}
	rep, err := r.Run(ctx)
	if err != nil {
		panic(err)
	}
	fmt.Println("ok:", rep.OK())
	fmt.Println("applied:", rep.Applied, "of", rep.SourceEntries)
	fmt.Println("missed:", rep.Missed.Sample)
	// Output:
	// ok: false
	// applied: 2 of 3
	// missed: [m2]
}
