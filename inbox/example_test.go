package inbox_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/eoskit/eos"
	"github.com/eoskit/eos/driver/sqlite"
	"github.com/eoskit/eos/inbox"
	"github.com/eoskit/eos/inbox/inboxtest"
)

// openExample opens a migrated SQLite database in a temporary directory,
// with a table of counts for the handlers below; close removes it all.
func openExample(ctx context.Context) (drv *sqlite.Driver, close func()) {
	dir, err := os.MkdirTemp("", "eos-example")
	if err != nil {
		panic(err)
	}
	drv, err = sqlite.Open(ctx, filepath.Join(dir, "app.db"), sqlite.Config{})
	if err != nil {
		panic(err)
	}
	if _, err := drv.Migrator().Up(ctx); err != nil {
		panic(err)
	}
	if _, err := drv.DB().ExecContext(ctx, "CREATE TABLE counts (k TEXT PRIMARY KEY, n INTEGER NOT NULL)"); err != nil {
		panic(err)
	}
	return drv, func() { drv.Close(); os.RemoveAll(dir) }
}

// count is a handler: its write commits with the claim of the message, or
// not at all.
func count(ctx context.Context, tx *sql.Tx, m eos.Message) error {
	_, err := tx.ExecContext(ctx, "INSERT INTO counts (k, n) VALUES (?, 1) ON CONFLICT (k) DO UPDATE SET n = n + 1", m.Key)
	return err
}

func clicks(ctx context.Context, drv *sqlite.Driver) int {
	var n int
	drv.DB().QueryRowContext(ctx, "SELECT n FROM counts WHERE k = 'clicks'").Scan(&n)
	return n
}

func Example() {
	ctx := context.Background()
	drv, closeDB := openExample(ctx)
	defer closeDB()
	p, err := inbox.New(drv, count, inbox.Config{Consumer: "counter"})
	if err != nil {
		panic(err)
	}

	// An in-memory source stands in for a transport (natsjs.Subscriber).
	src := inboxtest.NewSource()
	src.Deliver(
		eos.Message{ID: "evt-1", Key: "clicks", Payload: []byte("{}")},
		eos.Message{ID: "evt-2", Key: "clicks", Payload: []byte("{}")},
		eos.Message{ID: "evt-1", Key: "clicks", Payload: []byte("{}")}, // redelivered
	)
	src.Close()
	if err := p.Run(ctx, src); !errors.Is(err, inbox.ErrSourceClosed) {
		panic(err)
	}
	for _, d := range src.Handed() {
		fmt.Println(d.Message().ID, "acks:", d.Acks())
	}
	fmt.Println("clicks:", clicks(ctx, drv))
	// Output:
	// evt-1 acks: 1
	// evt-2 acks: 1
	// evt-1 acks: 1
	// clicks: 2
}

// ProcessTx applies a message inside a transaction the caller owns, for a
// message that does not come from a Source (an HTTP request with an
// idempotency key, say): the claim and the handler's writes commit with the
// caller's other writes.
func ExampleProcessor_ProcessTx() {
	ctx := context.Background()
	drv, closeDB := openExample(ctx)
	defer closeDB()
	p, err := inbox.New(drv, count, inbox.Config{Consumer: "counter"})
	if err != nil {
		panic(err)
	}
	apply := func(m eos.Message) inbox.Outcome {
		tx, err := drv.Begin(ctx)
		if err != nil {
			panic(err)
		}
		defer drv.Rollback(ctx, tx)
		o, err := p.ProcessTx(ctx, tx, m, nil) // nil: the processor's handler
		if err != nil {
			panic(err) // roll back: nothing of tx may commit
		}
		if err := drv.Commit(ctx, tx); err != nil {
			panic(err)
		}
		return o
	}
	req := eos.Message{ID: "req-7", Key: "clicks", Payload: []byte(`{"n":1}`)}
	fmt.Println(apply(req))
	fmt.Println(apply(req)) // the client retried
	req.Payload = []byte(`{"n":2}`)
	fmt.Println(apply(req)) // same key, other content
	fmt.Println("clicks:", clicks(ctx, drv))
	// Output:
	// applied
	// duplicate
	// quarantined
	// clicks: 1
}

// A message whose handler fails MaxAttempts times is dead-lettered (and
// acked); once the cause is fixed, Requeue runs it again.
func ExampleProcessor_Requeue() {
	ctx := context.Background()
	drv, closeDB := openExample(ctx)
	defer closeDB()
	broken := true
	h := func(ctx context.Context, tx *sql.Tx, m eos.Message) error {
		if broken {
			return errors.New("downstream table missing")
		}
		return count(ctx, tx, m)
	}
	p, err := inbox.New(drv, h, inbox.Config{Consumer: "counter", MaxAttempts: 2})
	if err != nil {
		panic(err)
	}
	src := inboxtest.NewSource()
	src.Deliver(eos.Message{ID: "evt-9", Key: "clicks"})
	src.Close()
	p.Run(ctx, src) // the nacked delivery comes back once, then is dead-lettered

	dead, err := p.DeadLetters(ctx, "", 10)
	if err != nil {
		panic(err)
	}
	for _, d := range dead {
		fmt.Printf("dead letter %s after %d attempts: %s\n", d.ID, d.Attempts, d.LastError)
	}
	broken = false
	res, err := p.Requeue(ctx, "evt-9")
	if err != nil {
		panic(err)
	}
	fmt.Println("requeue:", inboxtest.Outcomes(res))
	fmt.Println("clicks:", clicks(ctx, drv))
	// Output:
	// dead letter evt-9 after 2 attempts: downstream table missing
	// requeue: [applied]
	// clicks: 1
}
