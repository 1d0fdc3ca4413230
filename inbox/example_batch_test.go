package inbox_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"

	"github.com/eoskit/eos"
	"github.com/eoskit/eos/inbox"
	"github.com/eoskit/eos/inbox/inboxtest"
)

// A batch handler applies a batch's new messages set-based: here one
// statement counts all of them per key, where a per-message handler would
// run one statement per message. A message it cannot use is rejected
// alone; duplicates never reach it.
func ExampleNewBatch() {
	ctx := context.Background()
	drv, closeDB := openExample(ctx)
	defer closeDB()
	countAll := func(ctx context.Context, tx *sql.Tx, b *inbox.Batch) error {
		var keys []any
		for i, m := range b.Messages {
			if m.Key == "" {
				b.Reject(i, errors.New("no key to count"))
				continue
			}
			keys = append(keys, m.Key)
		}
		if len(keys) == 0 {
			return nil
		}
		// One statement for the whole batch.
		values := strings.TrimSuffix(strings.Repeat("(?, 1),", len(keys)), ",")
		_, err := tx.ExecContext(ctx, "INSERT INTO counts (k, n) VALUES "+values+
			" ON CONFLICT (k) DO UPDATE SET n = n + 1", keys...)
		return err
	}
	p, err := inbox.NewBatch(drv, countAll, inbox.Config{Consumer: "counter"})
	if err != nil {
		panic(err)
	}
	ds := inboxtest.NewDeliveries(
		eos.Message{ID: "evt-1", Key: "clicks"},
		eos.Message{ID: "evt-2", Key: "clicks"},
		eos.Message{ID: "evt-3"},                // no key: rejected, dead-lettered
		eos.Message{ID: "evt-1", Key: "clicks"}, // a redelivery in the same batch
	)
	res, err := p.Process(ctx, ds.Inbox())
	if err != nil {
		panic(err)
	}
	for _, r := range res.Results {
		fmt.Println(r.ID, r.Outcome)
	}
	fmt.Println("clicks:", clicks(ctx, drv))
	// Output:
	// evt-1 applied
	// evt-2 applied
	// evt-3 dead_lettered
	// evt-1 duplicate
	// clicks: 2
}
