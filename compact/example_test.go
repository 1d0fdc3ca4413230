package compact_test

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/eoskit/eos"
	"github.com/eoskit/eos/compact"
	"github.com/eoskit/eos/driver/sqlite"
	"github.com/eoskit/eos/inbox"
	"github.com/eoskit/eos/inbox/inboxtest"
)

// Dedupe records are kept for Retention, which must cover how late the
// transport can bring a message back (RedeliveryHorizon: for NATS,
// natsjs.RedeliveryHorizon); a redelivery within it is still suppressed.
// The clock is injected here so that days pass at once.
func ExampleCompactor_Compact() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "eos-compact-example")
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
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := eos.TestConfig{Now: func() time.Time { return now }}
	p, err := inbox.New(drv, func(context.Context, *sql.Tx, eos.Message) error { return nil }, inbox.Config{Consumer: "c", Test: clock})
	if err != nil {
		panic(err)
	}
	c, err := compact.New(drv, compact.Config{Retention: 7 * 24 * time.Hour, RedeliveryHorizon: 3 * 24 * time.Hour, Test: clock})
	if err != nil {
		panic(err)
	}
	process := func(ids ...string) []inbox.Outcome {
		var ms []eos.Message
		for _, id := range ids {
			ms = append(ms, eos.Message{ID: id})
		}
		res, err := p.Process(ctx, inboxtest.NewDeliveries(ms...).Inbox())
		if err != nil {
			panic(err)
		}
		return inboxtest.Outcomes(res)
	}

	process("old-1", "old-2")
	now = now.Add(6 * 24 * time.Hour)
	process("new-1")
	now = now.Add(2 * 24 * time.Hour) // old: 8 days, new: 2 days
	st, err := c.Compact(ctx)
	if err != nil {
		panic(err)
	}
	fmt.Println("dedupe records deleted:", st.Inbox)
	fmt.Println("redelivered:", process("new-1"))

	_, err = compact.New(drv, compact.Config{Retention: time.Hour, RedeliveryHorizon: 3 * 24 * time.Hour})
	fmt.Println(err)
	// Output:
	// dedupe records deleted: 2
	// redelivered: [duplicate]
	// eos: invalid configuration: compact.Config.Retention: 1h0m0s is shorter than the transport's redelivery horizon 72h0m0s: a late redelivery would be applied twice
}
