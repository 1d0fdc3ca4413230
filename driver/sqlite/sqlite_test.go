package sqlite_test

import (
	"context"
	"database/sql"
	"errors"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"

	"github.com/eoskit/eos"
	"github.com/eoskit/eos/driver"
	"github.com/eoskit/eos/driver/drivertest"
	"github.com/eoskit/eos/driver/sqlite"
)

func TestConformance(t *testing.T) {
	drivertest.Run(t, func(t *testing.T) driver.Driver[*sql.Tx] { return drivertest.NewSQLite(t, sqlite.Config{}) })
}

func TestConformancePrefixNormal(t *testing.T) {
	drivertest.Run(t, func(t *testing.T) driver.Driver[*sql.Tx] {
		return drivertest.NewSQLite(t, sqlite.Config{Prefix: "app_eos_", Synchronous: sqlite.SyncNormal})
	})
}

func TestConformanceWriterLock(t *testing.T) {
	drivertest.Run(t, func(t *testing.T) driver.Driver[*sql.Tx] {
		return drivertest.NewSQLite(t, sqlite.Config{WriterLock: filepath.Join(t.TempDir(), "eos.db.lock")})
	})
}

func TestWriterLockUnopenable(t *testing.T) {
	dir := t.TempDir()
	_, err := sqlite.Open(context.Background(), filepath.Join(dir, "x.db"), sqlite.Config{WriterLock: filepath.Join(dir, "missing", "x.lock")})
	if err == nil || !strings.Contains(err.Error(), "writer lock") {
		t.Errorf("got %v, want an error naming the writer lock", err)
	}
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("got %v, want it to wrap fs.ErrNotExist", err)
	}
}

func TestConfigErrors(t *testing.T) {
	dir := t.TempDir()
	for _, cfg := range []sqlite.Config{
		{Prefix: "eos; DROP TABLE x"},
		{Prefix: "Upper"},
		{Synchronous: "OFF"},
		{BusyTimeout: -1},
	} {
		_, err := sqlite.Open(context.Background(), filepath.Join(dir, "x.db"), cfg)
		var ce *eos.ConfigError
		if !errors.Is(err, eos.ErrInvalidConfig) || !errors.As(err, &ce) {
			t.Errorf("%+v: got %v, want a *eos.ConfigError", cfg, err)
		}
	}
}
