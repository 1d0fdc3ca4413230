package drivertest

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/eoskit/eos/driver"
)

// dedupeClaim claims (scope, key) at now for a lease of a minute and a
// record expiry of an hour, in its own transaction.
func dedupeClaim[TTx any](t *testing.T, d driver.Driver[TTx], scope, key, fp, token string, now time.Time) (driver.DedupeRecord, bool) {
	t.Helper()
	var rec driver.DedupeRecord
	var claimed bool
	inTx(t, d, func(ctx context.Context, ex driver.Executor) {
		var err error
		rec, claimed, err = ex.DedupeClaim(ctx, driver.DedupeClaimParams{Scope: scope, Key: key, Fingerprint: []byte(fp), Token: token,
			Now: now, LeaseExpires: now.Add(time.Minute), Expires: now.Add(time.Hour)})
		must(t, err)
	})
	return rec, claimed
}

// dedupeDo runs one fenced call in its own transaction and returns its
// answer.
func dedupeDo[TTx any](t *testing.T, d driver.Driver[TTx], fn func(ctx context.Context, ex driver.Executor) (bool, error)) bool {
	t.Helper()
	var ok bool
	inTx(t, d, func(ctx context.Context, ex driver.Executor) {
		var err error
		ok, err = fn(ctx, ex)
		must(t, err)
	})
	return ok
}

func testDedupe[TTx any](t *testing.T, d driver.Driver[TTx]) {
	// Scopes and keys are bytes: these four pairs are distinct.
	pairs := [][2]string{{"s", "k"}, {"s\x00", "k"}, {"s", "\x00k"}, {"\xff\xfe", "ü"}}
	for i, p := range pairs {
		rec, claimed := dedupeClaim(t, d, p[0], p[1], "fp", fmt.Sprint("tok", i), t0)
		if !claimed || rec.State != driver.DedupeLeased || rec.Generation != 1 || rec.Token != fmt.Sprint("tok", i) ||
			!rec.LeaseExpires.Equal(t0.Add(time.Minute)) || !rec.Expires.Equal(t0.Add(time.Hour)) || !bytes.Equal(rec.Fingerprint, []byte("fp")) {
			t.Fatalf("claim %q: %v %+v", p, claimed, rec)
		}
	}
	// A live lease: not claimed, the record as it is.
	rec, claimed := dedupeClaim(t, d, "s", "k", "fp", "other", t0.Add(time.Second))
	if claimed || rec.Token != "tok0" || rec.Generation != 1 {
		t.Fatalf("claim of a live lease: %v %+v", claimed, rec)
	}
	// Another fingerprint, even after the lease ended: not claimed.
	if rec, claimed := dedupeClaim(t, d, "s", "k", "fp2", "other", t0.Add(2*time.Minute)); claimed || rec.Token != "tok0" {
		t.Fatalf("claim with another fingerprint: %v %+v", claimed, rec)
	}
	f0 := driver.DedupeFence{Scope: "s", Key: "k", Token: "tok0", Generation: 1}
	later := t0.Add(10 * time.Second)
	// Renew: only with the right token and generation, before the end.
	for _, f := range []driver.DedupeFence{{Scope: "s", Key: "k", Token: "tok1", Generation: 1}, {Scope: "s", Key: "k", Token: "tok0", Generation: 2}, {Scope: "s\x00", Key: "k", Token: "tok0", Generation: 1}} {
		if dedupeDo(t, d, func(ctx context.Context, ex driver.Executor) (bool, error) {
			return ex.DedupeRenew(ctx, driver.DedupeRenewParams{DedupeFence: f, Now: later, LeaseExpires: later.Add(time.Minute), Expires: later.Add(time.Hour)})
		}) {
			t.Fatalf("renew with %+v succeeded", f)
		}
	}
	if !dedupeDo(t, d, func(ctx context.Context, ex driver.Executor) (bool, error) {
		return ex.DedupeRenew(ctx, driver.DedupeRenewParams{DedupeFence: f0, Now: later, LeaseExpires: later.Add(time.Minute), Expires: later.Add(time.Hour)})
	}) {
		t.Fatal("renew of the live lease failed")
	}
	// The old end has passed, the renewed one has not: still held.
	if rec, claimed := dedupeClaim(t, d, "s", "k", "fp", "other", t0.Add(time.Minute)); claimed || !rec.LeaseExpires.Equal(later.Add(time.Minute)) {
		t.Fatalf("claim after renew: %v %+v", claimed, rec)
	}
	// After the renewed end: taken over, generation 2; the old lease can no
	// longer renew, complete or release.
	end := later.Add(time.Minute)
	rec, claimed = dedupeClaim(t, d, "s", "k", "fp", "tok-b", end)
	if !claimed || rec.Generation != 2 || rec.Token != "tok-b" {
		t.Fatalf("takeover: %v %+v", claimed, rec)
	}
	if dedupeDo(t, d, func(ctx context.Context, ex driver.Executor) (bool, error) {
		return ex.DedupeRenew(ctx, driver.DedupeRenewParams{DedupeFence: f0, Now: end, LeaseExpires: end.Add(time.Minute), Expires: end.Add(time.Hour)})
	}) || dedupeDo(t, d, func(ctx context.Context, ex driver.Executor) (bool, error) {
		return ex.DedupeComplete(ctx, driver.DedupeCompleteParams{DedupeFence: f0, Result: []byte("stale"), Now: end, Expires: end.Add(time.Hour)})
	}) || dedupeDo(t, d, func(ctx context.Context, ex driver.Executor) (bool, error) {
		return ex.DedupeRelease(ctx, driver.DedupeReleaseParams{DedupeFence: f0, Now: end, Expires: end.Add(time.Hour)})
	}) {
		t.Fatal("the taken-over lease still acted")
	}
	// A renew after the lease ended fails even with nobody else holding it.
	fb := driver.DedupeFence{Scope: "s", Key: "k", Token: "tok-b", Generation: 2}
	if dedupeDo(t, d, func(ctx context.Context, ex driver.Executor) (bool, error) {
		return ex.DedupeRenew(ctx, driver.DedupeRenewParams{DedupeFence: fb, Now: end.Add(time.Minute), LeaseExpires: end.Add(2 * time.Minute), Expires: end.Add(time.Hour)})
	}) {
		t.Fatal("renew after the lease ended succeeded")
	}
	// Complete: once; then claims find the result.
	done := end.Add(30 * time.Second)
	complete := func() bool {
		return dedupeDo(t, d, func(ctx context.Context, ex driver.Executor) (bool, error) {
			return ex.DedupeComplete(ctx, driver.DedupeCompleteParams{DedupeFence: fb, Result: []byte("res\x00ult"), Now: done, Expires: done.Add(time.Hour)})
		})
	}
	if !complete() || complete() {
		t.Fatal("complete: want true, then false")
	}
	rec, claimed = dedupeClaim(t, d, "s", "k", "fp", "c", done.Add(time.Hour-time.Microsecond))
	if claimed || rec.State != driver.DedupeCompleted || string(rec.Result) != "res\x00ult" || !rec.CompletedAt.Equal(done) || rec.Token != "" {
		t.Fatalf("claim of a completed key: %v %+v", claimed, rec)
	}
	// Past its expiry, the record is free, for any fingerprint.
	rec, claimed = dedupeClaim(t, d, "s", "k", "fp-new", "tok-c", done.Add(time.Hour))
	if !claimed || rec.Generation != 3 || rec.Result != nil || !rec.CompletedAt.IsZero() || string(rec.Fingerprint) != "fp-new" {
		t.Fatalf("claim past expiry: %v %+v", claimed, rec)
	}
	// Release: the key is claimed again (with its fingerprint only).
	fc := driver.DedupeFence{Scope: "s", Key: "k", Token: "tok-c", Generation: 3}
	now := done.Add(time.Hour)
	if !dedupeDo(t, d, func(ctx context.Context, ex driver.Executor) (bool, error) {
		return ex.DedupeRelease(ctx, driver.DedupeReleaseParams{DedupeFence: fc, Now: now, Expires: now.Add(time.Hour)})
	}) {
		t.Fatal("release failed")
	}
	if _, claimed := dedupeClaim(t, d, "s", "k", "fp", "x", now); claimed {
		t.Fatal("released key claimed with another fingerprint")
	}
	if rec, claimed := dedupeClaim(t, d, "s", "k", "fp-new", "tok-d", now); !claimed || rec.Generation != 4 {
		t.Fatalf("claim after release: %v %+v", claimed, rec)
	}
	// The other pairs were untouched.
	for i, p := range pairs[1:] {
		if rec, claimed := dedupeClaim(t, d, p[0], p[1], "fp", "y", t0.Add(time.Second)); claimed || rec.Token != fmt.Sprint("tok", i+1) {
			t.Fatalf("pair %q: %v %+v", p, claimed, rec)
		}
	}
}

// testDedupeConcurrent: of concurrent claims of one key, in transactions
// of their own, exactly one wins; so of concurrent takeovers.
func testDedupeConcurrent[TTx any](t *testing.T, d driver.Driver[TTx]) {
	const n = 20
	for round, now := range []time.Time{t0, t0.Add(2 * time.Minute)} {
		var wg sync.WaitGroup
		won := make(chan string, n)
		errs := make(chan error, n)
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				ctx := context.Background()
				tx, err := d.Begin(ctx)
				if err != nil {
					errs <- err
					return
				}
				defer d.Rollback(ctx, tx)
				token := fmt.Sprint("w", i)
				_, claimed, err := d.Executor(tx).DedupeClaim(ctx, driver.DedupeClaimParams{Scope: "s", Key: "k", Fingerprint: []byte("fp"), Token: token,
					Now: now, LeaseExpires: now.Add(time.Minute), Expires: now.Add(time.Hour)})
				if err == nil {
					err = d.Commit(ctx, tx)
				}
				if err != nil {
					errs <- err
					return
				}
				if claimed {
					won <- token
				}
			}()
		}
		wg.Wait()
		close(won)
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		if len(won) != 1 {
			t.Fatalf("round %d: %d claims won, want 1", round, len(won))
		}
		if rec, _ := dedupeClaim(t, d, "s", "k", "fp", "z", now); rec.Token != <-won || rec.Generation != int64(round+1) {
			t.Fatalf("round %d: record %+v", round, rec)
		}
	}
}

func testDedupeCompact[TTx any](t *testing.T, d driver.Driver[TTx]) {
	for i := range 25 {
		dedupeClaim(t, d, "s", fmt.Sprint("old", i), "fp", "t", t0)
	}
	dedupeClaim(t, d, "s", "new", "fp", "t", t0.Add(time.Hour))
	if total := compactAll(t, d, driver.CompactDedupe, t0.Add(time.Hour+time.Minute)); total != 25 {
		t.Fatalf("compacted %d dedupe records, want 25", total)
	}
	if _, claimed := dedupeClaim(t, d, "s", "new", "fp", "u", t0.Add(time.Hour+time.Second)); claimed {
		t.Fatal("the record not yet expired was compacted")
	}
}
