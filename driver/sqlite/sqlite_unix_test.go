//go:build unix

package sqlite_test

import (
	"context"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/eoskit/eos/driver"
	"github.com/eoskit/eos/driver/sqlite"
)

// TestFilesPrivate: the database, its -wal and -shm files and the writer
// lock hold every message and its effects; Open creates them readable by
// the owner only, whatever the umask lets through (here: everything).
func TestFilesPrivate(t *testing.T) {
	old := syscall.Umask(0)
	t.Cleanup(func() { syscall.Umask(old) })
	ctx := context.Background()
	dir := t.TempDir()
	path, lock := filepath.Join(dir, "eos.db"), filepath.Join(dir, "eos.db.lock")
	d, err := sqlite.Open(ctx, path, sqlite.Config{WriterLock: lock})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if _, err := d.Migrator().Up(ctx); err != nil {
		t.Fatal(err)
	}
	tx, err := d.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Executor(tx).OutboxInsert(ctx, []driver.OutboxRow{{ID: "m", Topic: "t", CreatedAt: time.Now(), EnqueuedAt: time.Now()}}); err != nil {
		t.Fatal(err)
	}
	if err := d.Commit(ctx, tx); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{path, path + "-wal", path + "-shm", lock} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if perm := fi.Mode().Perm(); perm&0o077 != 0 {
			t.Errorf("%s: mode %v, want no access for group and others", filepath.Base(p), perm)
		}
	}
}
