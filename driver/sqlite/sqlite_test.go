package sqlite_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/eoskit/eos"
	"github.com/eoskit/eos/driver"
	"github.com/eoskit/eos/driver/drivertest"
	"github.com/eoskit/eos/driver/sqlite"
	"github.com/eoskit/eos/internal/testdb"
)

func TestConformance(t *testing.T) {
	drivertest.Run(t, func(t *testing.T) driver.Driver[*sql.Tx] { return testdb.NewSQLite(t, sqlite.Config{}) })
}

func TestConformancePrefixNormal(t *testing.T) {
	drivertest.Run(t, func(t *testing.T) driver.Driver[*sql.Tx] {
		return testdb.NewSQLite(t, sqlite.Config{Prefix: "app_eos_", Synchronous: sqlite.SyncNormal})
	})
}

func TestConformanceWriterLock(t *testing.T) {
	drivertest.Run(t, func(t *testing.T) driver.Driver[*sql.Tx] {
		return testdb.NewSQLite(t, sqlite.Config{WriterLock: filepath.Join(t.TempDir(), "eos.db.lock")})
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
		{BusyTimeout: time.Microsecond}, // SQLite counts milliseconds: 0, no waiting
		{BusyTimeout: 1000 * time.Hour}, // overflows SQLite's 32-bit int
		{CacheSize: -1},
	} {
		_, err := sqlite.Open(context.Background(), filepath.Join(dir, "x.db"), cfg)
		var ce *eos.ConfigError
		if !errors.Is(err, eos.ErrInvalidConfig) || !errors.As(err, &ce) {
			t.Errorf("%+v: got %v, want a *eos.ConfigError", cfg, err)
		}
	}
}

// TestOpenPathIsAFileName opens paths holding characters that mean
// something in a URI: each must name its own file, in WAL mode. (Put into
// the connection string as they were, "what?.db" opened "what" and lost
// journal_mode, "a#b.db" opened "a", and "//" began an authority.)
func TestOpenPathIsAFileName(t *testing.T) {
	ctx := context.Background()
	for _, name := range []string{"what?.db", "a#b.db", "100%.db", "x%3F.db", "sp ace&=;+.db", "naïve.db"} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			openAndCheck(t, ctx, dir, filepath.Join(dir, name))
		})
	}
	t.Run("leading //", func(t *testing.T) {
		dir := t.TempDir()
		openAndCheck(t, ctx, dir, "/"+filepath.Join(dir, "x.db"))
	})
	t.Run("relative", func(t *testing.T) {
		dir := t.TempDir()
		t.Chdir(dir)
		openAndCheck(t, ctx, dir, "rel?#.db")
	})
}

// openAndCheck opens path, migrates it and checks that the database is the
// file path names, in WAL mode, and that nothing else appeared in dir.
func openAndCheck(t *testing.T, ctx context.Context, dir, path string) {
	t.Helper()
	d, err := sqlite.Open(ctx, path, sqlite.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if _, err := d.Migrator().Up(ctx); err != nil {
		t.Fatal(err)
	}
	var mode string
	if err := d.DB().QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil {
		t.Fatal(err)
	}
	if mode != "wal" {
		t.Errorf("journal_mode %q, want wal", mode)
	}
	var file string
	if err := d.DB().QueryRowContext(ctx, "SELECT file FROM pragma_database_list WHERE name = 'main'").Scan(&file); err != nil {
		t.Fatal(err)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		t.Fatal(err)
	}
	if filepath.Clean(file) != filepath.Clean(abs) {
		t.Errorf("opened %q, want %q", file, abs)
	}
	base := filepath.Base(path)
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		switch e.Name() {
		case base, base + "-wal", base + "-shm":
		default:
			t.Errorf("unexpected file %q beside %q", e.Name(), base)
		}
	}
}

// TestOpenPragmas reads back, through DB, the settings Config asks for and
// the package documentation promises (WAL, synchronous, busy timeout,
// foreign keys, page cache): a connection string that lost one, or asked
// for another value, fails here.
func TestOpenPragmas(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		cfg                   sqlite.Config
		sync, busyMS, cacheKB int
	}{
		{sqlite.Config{}, 2, 5000, 65536},
		{sqlite.Config{Synchronous: sqlite.SyncFull, BusyTimeout: time.Minute, CacheSize: 1024}, 2, 60000, 1024},
		{sqlite.Config{Synchronous: sqlite.SyncNormal, BusyTimeout: 1500 * time.Millisecond, CacheSize: 4096}, 1, 1500, 4096},
	} {
		d, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "eos.db"), tc.cfg)
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]string{}
		for _, p := range []string{"journal_mode", "synchronous", "busy_timeout", "foreign_keys", "cache_size"} {
			var v string
			if err := d.DB().QueryRowContext(ctx, "PRAGMA "+p).Scan(&v); err != nil {
				t.Fatal(err)
			}
			got[p] = v
		}
		d.Close()
		want := map[string]string{
			"journal_mode": "wal",
			"synchronous":  strconv.Itoa(tc.sync),
			"busy_timeout": strconv.Itoa(tc.busyMS),
			"foreign_keys": "1",
			"cache_size":   strconv.Itoa(-tc.cacheKB),
		}
		if !maps.Equal(got, want) {
			t.Errorf("%+v: pragmas %v, want %v", tc.cfg, got, want)
		}
	}
}

// TestOpenRefusesMemory: ":memory:" is not a file; SQLite would open an
// in-memory database (journal_mode "memory"), whose claims vanish with the
// process.
func TestOpenRefusesMemory(t *testing.T) {
	t.Chdir(t.TempDir())
	d, err := sqlite.Open(context.Background(), ":memory:", sqlite.Config{})
	if err == nil {
		d.Close()
	}
	var ce *eos.ConfigError
	if !errors.As(err, &ce) || !strings.Contains(err.Error(), "memory") {
		t.Errorf("got %v, want a *eos.ConfigError about an in-memory database", err)
	}
}

// TestUpIsOneTransaction: Up applies every pending migration in one
// transaction, so a migration that fails leaves none of those before it
// applied. The failure is real: a table named like the index migration
// 0003 creates (an index and a table share a namespace).
func TestUpIsOneTransaction(t *testing.T) {
	ctx := context.Background()
	d := testdb.NewSQLite(t, sqlite.Config{})
	if _, err := d.DB().ExecContext(ctx, "CREATE TABLE eos_outbox_parked (x)"); err != nil {
		t.Fatal(err)
	}
	m := d.Migrator()
	if v, err := m.Up(ctx); err == nil || !strings.Contains(err.Error(), "0003_outbox_parked") {
		t.Fatalf("Up = %v, %v; want migration 0003 to fail", v, err)
	}
	st, err := m.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range st {
		if s.Applied {
			t.Errorf("migration %04d_%s applied by an Up that failed", s.Version, s.Name)
		}
	}
	var n int
	if err := d.DB().QueryRowContext(ctx, "SELECT count(*) FROM sqlite_master WHERE name = 'eos_inbox'").Scan(&n); err != nil || n != 0 {
		t.Errorf("migration 0001's table exists after an Up that failed (%d, %v)", n, err)
	}
	if _, err := d.DB().ExecContext(ctx, "DROP TABLE eos_outbox_parked"); err != nil {
		t.Fatal(err)
	}
	if v, err := m.Up(ctx); err != nil || len(v) != len(st) {
		t.Fatalf("Up after the fix applied %v, %v; want all %d", v, err, len(st))
	}
}

// TestMigrationsForOwnTool applies the rendered scripts by hand, as goose
// or atlas would, and finds the schema Migrator makes, less its own
// record; the down scripts, newest first, leave nothing.
func TestMigrationsForOwnTool(t *testing.T) {
	ctx := context.Background()
	cfg := sqlite.Config{Prefix: "app_"}
	migs, err := sqlite.Migrations(cfg)
	if err != nil {
		t.Fatal(err)
	}
	byHand := testdb.NewSQLite(t, cfg)
	run := func(script string) {
		t.Helper()
		tx, err := byHand.DB().BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Rollback()
		if _, err := tx.ExecContext(ctx, script); err != nil {
			t.Fatalf("%s: %v", script, err)
		}
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
	}
	for i, m := range migs {
		if m.Version != i+1 || m.Name == "" || !strings.Contains(m.Up, "app_") || strings.Contains(m.Up, "{{") {
			t.Fatalf("migration %d: %+v", i, m)
		}
		run(m.Up)
	}
	byMigrator := testdb.NewSQLite(t, cfg)
	applied, err := byMigrator.Migrator().Up(ctx)
	if err != nil || len(applied) != len(migs) {
		t.Fatalf("Migrator applied %v, %v; Migrations returned %d", applied, err, len(migs))
	}
	schema := func(d *sqlite.Driver) []string {
		t.Helper()
		rows, err := d.DB().QueryContext(ctx, "SELECT type || ' ' || name || ': ' || coalesce(sql, '') FROM sqlite_master WHERE name <> 'app_migrations' AND name NOT LIKE 'sqlite!_%' ESCAPE '!' ORDER BY name")
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		var out []string
		for rows.Next() {
			var s string
			if err := rows.Scan(&s); err != nil {
				t.Fatal(err)
			}
			out = append(out, s)
		}
		return out
	}
	if got, want := schema(byHand), schema(byMigrator); len(want) == 0 || !slices.Equal(got, want) {
		t.Errorf("by hand:\n%s\nby Migrator:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	for i := len(migs) - 1; i >= 0; i-- {
		run(migs[i].Down)
	}
	if left := schema(byHand); len(left) != 0 {
		t.Errorf("left after the down scripts: %v", left)
	}

	if _, err := sqlite.Migrations(sqlite.Config{Prefix: "App-"}); !errors.Is(err, eos.ErrInvalidConfig) {
		t.Errorf("Migrations with an invalid prefix: %v, want a ConfigError", err)
	}
}

func TestStatements(t *testing.T) {
	drivertest.RunStatements(t, func(t *testing.T) (driver.Driver[*sql.Tx], drivertest.Statements) {
		d, count, err := sqlite.OpenCounting(context.Background(), filepath.Join(t.TempDir(), "eos.db"), sqlite.Config{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { d.Close() })
		return d, count
	})
}

// TestInsertsPastParameterLimit: a set-based insert with more values than
// one SQLite statement binds takes one more statement per such number of
// rows, and stores every row, in order.
func TestInsertsPastParameterLimit(t *testing.T) {
	ctx := context.Background()
	d, count, err := sqlite.OpenCounting(ctx, filepath.Join(t.TempDir(), "eos.db"), sqlite.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	testdb.Migrate(t, d.Migrator())
	const perOutbox, perDead = 32766 / 7, 32766 / 15 // rows per statement
	out := make([]driver.OutboxRow, perOutbox+1)
	for i := range out {
		out[i] = driver.OutboxRow{ID: strconv.Itoa(i), Topic: "t", Key: "k"}
	}
	dead := make([]driver.DeadLetter, 2*perDead+1)
	for i := range dead {
		dead[i] = driver.DeadLetter{Consumer: "c", ID: strconv.Itoa(i), Fingerprint: []byte("f")}
	}
	tx, err := d.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Rollback(ctx, tx)
	ex := d.Executor(tx)
	for _, c := range []struct {
		name   string
		insert func() error
		want   int64
	}{
		{"OutboxInsert", func() error { return ex.OutboxInsert(ctx, out) }, 2},
		{"DeadLettersInsert", func() error { return ex.DeadLettersInsert(ctx, dead) }, 3},
	} {
		before := count()
		if err := c.insert(); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if got := count() - before; got != c.want {
			t.Errorf("%s ran %d statements, want %d", c.name, got, c.want)
		}
	}
	rows, err := ex.OutboxUnsentList(ctx, 0, len(out)+1)
	if err != nil || len(rows) != len(out) {
		t.Fatalf("outbox holds %d rows (%v), want %d", len(rows), err, len(out))
	}
	for i, r := range rows {
		if r.ID != strconv.Itoa(i) {
			t.Fatalf("outbox row %d is %s: not in order", i, r.ID)
		}
	}
	st, err := ex.InboxStats(ctx, "c")
	if err != nil || st.DeadLetters != int64(len(dead)) {
		t.Fatalf("dead letters: %+v (%v), want %d", st, err, len(dead))
	}
}

// BenchmarkOutboxInsert enqueues batches of outbox rows (256-byte payloads)
// in one transaction each.
func BenchmarkOutboxInsert(b *testing.B) {
	for _, n := range []int{1, 16, 256, 1000} {
		b.Run(fmt.Sprintf("rows=%d", n), func(b *testing.B) {
			ctx := context.Background()
			d := testdb.NewSQLite(b, sqlite.Config{})
			testdb.Migrate(b, d.Migrator())
			rows := make([]driver.OutboxRow, n)
			for i := range rows {
				rows[i] = driver.OutboxRow{ID: eos.NewID(), Topic: "payments.charge", Key: testdb.Account(i), Payload: make([]byte, 256),
					Headers: map[string]string{"Trace": "abc"}, CreatedAt: time.Now(), EnqueuedAt: time.Now()}
			}
			b.ResetTimer()
			start := time.Now()
			for done := 0; done < b.N; done += n {
				tx, err := d.Begin(ctx)
				if err != nil {
					b.Fatal(err)
				}
				if err := d.Executor(tx).OutboxInsert(ctx, rows); err != nil {
					b.Fatal(err)
				}
				if err := d.Commit(ctx, tx); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "rows/s")
		})
	}
}
