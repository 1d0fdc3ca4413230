package inbox_test

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/eoskit/eos"
	"github.com/eoskit/eos/driver/sqlite"
	"github.com/eoskit/eos/inbox"
)

// exampleDelivery is what a transport hands over; here it prints how the
// processor settles it.
type exampleDelivery struct{ m eos.Message }

func (d exampleDelivery) Message() eos.Message { return d.m }
func (d exampleDelivery) Ack(context.Context) error {
	fmt.Println("ack", d.m.ID)
	return nil
}
func (d exampleDelivery) Nack(context.Context, time.Duration) error {
	fmt.Println("nack", d.m.ID)
	return nil
}

func Example() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "eos-example")
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
	if _, err := drv.DB().ExecContext(ctx, "CREATE TABLE counts (k TEXT PRIMARY KEY, n INTEGER NOT NULL)"); err != nil {
		panic(err)
	}

	// The handler's writes commit with the claim of the message, or not at all.
	count := func(ctx context.Context, tx *sql.Tx, m eos.Message) error {
		_, err := tx.ExecContext(ctx, "INSERT INTO counts (k, n) VALUES (?, 1) ON CONFLICT (k) DO UPDATE SET n = n + 1", m.Key)
		return err
	}
	p, err := inbox.New(drv, count, inbox.Config{Consumer: "counter"})
	if err != nil {
		panic(err)
	}

	ch := make(chan inbox.Delivery, 3)
	ch <- exampleDelivery{eos.Message{ID: "evt-1", Key: "clicks", Payload: []byte("{}")}}
	ch <- exampleDelivery{eos.Message{ID: "evt-2", Key: "clicks", Payload: []byte("{}")}}
	ch <- exampleDelivery{eos.Message{ID: "evt-1", Key: "clicks", Payload: []byte("{}")}} // redelivered
	close(ch)
	if err := p.Run(ctx, inbox.ChanSource(ch)); err != inbox.ErrSourceClosed {
		panic(err)
	}

	var n int
	drv.DB().QueryRowContext(ctx, "SELECT n FROM counts WHERE k = 'clicks'").Scan(&n)
	fmt.Println("clicks:", n)
	// Output:
	// ack evt-1
	// ack evt-2
	// ack evt-1
	// clicks: 2
}
