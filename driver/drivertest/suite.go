package drivertest

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eoskit/eos"
	"github.com/eoskit/eos/driver"
)

// Run runs the conformance suite. newDriver must return a fresh, unmigrated
// driver on an isolated database or schema for each call.
func Run[TTx any](t *testing.T, newDriver func(t *testing.T) driver.Driver[TTx]) {
	migrated := func(t *testing.T) driver.Driver[TTx] {
		d := newDriver(t)
		migrate(t, d.Migrator())
		return d
	}
	t.Run("Migrations", func(t *testing.T) { testMigrations(t, newDriver(t)) })
	t.Run("InboxClaim", func(t *testing.T) { testClaim(t, migrated(t)) })
	t.Run("ClaimInboxConcurrent", func(t *testing.T) { testClaimConcurrent(t, migrated(t)) })
	t.Run("RollbackAndSavepoints", func(t *testing.T) { testRollback(t, migrated(t)) })
	t.Run("Failures", func(t *testing.T) { testFailures(t, migrated(t)) })
	t.Run("DeadLettersAndQuarantine", func(t *testing.T) { testDeadLetters(t, migrated(t)) })
	t.Run("InboxStats", func(t *testing.T) { testInboxStats(t, migrated(t)) })
	t.Run("InboxClaimsList", func(t *testing.T) { testInboxClaimsList(t, migrated(t)) })
	t.Run("Outbox", func(t *testing.T) { testOutbox(t, migrated(t)) })
	t.Run("OutboxWakeup", func(t *testing.T) { testWakeup(t, migrated(t)) })
	t.Run("OutboxParked", func(t *testing.T) { testOutboxParked(t, migrated(t)) })
	t.Run("OutboxParkedBacklog", func(t *testing.T) { testOutboxParkedBacklog(t, migrated(t)) })
	t.Run("Compact", func(t *testing.T) { testCompact(t, migrated(t)) })
	t.Run("Dedupe", func(t *testing.T) { testDedupe(t, migrated(t)) })
	t.Run("DedupeConcurrent", func(t *testing.T) { testDedupeConcurrent(t, migrated(t)) })
	t.Run("DedupeCompact", func(t *testing.T) { testDedupeCompact(t, migrated(t)) })
	t.Run("Offsets", func(t *testing.T) { testOffsets(t, migrated(t)) })
	t.Run("BeginClaim", func(t *testing.T) {
		d := migrated(t)
		cb, ok := d.(driver.ClaimBeginner[TTx])
		if !ok {
			t.Skipf("%s does not implement driver.ClaimBeginner", d.Name())
		}
		testBeginClaim(t, d, cb)
	})
}

func testBeginClaim[TTx any](t *testing.T, d driver.Driver[TTx], cb driver.ClaimBeginner[TTx]) {
	ctx := context.Background()
	odd := []string{"a", `it's`, `back\slash`, "x');DROP TABLE t;--"}
	tx, ok, err := cb.BeginClaim(ctx, "c'1", t0, claims(odd...))
	must(t, err)
	if !ok {
		t.Fatal("BeginClaim of new ids declined")
	}
	// The transaction is open and usable; roll it back: nothing stays.
	fps, err := d.Executor(tx).InboxFingerprints(ctx, "c'1", odd)
	must(t, err)
	for _, id := range odd {
		if !bytes.Equal(fps[id], fingerprint(id)) {
			t.Fatalf("id %q: fingerprint %x", id, fps[id])
		}
	}
	must(t, d.Rollback(ctx, tx))
	tx, ok, err = cb.BeginClaim(ctx, "c'1", t0, claims(odd...))
	must(t, err)
	if !ok {
		t.Fatal("claims survived a rollback")
	}
	must(t, d.Commit(ctx, tx))
	// One known id among new ones: declined, and nothing claimed.
	_, ok, err = cb.BeginClaim(ctx, "c'1", t0, claims("new-1", "a", "new-2"))
	must(t, err)
	if ok {
		t.Fatal("BeginClaim accepted a claimed id")
	}
	inTx(t, d, func(ctx context.Context, ex driver.Executor) {
		fresh, err := ex.InboxClaim(ctx, "c'1", t0, claims("new-1", "a", "new-2"))
		must(t, err)
		if fmt.Sprint(fresh) != "[true false true]" {
			t.Fatalf("after a declined BeginClaim: %v", fresh)
		}
	})
	// Text the driver cannot write this way may be declined (PostgreSQL
	// takes ASCII only); what it takes is claimed under itself.
	for _, c := range []struct{ consumer, id string }{{"c'1", "ünï ✓"}, {"zähler", "b"}} {
		tx, ok, err := cb.BeginClaim(ctx, c.consumer, t0, claims(c.id))
		must(t, err)
		if ok {
			must(t, d.Commit(ctx, tx))
		}
		inTx(t, d, func(ctx context.Context, ex driver.Executor) {
			fresh, err := ex.InboxClaim(ctx, c.consumer, t0, claims(c.id))
			must(t, err)
			if fresh[0] == ok {
				t.Fatalf("consumer %q, id %q: BeginClaim ok %v, then the ordinary claim found it new: %v", c.consumer, c.id, ok, fresh[0])
			}
		})
	}
}

// testInboxClaimsList pages through one consumer's claims in bytewise id
// order: ids that sort differently in a locale-aware collation, and
// another consumer's claims, must not change the pages.
func testInboxClaimsList[TTx any](t *testing.T, d driver.Driver[TTx]) {
	ids := []string{"b", "B", "a", "a-1", "a_1", "Z", "ä", "m2", "m10"}
	t1 := t0.Add(time.Second)
	inTx(t, d, func(ctx context.Context, ex driver.Executor) {
		if got, err := ex.InboxClaimsList(ctx, "c", "", 10); err != nil || len(got) != 0 {
			t.Fatalf("empty: %v, %v", got, err)
		}
		_, err := ex.InboxClaim(ctx, "c", t0, claims(ids[:5]...))
		must(t, err)
		_, err = ex.InboxClaim(ctx, "c", t1, claims(ids[5:]...))
		must(t, err)
		_, err = ex.InboxClaim(ctx, "other", t0, claims("a0", "zz"))
		must(t, err)
	})
	want := slices.Clone(ids)
	slices.Sort(want) // Go compares strings bytewise
	var got []string
	inTx(t, d, func(ctx context.Context, ex driver.Executor) {
		for after := ""; ; {
			page, err := ex.InboxClaimsList(ctx, "c", after, 2)
			must(t, err)
			if len(page) > 2 {
				t.Fatalf("page of %d rows, limit 2", len(page))
			}
			for _, c := range page {
				got = append(got, c.ID)
				at := t0
				if slices.Contains(ids[5:], c.ID) {
					at = t1
				}
				if !c.ClaimedAt.Equal(at) {
					t.Errorf("%s claimed at %v, want %v", c.ID, c.ClaimedAt, at)
				}
			}
			if len(page) < 2 {
				break
			}
			after = page[len(page)-1].ID
		}
	})
	if !slices.Equal(got, want) {
		t.Fatalf("claims in pages: %q, want %q", got, want)
	}
}

func migrate(t testing.TB, m driver.Migrator) {
	t.Helper()
	if _, err := m.Up(context.Background()); err != nil {
		t.Fatalf("migrate: %v", err)
	}
}

// inTx runs fn in a transaction and commits it. A check of fn that fails
// the test rolls the transaction back: left open, it would hold its locks
// and PostgreSQL's cleanup (DROP SCHEMA) would wait for it until the test
// binary times out.
func inTx[TTx any](t *testing.T, d driver.Driver[TTx], fn func(ctx context.Context, ex driver.Executor)) {
	t.Helper()
	ctx := context.Background()
	tx, err := d.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Rollback(ctx, tx) // after the commit, a no-op
	fn(ctx, d.Executor(tx))
	if err := d.Commit(ctx, tx); err != nil {
		t.Fatal(err)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func claims(ids ...string) []driver.Claim {
	out := make([]driver.Claim, len(ids))
	for i, id := range ids {
		out[i] = driver.Claim{ID: id, Fingerprint: fingerprint(id)}
	}
	return out
}

// fingerprint gives id a distinct fingerprint of the contract's size.
func fingerprint(id string) []byte {
	return eos.Fingerprint(eos.Message{ID: id, Payload: []byte(id)})
}

func testMigrations[TTx any](t *testing.T, d driver.Driver[TTx]) {
	ctx := context.Background()
	m := d.Migrator()
	st, err := m.Status(ctx)
	must(t, err)
	if len(st) == 0 {
		t.Fatal("no migrations known")
	}
	for _, s := range st {
		if s.Applied {
			t.Fatalf("fresh database has migration %d applied", s.Version)
		}
	}
	up, err := m.Up(ctx)
	must(t, err)
	if len(up) != len(st) {
		t.Fatalf("Up applied %v, want all %d", up, len(st))
	}
	again, err := m.Up(ctx)
	must(t, err)
	if len(again) != 0 {
		t.Fatalf("second Up applied %v", again)
	}
	st, err = m.Status(ctx)
	must(t, err)
	for _, s := range st {
		if !s.Applied || s.AppliedAt.IsZero() {
			t.Fatalf("after Up: %+v", s)
		}
	}
	inTx(t, d, func(ctx context.Context, ex driver.Executor) {
		_, err := ex.InboxClaim(ctx, "c", t0, claims("a"))
		must(t, err)
	})
	down, err := m.Down(ctx, 0)
	must(t, err)
	if len(down) != len(st) {
		t.Fatalf("Down reverted %v", down)
	}
	_, err = m.Up(ctx)
	must(t, err)
	inTx(t, d, func(ctx context.Context, ex driver.Executor) {
		fresh, err := ex.InboxClaim(ctx, "c", t0, claims("a"))
		must(t, err)
		if !fresh[0] {
			t.Fatal("claim survived Down/Up")
		}
	})
}

func testClaim[TTx any](t *testing.T, d driver.Driver[TTx]) {
	inTx(t, d, func(ctx context.Context, ex driver.Executor) {
		fresh, err := ex.InboxClaim(ctx, "c1", t0, claims("a", "b"))
		must(t, err)
		if !fresh[0] || !fresh[1] {
			t.Fatalf("first claim: %v", fresh)
		}
		fresh, err = ex.InboxClaim(ctx, "c1", t0, claims("x", "a", "y", "b", "z"))
		must(t, err)
		if want := []bool{true, false, true, false, true}; fmt.Sprint(fresh) != fmt.Sprint(want) {
			t.Fatalf("mixed claim: got %v want %v", fresh, want)
		}
		fresh, err = ex.InboxClaim(ctx, "c2", t0, claims("a"))
		must(t, err)
		if !fresh[0] {
			t.Fatal("claims must be per consumer")
		}
		fps, err := ex.InboxFingerprints(ctx, "c1", []string{"a", "y", "nope"})
		must(t, err)
		if len(fps) != 2 || !bytes.Equal(fps["a"], fingerprint("a")) || !bytes.Equal(fps["y"], fingerprint("y")) {
			t.Fatalf("fingerprints: %q", fps)
		}
		must(t, ex.InboxUnclaim(ctx, "c1", []string{"a"}))
		fresh, err = ex.InboxClaim(ctx, "c1", t0, claims("a", "b"))
		must(t, err)
		if !fresh[0] || fresh[1] {
			t.Fatalf("after unclaim: %v", fresh)
		}
		odd := []string{`quote"d`, `back\\slash`, "ünï-cødé ✓", strings.Repeat("x", 255)}
		fresh, err = ex.InboxClaim(ctx, "c1", t0, claims(odd...))
		must(t, err)
		fps, err = ex.InboxFingerprints(ctx, "c1", odd)
		must(t, err)
		for i, id := range odd {
			if !fresh[i] || !bytes.Equal(fps[id], fingerprint(id)) {
				t.Fatalf("id %q did not round-trip: fresh %v, fingerprint %x", id, fresh[i], fps[id])
			}
		}
		fresh, err = ex.InboxClaim(ctx, "c1", t0, nil)
		must(t, err)
		if len(fresh) != 0 {
			t.Fatal("empty claim")
		}
	})
	// Large batches are one statement per engine limit; make sure they work.
	ids := make([]string, 3000)
	for i := range ids {
		ids[i] = fmt.Sprintf("big-%05d", i)
	}
	inTx(t, d, func(ctx context.Context, ex driver.Executor) {
		fresh, err := ex.InboxClaim(ctx, "c1", t0, claims(ids...))
		must(t, err)
		for i, f := range fresh {
			if !f {
				t.Fatalf("big claim %d not fresh", i)
			}
		}
	})
}

func testClaimConcurrent[TTx any](t *testing.T, d driver.Driver[TTx]) {
	const workers, n = 8, 200
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("id-%04d", i)
	}
	var mu sync.Mutex
	won := map[string]int{}
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			ctx := context.Background()
			// Each worker claims every id in a different order, in chunks.
			order := make([]string, n)
			for i := range ids {
				order[i] = ids[(i*7+w*31)%n]
			}
			for start := 0; start < n; start += 25 {
				tx, err := d.Begin(ctx)
				if err != nil {
					errs <- err
					return
				}
				chunk := order[start : start+25]
				fresh, err := d.Executor(tx).InboxClaim(ctx, "c", t0, claims(chunk...))
				if err != nil {
					d.Rollback(ctx, tx)
					errs <- err
					return
				}
				if err := d.Commit(ctx, tx); err != nil {
					errs <- err
					return
				}
				mu.Lock()
				for i, f := range fresh {
					if f {
						won[chunk[i]]++
					}
				}
				mu.Unlock()
			}
		}(w)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		// A deadlock between two orderings is a legitimate engine answer;
		// anything else is a failure.
		t.Fatalf("concurrent claim: %v", err)
	}
	for _, id := range ids {
		if won[id] != 1 {
			t.Fatalf("id %s claimed fresh %d times", id, won[id])
		}
	}
}

func testRollback[TTx any](t *testing.T, d driver.Driver[TTx]) {
	ctx := context.Background()
	tx, err := d.Begin(ctx)
	must(t, err)
	_, err = d.Executor(tx).InboxClaim(ctx, "c", t0, claims("gone"))
	must(t, err)
	must(t, d.Rollback(ctx, tx))
	must(t, d.Rollback(ctx, tx)) // rolling back twice is not an error
	inTx(t, d, func(ctx context.Context, ex driver.Executor) {
		must(t, ex.SavepointCreate(ctx, "sp1"))
		_, err := ex.InboxClaim(ctx, "c", t0, claims("inner"))
		must(t, err)
		must(t, ex.SavepointRollback(ctx, "sp1"))
		must(t, ex.SavepointRelease(ctx, "sp1"))
		must(t, ex.SavepointCreate(ctx, "sp2"))
		_, err = ex.InboxClaim(ctx, "c", t0, claims("kept"))
		must(t, err)
		must(t, ex.SavepointRelease(ctx, "sp2"))
	})
	inTx(t, d, func(ctx context.Context, ex driver.Executor) {
		fresh, err := ex.InboxClaim(ctx, "c", t0, claims("gone", "inner", "kept"))
		must(t, err)
		if fmt.Sprint(fresh) != "[true true false]" {
			t.Fatalf("after rollbacks: %v", fresh)
		}
	})
}

func testFailures[TTx any](t *testing.T, d driver.Driver[TTx]) {
	inTx(t, d, func(ctx context.Context, ex driver.Executor) {
		for want := 1; want <= 3; want++ {
			n, err := ex.FailureRecord(ctx, "c", "m", fmt.Sprintf("boom %d", want), t0)
			must(t, err)
			if n != want {
				t.Fatalf("attempts %d, want %d", n, want)
			}
		}
		must(t, ex.FailuresClear(ctx, "c", []string{"m"}))
		n, err := ex.FailureRecord(ctx, "c", "m", "again", t0)
		must(t, err)
		if n != 1 {
			t.Fatalf("after clear: %d", n)
		}
	})
}

// hostileText is storable text (valid UTF-8, no NUL) of the kind eos stores
// from outside: quotes, backslashes, escapes, non-ASCII, other controls.
const hostileText = "it's \\x00 \\' \"q\" é日本🙂 \t\r\n\x01\x7f\u0085 $$ --; DROP TABLE x"

func testDeadLetters[TTx any](t *testing.T, d driver.Driver[TTx]) {
	dl := driver.DeadLetter{Consumer: "c", ID: "m1", Key: "k", Payload: []byte("p"), Headers: map[string]string{"H": "v"}, Subject: "orders.created",
		Fingerprint: []byte("fp"), CreatedAt: t0, Attempts: 5, LastError: "bad", At: t0.Add(time.Second)}
	odd := driver.DeadLetter{Consumer: "c", ID: "m3", Key: hostileText, Payload: []byte{0, 0xff}, Headers: map[string]string{"H": hostileText}, Subject: hostileText,
		Fingerprint: []byte("fp"), CreatedAt: t0, Attempts: 1, LastError: hostileText, At: t0,
		Invalid: true, OriginalID: hostileText, Position: "S:42", PayloadSize: 3 << 20}
	inTx(t, d, func(ctx context.Context, ex driver.Executor) {
		dl2 := dl
		dl2.ID, dl2.Headers = "m2", nil
		must(t, ex.DeadLettersInsert(ctx, []driver.DeadLetter{dl, dl2, odd}))
		list, err := ex.DeadLettersList(ctx, "c", "", 10)
		must(t, err)
		if len(list) != 3 || list[0].ID != "m1" || list[0].Headers["H"] != "v" || !list[0].CreatedAt.Equal(t0) ||
			list[0].Attempts != 5 || list[0].LastError != "bad" || string(list[0].Payload) != "p" || list[0].Invalid || list[0].Subject != "orders.created" {
			t.Fatalf("list: %+v", list)
		}
		if got := list[2]; got.Key != odd.Key || got.Headers["H"] != hostileText || got.Subject != hostileText || got.LastError != hostileText || string(got.Payload) != string(odd.Payload) ||
			!got.Invalid || got.OriginalID != hostileText || got.Position != "S:42" || got.PayloadSize != 3<<20 {
			t.Fatalf("hostile text or arrival copy changed on the way: %+v", got)
		}
		page, err := ex.DeadLettersList(ctx, "c", "m1", 10)
		must(t, err)
		if len(page) != 2 || page[0].ID != "m2" {
			t.Fatalf("page after m1: %+v", page)
		}
		got, err := ex.DeadLettersTake(ctx, "c", []string{"m2", "m3", "zz"})
		must(t, err)
		if len(got) != 2 || got[0].ID == got[1].ID || got[0].ID+got[1].ID != "m2m3" && got[0].ID+got[1].ID != "m3m2" {
			t.Fatalf("take: %+v", got)
		}
		again, err := ex.DeadLettersTake(ctx, "c", []string{"m2", "m1"})
		must(t, err)
		if len(again) != 1 || again[0].ID != "m1" || again[0].Subject != "orders.created" {
			t.Fatalf("second take: %+v", again)
		}
		q := driver.Quarantined{Consumer: "c", ID: "q", StoredFingerprint: []byte("a"), Fingerprint: []byte("b"), Key: "k", Payload: []byte("x"), At: t0}
		q2 := q
		q2.Subject = hostileText
		must(t, ex.QuarantineInsert(ctx, []driver.Quarantined{q, q2}))
		ql, err := ex.QuarantineList(ctx, "c", 0, 10)
		must(t, err)
		if page, err := ex.QuarantineList(ctx, "c", ql[0].Seq, 10); err != nil || len(page) != 1 || page[0].Seq != ql[1].Seq || ql[1].Seq <= ql[0].Seq {
			t.Fatalf("quarantine page after %d: %+v (%v)", ql[0].Seq, page, err)
		}
		if len(ql) != 2 || ql[0].ID != "q" || string(ql[0].StoredFingerprint) != "a" || string(ql[1].Fingerprint) != "b" || ql[0].Subject != "" || ql[1].Subject != hostileText {
			t.Fatalf("quarantine: %+v", ql)
		}
	})
}

// testInboxStats: the counts of one consumer's rows leave out every other
// consumer's.
func testInboxStats[TTx any](t *testing.T, d driver.Driver[TTx]) {
	inTx(t, d, func(ctx context.Context, ex driver.Executor) {
		if st, err := ex.InboxStats(ctx, "c"); err != nil || st != (driver.InboxStats{}) {
			t.Fatalf("empty: %+v, %v", st, err)
		}
		for consumer, ids := range map[string][]string{"c": {"m1", "m2", "m3"}, "other": {"m1"}} {
			_, err := ex.InboxClaim(ctx, consumer, t0, claims(ids...))
			must(t, err)
			for _, id := range ids {
				_, err := ex.FailureRecord(ctx, consumer, id, "boom", t0)
				must(t, err)
			}
			must(t, ex.DeadLettersInsert(ctx, []driver.DeadLetter{{Consumer: consumer, ID: ids[0], Fingerprint: fingerprint(ids[0]),
				CreatedAt: t0, Attempts: 1, LastError: "boom", At: t0}}))
			q := driver.Quarantined{Consumer: consumer, ID: ids[0], StoredFingerprint: []byte("a"), Fingerprint: []byte("b"), At: t0}
			must(t, ex.QuarantineInsert(ctx, []driver.Quarantined{q}))
		}
		_, err := ex.FailureRecord(ctx, "c", "m1", "again", t0)
		must(t, err)
		must(t, ex.QuarantineInsert(ctx, []driver.Quarantined{{Consumer: "c", ID: "m2", StoredFingerprint: []byte("a"), Fingerprint: []byte("b"), At: t0}}))
		want := driver.InboxStats{Claims: 3, Attempts: 4, DeadLetters: 1, Quarantined: 2}
		if st, err := ex.InboxStats(ctx, "c"); err != nil || st != want {
			t.Fatalf("stats of c: %+v, %v; want %+v", st, err, want)
		}
	})
}

func outboxRows(prefix string, n int) []driver.OutboxRow {
	rows := make([]driver.OutboxRow, n)
	for i := range rows {
		rows[i] = driver.OutboxRow{ID: fmt.Sprintf("%s-%d", prefix, i), Topic: "t", Key: fmt.Sprintf("k%d", i%2),
			Payload: []byte{byte(i)}, Headers: map[string]string{"N": fmt.Sprint(i)}, CreatedAt: t0, EnqueuedAt: t0.Add(time.Duration(i) * time.Second)}
	}
	return rows
}

func testOutbox[TTx any](t *testing.T, d driver.Driver[TTx]) {
	ctx := context.Background()
	inTx(t, d, func(ctx context.Context, ex driver.Executor) {
		must(t, ex.OutboxInsert(ctx, outboxRows("r", 5)))
		n, oldest, err := ex.OutboxStats(ctx)
		must(t, err)
		if n != 5 || !oldest.Equal(t0) {
			t.Fatalf("stats: %d %v", n, oldest)
		}
		// The transaction sees the rows it enqueued, in pages.
		rows, err := ex.OutboxUnsentList(ctx, 0, 2)
		must(t, err)
		if len(rows) != 2 || rows[0].ID != "r-0" || rows[1].ID != "r-1" || rows[1].Headers["N"] != "1" || rows[1].Topic != "t" {
			t.Fatalf("unsent, first page: %+v", rows)
		}
		rest, err := ex.OutboxUnsentList(ctx, rows[1].Seq, 10)
		must(t, err)
		if len(rest) != 3 || rest[0].ID != "r-2" || rest[0].Seq <= rows[1].Seq {
			t.Fatalf("unsent after %d: %+v", rows[1].Seq, rest)
		}
	})
	b, err := d.OutboxClaim(ctx, 3)
	must(t, err)
	rows := b.Rows()
	if len(rows) != 3 || rows[0].ID != "r-0" || rows[1].ID != "r-1" || rows[2].ID != "r-2" || rows[1].Headers["N"] != "1" {
		t.Fatalf("claimed %+v", rows)
	}
	for i := 1; i < len(rows); i++ {
		if rows[i].Seq <= rows[i-1].Seq {
			t.Fatal("rows not in seq order")
		}
	}
	must(t, b.Complete(ctx, driver.OutboxOutcome{Sent: driver.Seqs(rows[:2]), At: t0}))
	b, err = d.OutboxClaim(ctx, 10)
	must(t, err)
	if got := len(b.Rows()); got != 3 || b.Rows()[0].ID != "r-2" {
		t.Fatalf("after Complete(2): %+v", b.Rows())
	}
	must(t, b.Abort(ctx))
	b, err = d.OutboxClaim(ctx, 10)
	must(t, err)
	if len(b.Rows()) != 3 {
		t.Fatalf("Abort lost rows: %d", len(b.Rows()))
	}
	must(t, b.Complete(ctx, driver.OutboxOutcome{Sent: driver.Seqs(b.Rows()), At: t0, DeleteSent: true}))
	b, err = d.OutboxClaim(ctx, 10)
	must(t, err)
	if len(b.Rows()) != 0 {
		t.Fatalf("left: %+v", b.Rows())
	}
	must(t, b.Abort(ctx))
	inTx(t, d, func(ctx context.Context, ex driver.Executor) {
		n, oldest, err := ex.OutboxStats(ctx)
		must(t, err)
		if n != 0 || !oldest.IsZero() {
			t.Fatalf("stats when drained: %d %v", n, oldest)
		}
		// Two rows were marked sent at t0 and kept; compact them.
		del, err := ex.Compact(ctx, driver.CompactOutbox, t0.Add(time.Second), 10)
		must(t, err)
		if del != 2 {
			t.Fatalf("compacted %d sent rows, want 2", del)
		}
	})
}

// testOutboxParked: a parked row leaves the claims with its error, holds
// back the later rows of its key (not those of other keys, nor other rows
// without a key), and comes back when requeued; deleting it unblocks its
// key.
func testOutboxParked[TTx any](t *testing.T, d driver.Driver[TTx]) {
	ctx := context.Background()
	spec := []struct{ id, key string }{{"a0", "A"}, {"b0", "B"}, {"n0", ""}, {"a1", "A"}, {"b1", "B"}, {"n1", ""}, {"a2", "A"}}
	in := make([]driver.OutboxRow, len(spec))
	for i, r := range spec {
		in[i] = driver.OutboxRow{ID: r.id, Topic: "t", Key: r.key, Payload: []byte(r.id), Headers: map[string]string{"h": r.id}, CreatedAt: t0, EnqueuedAt: t0}
	}
	inTx(t, d, func(ctx context.Context, ex driver.Executor) { must(t, ex.OutboxInsert(ctx, in)) })
	claim := func(want string) []driver.OutboxRow {
		t.Helper()
		b, err := d.OutboxClaim(ctx, 10)
		must(t, err)
		rows := b.Rows()
		var ids []string
		for _, r := range rows {
			ids = append(ids, r.ID)
		}
		if got := strings.Join(ids, ","); got != want {
			b.Abort(ctx)
			t.Fatalf("claimed %s, want %s", got, want)
		}
		must(t, b.Complete(ctx, driver.OutboxOutcome{Sent: driver.Seqs(rows), At: t0}))
		return rows
	}
	b, err := d.OutboxClaim(ctx, 10)
	must(t, err)
	rows := b.Rows()
	if len(rows) != len(spec) {
		t.Fatalf("claimed %d rows, want %d", len(rows), len(spec))
	}
	seq := map[string]int64{}
	for _, r := range rows {
		seq[r.ID] = r.Seq
	}
	oddErr := `no stream ✓ \ "quoted" 'it'`
	must(t, b.Complete(ctx, driver.OutboxOutcome{Sent: []int64{seq["b0"]},
		Parked: []driver.OutboxParking{{Seq: seq["a0"], Error: oddErr}, {Seq: seq["n0"], Error: "too large"}}, At: t0}))
	claim("b1,n1") // a1 and a2 wait behind a0; n0 blocks nothing
	claim("")
	inTx(t, d, func(ctx context.Context, ex driver.Executor) {
		n, oldest, err := ex.OutboxParkedStats(ctx)
		must(t, err)
		if n != 2 || !oldest.Equal(t0) {
			t.Fatalf("parked stats: %d %v", n, oldest)
		}
		unsent, _, err := ex.OutboxStats(ctx)
		must(t, err)
		if unsent != 4 {
			t.Fatalf("%d unsent, want 4 (two parked, two behind one)", unsent)
		}
		if l, err := ex.OutboxUnsentList(ctx, 0, 10); err != nil || len(l) != 2 || l[0].ID != "a1" || l[1].ID != "a2" {
			t.Fatalf("unsent and not parked: %+v %v, want a1, a2", l, err)
		}
		parked, err := ex.OutboxParkedList(ctx, 0, 10)
		must(t, err)
		if len(parked) != 2 || parked[0].ID != "a0" || parked[0].Error != oddErr || !parked[0].ParkedAt.Equal(t0) ||
			string(parked[0].Payload) != "a0" || parked[0].Headers["h"] != "a0" || !parked[0].CreatedAt.Equal(t0) ||
			parked[1].ID != "n0" || parked[1].Error != "too large" {
			t.Fatalf("parked: %+v", parked)
		}
		if p, err := ex.OutboxParkedList(ctx, seq["a0"], 10); err != nil || len(p) != 1 || p[0].ID != "n0" {
			t.Fatalf("parked after a0: %+v %v", p, err)
		}
		if p, err := ex.OutboxParkedList(ctx, 0, 1); err != nil || len(p) != 1 || p[0].ID != "a0" {
			t.Fatalf("parked, limit 1: %+v %v", p, err)
		}
		// Only parked rows are requeued: b0 is sent, 1<<40 does not exist.
		n2, err := ex.OutboxParkedRequeue(ctx, []int64{seq["a0"], seq["b0"], 1 << 40})
		must(t, err)
		if n2 != 1 {
			t.Fatalf("requeued %d rows, want 1", n2)
		}
	})
	claim("a0,a1,a2") // the requeued row heads its key again, in order
	inTx(t, d, func(ctx context.Context, ex driver.Executor) {
		gone, err := ex.OutboxParkedDelete(ctx, []int64{seq["a0"], seq["n0"]})
		must(t, err)
		if len(gone) != 1 || gone[0].ID != "n0" || gone[0].Error != "too large" || string(gone[0].Payload) != "n0" {
			t.Fatalf("deleted %+v, want n0 only", gone)
		}
		again, err := ex.OutboxParkedDelete(ctx, []int64{seq["n0"]})
		must(t, err)
		if len(again) != 0 {
			t.Fatalf("deleted twice: %+v", again)
		}
		n, oldest, err := ex.OutboxParkedStats(ctx)
		must(t, err)
		if n != 0 || !oldest.IsZero() {
			t.Fatalf("parked stats when none: %d %v", n, oldest)
		}
	})
	// A key blocked by a parked row flows again once the row is deleted.
	inTx(t, d, func(ctx context.Context, ex driver.Executor) {
		must(t, ex.OutboxInsert(ctx, []driver.OutboxRow{{ID: "c0", Topic: "t", Key: "C", CreatedAt: t0, EnqueuedAt: t0}, {ID: "c1", Topic: "t", Key: "C", CreatedAt: t0, EnqueuedAt: t0}}))
	})
	b, err = d.OutboxClaim(ctx, 10)
	must(t, err)
	if rows := b.Rows(); len(rows) != 2 || rows[0].ID != "c0" {
		t.Fatalf("claimed %+v", rows)
	}
	must(t, b.Complete(ctx, driver.OutboxOutcome{Parked: []driver.OutboxParking{{Seq: b.Rows()[0].Seq, Error: "x"}}, At: t0}))
	claim("")
	inTx(t, d, func(ctx context.Context, ex driver.Executor) {
		parked, err := ex.OutboxParkedList(ctx, 0, 10)
		must(t, err)
		if len(parked) != 1 || parked[0].ID != "c0" {
			t.Fatalf("parked: %+v", parked)
		}
		_, err = ex.OutboxParkedDelete(ctx, []int64{parked[0].Seq})
		must(t, err)
	})
	claim("c1")
}

// testOutboxParkedBacklog: a parked row holds back only its key even when
// its key's rows fill many batches ahead of the other keys' rows: a claim
// of 3 rows passes the 40 held back and takes, in order, the heads of the
// keys behind them and the later rows of those keys (not a row of the
// parked key that comes after them).
func testOutboxParkedBacklog[TTx any](t *testing.T, d driver.Driver[TTx]) {
	ctx := context.Background()
	var in []driver.OutboxRow
	row := func(id, key string) {
		in = append(in, driver.OutboxRow{ID: id, Topic: "t", Key: key, CreatedAt: t0, EnqueuedAt: t0})
	}
	for i := range 41 {
		row(fmt.Sprintf("p%02d", i), "P")
	}
	row("b0", "B")
	row("p41", "P")
	row("c0", "C")
	row("b1", "B")
	inTx(t, d, func(ctx context.Context, ex driver.Executor) { must(t, ex.OutboxInsert(ctx, in)) })
	b, err := d.OutboxClaim(ctx, 3)
	must(t, err)
	if rows := b.Rows(); len(rows) != 3 || rows[0].ID != "p00" {
		b.Abort(ctx)
		t.Fatalf("claimed %+v, want p00 first", rows)
	}
	must(t, b.Complete(ctx, driver.OutboxOutcome{Parked: []driver.OutboxParking{{Seq: b.Rows()[0].Seq, Error: "x"}}, At: t0}))
	for _, want := range []string{"b0,c0,b1", ""} {
		b, err = d.OutboxClaim(ctx, 3)
		must(t, err)
		var ids []string
		for _, r := range b.Rows() {
			ids = append(ids, r.ID)
		}
		if got := strings.Join(ids, ","); got != want {
			b.Abort(ctx)
			t.Fatalf("claimed %s, want %s", got, want)
		}
		must(t, b.Complete(ctx, driver.OutboxOutcome{Sent: driver.Seqs(b.Rows()), At: t0}))
	}
}

func testWakeup[TTx any](t *testing.T, d driver.Driver[TTx]) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ch, stop, err := d.OutboxWakeup(ctx)
	must(t, err)
	defer stop()
	inTx(t, d, func(ctx context.Context, ex driver.Executor) {
		must(t, ex.OutboxInsert(ctx, outboxRows("w", 1)))
	})
	select {
	case <-ch:
	case <-ctx.Done():
		t.Fatal("no wakeup after a committed enqueue")
	}
}

func testCompact[TTx any](t *testing.T, d driver.Driver[TTx]) {
	old := make([]string, 25)
	for i := range old {
		old[i] = fmt.Sprintf("old-%02d", i)
	}
	inTx(t, d, func(ctx context.Context, ex driver.Executor) {
		_, err := ex.InboxClaim(ctx, "c", t0, claims(old...))
		must(t, err)
		_, err = ex.InboxClaim(ctx, "c", t0.Add(time.Hour), claims("new"))
		must(t, err)
		_, err = ex.FailureRecord(ctx, "c", "f", "x", t0)
		must(t, err)
	})
	if total := compactAll(t, d, driver.CompactInbox, t0.Add(time.Minute)); total != 25 {
		t.Fatalf("compacted %d, want 25", total)
	}
	inTx(t, d, func(ctx context.Context, ex driver.Executor) {
		fresh, err := ex.InboxClaim(ctx, "c", t0, claims("old-00", "new"))
		must(t, err)
		if !fresh[0] || fresh[1] {
			t.Fatalf("after compaction: %v", fresh)
		}
		n, err := ex.Compact(ctx, driver.CompactFailures, t0.Add(time.Minute), 10)
		must(t, err)
		if n != 1 {
			t.Fatalf("compacted %d failure rows", n)
		}
	})
	// Quarantine and dead letters, by the time they were written.
	inTx(t, d, func(ctx context.Context, ex driver.Executor) {
		q := driver.Quarantined{Consumer: "c", ID: "q", StoredFingerprint: []byte("a"), Fingerprint: []byte("b"), At: t0}
		q2 := q
		q2.At = t0.Add(time.Hour)
		must(t, ex.QuarantineInsert(ctx, []driver.Quarantined{q, q, q2}))
		dl := driver.DeadLetter{Consumer: "c", ID: "d1", Fingerprint: []byte("fp"), CreatedAt: t0, At: t0}
		dl2 := dl
		dl2.ID, dl2.At = "d2", t0.Add(time.Hour)
		must(t, ex.DeadLettersInsert(ctx, []driver.DeadLetter{dl, dl2}))
		for what, want := range map[driver.Compactable]int64{driver.CompactQuarantine: 2, driver.CompactDeadLetters: 1} {
			n, err := ex.Compact(ctx, what, t0.Add(time.Minute), 10)
			must(t, err)
			if n != want {
				t.Fatalf("compacted %d %s rows, want %d", n, what, want)
			}
		}
		ql, err := ex.QuarantineList(ctx, "c", 0, 10)
		must(t, err)
		dls, err := ex.DeadLettersList(ctx, "c", "", 10)
		must(t, err)
		if len(ql) != 1 || !ql[0].At.Equal(q2.At) || len(dls) != 1 || dls[0].ID != "d2" {
			t.Fatalf("after compaction: quarantine %+v, dead letters %+v", ql, dls)
		}
	})
}

// compactAll compacts what before before in rounds of at most 10 rows
// until a round deletes none, and returns how many rows it deleted.
func compactAll[TTx any](t *testing.T, d driver.Driver[TTx], what driver.Compactable, before time.Time) int64 {
	t.Helper()
	var total int64
	for {
		var n int64
		inTx(t, d, func(ctx context.Context, ex driver.Executor) {
			var err error
			n, err = ex.Compact(ctx, what, before, 10)
			must(t, err)
		})
		if n > 10 {
			t.Fatalf("compacted %d %s rows with limit 10", n, what)
		}
		if n == 0 {
			return total
		}
		total += n
	}
}
