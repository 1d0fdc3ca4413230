//go:build unix

package sqlite_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/eoskit/eos/driver/sqlite"
)

// TestWriterLockHeldPerTransaction probes the lock file from a second open
// file, as another process would: taken at Begin, given up at Commit or
// Rollback, once.
func TestWriterLockHeldPerTransaction(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	lockPath := filepath.Join(dir, "eos.db.lock")
	d, err := sqlite.Open(ctx, filepath.Join(dir, "eos.db"), sqlite.Config{WriterLock: lockPath})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	probe, err := os.Open(lockPath)
	if err != nil {
		t.Fatal(err)
	}
	defer probe.Close()
	// free reports whether another process could take the lock now.
	free := func() bool {
		t.Helper()
		err := syscall.Flock(int(probe.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return false
		}
		if err != nil {
			t.Fatal(err)
		}
		syscall.Flock(int(probe.Fd()), syscall.LOCK_UN)
		return true
	}
	if !free() {
		t.Fatal("locked before any transaction")
	}

	tx1, err := d.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if free() {
		t.Fatal("free while a transaction is open")
	}
	if err := d.Commit(ctx, tx1); err != nil {
		t.Fatal(err)
	}
	if !free() {
		t.Fatal("held after Commit")
	}

	tx2, err := d.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// A Rollback of the committed tx1 (the usual deferred Rollback) must
	// not give up tx2's turn.
	if err := d.Rollback(ctx, tx1); err != nil {
		t.Fatal(err)
	}
	if free() {
		t.Fatal("a Rollback after Commit gave up another transaction's turn")
	}
	if err := d.Rollback(ctx, tx2); err != nil {
		t.Fatal(err)
	}
	if !free() {
		t.Fatal("held after Rollback")
	}
}

// BenchmarkWriterLock measures what the writer lock is for: several
// processes writing to one file. Four Drivers on one file stand in for four
// processes (each has its own connection, and its own open file of the
// lock, so flock(2) orders them as it orders processes); each commits
// transactions of 1000 inserts (a few milliseconds each, like an inbox
// batch), b.N transactions in all, first without the lock (waiters sleep in
// SQLite's busy handler) and then with it, in the same run. It reports, for
// each, the p50 and p99 time from Begin to the end of Commit and the
// transactions per second, and p99_ratio (without/with). Run with a fixed
// count, e.g. -bench WriterLock -benchtime 400x.
func BenchmarkWriterLock(b *testing.B) {
	const writers, rows = 4, 1000
	run := func(lock bool) (p50, p99 time.Duration, perSecond float64) {
		ctx := context.Background()
		dir := b.TempDir()
		cfg := sqlite.Config{}
		if lock {
			cfg.WriterLock = filepath.Join(dir, "eos.db.lock")
		}
		ds := make([]*sqlite.Driver, writers)
		for i := range ds {
			d, err := sqlite.Open(ctx, filepath.Join(dir, "eos.db"), cfg)
			if err != nil {
				b.Fatal(err)
			}
			defer d.Close()
			ds[i] = d
		}
		if _, err := ds[0].DB().ExecContext(ctx, "CREATE TABLE t (id INTEGER PRIMARY KEY, w INTEGER NOT NULL, v BLOB NOT NULL)"); err != nil {
			b.Fatal(err)
		}
		lat := make([][]time.Duration, writers)
		errs := make(chan error, writers)
		began := time.Now()
		var wg sync.WaitGroup
		for w, d := range ds {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := w; i < b.N; i += writers {
					start := time.Now()
					if err := writeRows(ctx, d, w, rows); err != nil {
						errs <- err
						return
					}
					lat[w] = append(lat[w], time.Since(start))
				}
			}()
		}
		wg.Wait()
		elapsed := time.Since(began)
		close(errs)
		for err := range errs {
			b.Fatal(err)
		}
		all := slices.Concat(lat...)
		slices.Sort(all)
		return all[len(all)/2], all[len(all)*99/100], float64(b.N) / elapsed.Seconds()
	}
	b.ResetTimer()
	p50Off, p99Off, rateOff := run(false)
	p50On, p99On, rateOn := run(true)
	b.StopTimer()
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	b.ReportMetric(ms(p50Off), "p50_nolock_ms")
	b.ReportMetric(ms(p99Off), "p99_nolock_ms")
	b.ReportMetric(ms(p50On), "p50_lock_ms")
	b.ReportMetric(ms(p99On), "p99_lock_ms")
	b.ReportMetric(rateOff, "nolock_tx/s")
	b.ReportMetric(rateOn, "lock_tx/s")
	b.ReportMetric(float64(p99Off)/float64(p99On), "p99_ratio")
}

// writeRows inserts n rows for writer w in one transaction of d.
func writeRows(ctx context.Context, d *sqlite.Driver, w, n int) error {
	tx, err := d.Begin(ctx)
	if err != nil {
		return err
	}
	defer d.Rollback(ctx, tx)
	for range n {
		if _, err := tx.ExecContext(ctx, "INSERT INTO t (w, v) VALUES (?, zeroblob(100))", w); err != nil {
			return err
		}
	}
	return d.Commit(ctx, tx)
}
