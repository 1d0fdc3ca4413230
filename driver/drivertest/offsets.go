package drivertest

import (
	"context"
	"errors"
	"maps"
	"testing"

	"github.com/eoskit/eos/driver"
)

// testOffsets checks the stored offsets of stream mode: per consumer and
// topic, each advance a compare and set that a stale consumer fails.
func testOffsets[TTx any](t *testing.T, d driver.Driver[TTx]) {
	const c, topic = "c'1", "orders'; DROP TABLE x;--"
	get := func(consumer, topic string) map[int32]int64 {
		var out map[int32]int64
		inTx(t, d, func(ctx context.Context, ex driver.Executor) {
			var err error
			out, err = ex.OffsetsGet(ctx, consumer, topic)
			must(t, err)
		})
		return out
	}
	advance := func(consumer string, as ...driver.OffsetAdvance) error {
		ctx := context.Background()
		tx, err := d.Begin(ctx)
		must(t, err)
		if err := d.Executor(tx).OffsetsAdvance(ctx, consumer, as); err != nil {
			must(t, d.Rollback(ctx, tx))
			return err
		}
		return d.Commit(ctx, tx)
	}
	want := func(consumer, topic string, w map[int32]int64) {
		t.Helper()
		if got := get(consumer, topic); !maps.Equal(got, w) && len(got)+len(w) > 0 {
			t.Fatalf("offsets of %q on %q: %v, want %v", consumer, topic, got, w)
		}
	}

	want(c, topic, nil)
	must(t, advance(c, driver.OffsetAdvance{Topic: topic, Partition: 0, From: driver.OffsetNone, To: 10},
		driver.OffsetAdvance{Topic: topic, Partition: 1, From: driver.OffsetNone, To: 5}))
	must(t, advance("c2", driver.OffsetAdvance{Topic: topic, Partition: 0, From: driver.OffsetNone, To: 7}))
	must(t, advance(c, driver.OffsetAdvance{Topic: "other", Partition: 0, From: driver.OffsetNone, To: 3}))
	want(c, topic, map[int32]int64{0: 10, 1: 5})
	want("c2", topic, map[int32]int64{0: 7})
	want(c, "other", map[int32]int64{0: 3})

	// A consumer that read offset 10 applies a batch and moves it to 20; a
	// zombie that read 10 too cannot move it, nor create the row again,
	// and with one stale advance among several nothing moves.
	must(t, advance(c, driver.OffsetAdvance{Topic: topic, Partition: 0, From: 10, To: 20}))
	for _, stale := range [][]driver.OffsetAdvance{
		{{Topic: topic, Partition: 0, From: 10, To: 15}},
		{{Topic: topic, Partition: 0, From: driver.OffsetNone, To: 15}},
		{{Topic: topic, Partition: 1, From: 5, To: 6}, {Topic: topic, Partition: 0, From: 10, To: 15}},
	} {
		if err := advance(c, stale...); !errors.Is(err, driver.ErrOffsetConflict) {
			t.Fatalf("stale advance %+v: %v, want ErrOffsetConflict", stale, err)
		}
	}
	want(c, topic, map[int32]int64{0: 20, 1: 5})

	// The advance belongs to its transaction: rolled back, it never was.
	ctx := context.Background()
	tx, err := d.Begin(ctx)
	must(t, err)
	must(t, d.Executor(tx).OffsetsAdvance(ctx, c, []driver.OffsetAdvance{{Topic: topic, Partition: 0, From: 20, To: 30}}))
	must(t, d.Rollback(ctx, tx))
	want(c, topic, map[int32]int64{0: 20, 1: 5})
}
