//go:build unix

package sqlite_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"

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
