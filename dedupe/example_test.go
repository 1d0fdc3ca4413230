package dedupe_test

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/eoskit/eos/dedupe"
	"github.com/eoskit/eos/driver/sqlite"
)

// A call to an external API made once per key: claim the key, make the
// call, and complete the key with the answer in the transaction that
// records the call's effect; a retry gets the stored answer instead of
// calling again. Had the call failed in a way worth retrying, Release
// would let the retry claim the key.
func ExampleSQL_CompleteTx() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "eos-dedupe-example")
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
	if _, err := drv.DB().ExecContext(ctx, "CREATE TABLE charges (order_id TEXT, charge_id TEXT)"); err != nil {
		panic(err)
	}
	store, err := dedupe.NewSQL[*sql.Tx](drv, dedupe.Config{})
	if err != nil {
		panic(err)
	}

	charge := func(orderID string) string {
		c, err := store.Claim(ctx, "payments", "charge:"+orderID, nil, 30*time.Second)
		if err != nil {
			panic(err) // fail closed: the store is down, do not charge
		}
		switch c.Status {
		case dedupe.Completed:
			return "replayed " + string(c.Result)
		case dedupe.Claimed:
		default:
			return c.Status.String()
		}
		chargeID := "ch_1" // the provider's answer to a call with Idempotency-Key: charge:<orderID>
		tx, err := drv.Begin(ctx)
		if err != nil {
			panic(err)
		}
		defer drv.Rollback(ctx, tx)
		if _, err := tx.ExecContext(ctx, "INSERT INTO charges VALUES (?, ?)", orderID, chargeID); err != nil {
			panic(err)
		}
		if err := store.CompleteTx(ctx, tx, c.Lease, []byte(chargeID)); err != nil {
			panic(err) // ErrFenced: another worker took the key over; it owns the result
		}
		if err := drv.Commit(ctx, tx); err != nil {
			panic(err)
		}
		return "charged " + chargeID
	}
	fmt.Println(charge("o-1"))
	fmt.Println(charge("o-1"))
	// Output:
	// charged ch_1
	// replayed ch_1
}
