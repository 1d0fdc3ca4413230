package drivertest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/eoskit/eos/driver"
)

// Statements reports how many statements a driver's connections have run
// so far (on PostgreSQL, each a round trip).
type Statements func() int64

// RunStatements checks that every Executor method that takes a set of rows
// runs the same number of statements for one row as for a thousand, and
// that number is one (two for a claim that meets earlier claims): the
// inbox's statements per batch, and an enqueue of many outbox rows, must
// not grow with the batch. newDriver returns a fresh, unmigrated driver on
// an isolated database or schema, and the count of the statements its
// connections run.
func RunStatements[TTx any](t *testing.T, newDriver func(t *testing.T) (driver.Driver[TTx], Statements)) {
	per := map[int]map[string]int64{}
	for _, n := range []int{1, 1000} {
		t.Run(fmt.Sprintf("rows=%d", n), func(t *testing.T) {
			d, count := newDriver(t)
			migrate(t, d.Migrator())
			per[n] = statementsPerCall(t, d, count, n)
		})
	}
	if t.Failed() {
		return
	}
	for name, one := range per[1] {
		if many := per[1000][name]; many != one {
			t.Errorf("%s: %d statements for 1000 rows, %d for one row", name, many, one)
		}
	}
}

// statementsPerCall calls each set-taking Executor method once with n rows
// and returns the statements each call ran, failing t where a call ran
// more than it may.
func statementsPerCall[TTx any](t *testing.T, d driver.Driver[TTx], count Statements, n int) map[string]int64 {
	got := map[string]int64{}
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("m%05d", i)
	}
	more := make([]string, n)
	for i := range more {
		more[i] = fmt.Sprintf("n%05d", i)
	}
	inTx(t, d, func(ctx context.Context, ex driver.Executor) {
		call := func(name string, most int64, fn func() error) {
			t.Helper()
			before := count()
			must(t, fn())
			got[name] = count() - before
			if got[name] < 1 || got[name] > most {
				t.Errorf("%s of %d rows ran %d statements, want at most %d", name, n, got[name], most)
			}
		}
		call("InboxClaim", 1, func() error {
			fresh, err := ex.InboxClaim(ctx, "c", t0, claims(ids...))
			if err == nil && !allTrue(fresh) {
				err = fmt.Errorf("fresh claims reported as claimed before: %v", fresh)
			}
			return err
		})
		// SQLite reads the new claims back in a second statement when some
		// were claimed before.
		call("InboxClaim (some claimed before)", 2, func() error {
			_, err := ex.InboxClaim(ctx, "c", t0, claims(append(more, ids...)...))
			return err
		})
		call("InboxFingerprints", 1, func() error {
			fps, err := ex.InboxFingerprints(ctx, "c", ids)
			if err == nil && len(fps) != n {
				err = fmt.Errorf("%d fingerprints, want %d", len(fps), n)
			}
			return err
		})
		call("InboxUnclaim", 1, func() error { return ex.InboxUnclaim(ctx, "c", ids) })
		call("FailuresClear", 1, func() error { return ex.FailuresClear(ctx, "c", ids) })
		call("QuarantineInsert", 1, func() error { return ex.QuarantineInsert(ctx, quarantined(ids)) })
		call("DeadLettersInsert", 1, func() error { return ex.DeadLettersInsert(ctx, deadLetters(ids)) })
		call("DeadLettersTake", 1, func() error {
			taken, err := ex.DeadLettersTake(ctx, "c", ids)
			if err == nil && len(taken) != n {
				err = fmt.Errorf("took %d dead letters, want %d", len(taken), n)
			}
			return err
		})
		call("OutboxInsert", 1, func() error { return ex.OutboxInsert(ctx, outboxRows("o", n)) })
		// What the set-based inserts wrote reads back whole and in order.
		if q, err := ex.QuarantineList(ctx, "c", 0, n+1); err != nil || len(q) != n || q[n-1].ID != ids[n-1] || q[n-1].Headers["N"] != ids[n-1] {
			t.Errorf("quarantine after QuarantineInsert: %d rows (%v)", len(q), err)
		}
		rows, err := ex.OutboxUnsentList(ctx, 0, n+1)
		must(t, err)
		if len(rows) != n {
			t.Fatalf("outbox after OutboxInsert: %d rows, want %d", len(rows), n)
		}
		for i, r := range rows {
			if want := fmt.Sprintf("o-%d", i); r.ID != want || r.Headers["N"] != fmt.Sprint(i) || len(r.Payload) != 1 || r.Payload[0] != byte(i) {
				t.Fatalf("outbox row %d: %+v, want id %s", i, r, want)
			}
		}
	})
	return got
}

func allTrue(bs []bool) bool {
	for _, b := range bs {
		if !b {
			return false
		}
	}
	return true
}

func quarantined(ids []string) []driver.Quarantined {
	out := make([]driver.Quarantined, len(ids))
	for i, id := range ids {
		out[i] = driver.Quarantined{Consumer: "c", ID: id, StoredFingerprint: fingerprint(id), Fingerprint: fingerprint(id + "'"),
			Key: "k", Payload: []byte{0, byte(i)}, Headers: map[string]string{"N": id}, Subject: hostileText, At: t0}
	}
	return out
}

func deadLetters(ids []string) []driver.DeadLetter {
	out := make([]driver.DeadLetter, len(ids))
	for i, id := range ids {
		out[i] = driver.DeadLetter{Consumer: "c", ID: id, Key: hostileText, Payload: []byte{0xff, byte(i)}, Headers: map[string]string{"N": id},
			Subject: "s", Fingerprint: fingerprint(id), CreatedAt: t0, Attempts: 3, LastError: hostileText, At: t0.Add(time.Second),
			Invalid: i%2 == 1, OriginalID: hostileText, Position: "S:1", PayloadSize: i}
	}
	return out
}
