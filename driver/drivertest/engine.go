package drivertest

import (
	"context"
	"database/sql"
	"path/filepath"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/eoskit/eos/driver"
	"github.com/eoskit/eos/driver/postgres"
	"github.com/eoskit/eos/driver/sqlite"
	"github.com/eoskit/eos/internal/testenv"
)

// Engine is a migrated driver on an isolated database, with the means for
// tests to run their own SQL in its transactions. Queries use $1-style
// placeholders on every engine.
type Engine[TTx any] struct {
	Name   string
	Driver driver.Driver[TTx]
	// Exec runs a statement in tx.
	Exec func(ctx context.Context, tx TTx, query string, args ...any) error
	// QueryInt runs a query returning one integer in tx.
	QueryInt func(ctx context.Context, tx TTx, query string, args ...any) (int64, error)
	// Prepare prepares statements that Exec then runs prepared, as a
	// careful application would (pgx prepares and caches on its own).
	Prepare func(t testing.TB, queries ...string)
}

// Int runs a one-integer query in its own transaction, failing t on error.
func (e *Engine[TTx]) Int(t testing.TB, query string, args ...any) int64 {
	t.Helper()
	ctx := context.Background()
	tx, err := e.Driver.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Driver.Rollback(ctx, tx)
	n, err := e.QueryInt(ctx, tx, query, args...)
	if err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return n
}

// Script runs statements in one committed transaction, failing t on error.
func (e *Engine[TTx]) Script(t testing.TB, statements ...string) {
	t.Helper()
	ctx := context.Background()
	tx, err := e.Driver.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Driver.Rollback(ctx, tx)
	for _, s := range statements {
		if err := e.Exec(ctx, tx, s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
	if err := e.Driver.Commit(ctx, tx); err != nil {
		t.Fatal(err)
	}
}

func sqlExec(ctx context.Context, tx *sql.Tx, q string, args ...any) error {
	_, err := tx.ExecContext(ctx, q, args...)
	return err
}

func sqlInt(ctx context.Context, tx *sql.Tx, q string, args ...any) (n int64, err error) {
	err = tx.QueryRowContext(ctx, q, args...).Scan(&n)
	return n, err
}

func pgxExec(ctx context.Context, tx pgx.Tx, q string, args ...any) error {
	_, err := tx.Exec(ctx, q, args...)
	return err
}

func pgxInt(ctx context.Context, tx pgx.Tx, q string, args ...any) (n int64, err error) {
	err = tx.QueryRow(ctx, q, args...).Scan(&n)
	return n, err
}

// NewSQLite returns an unmigrated SQLite driver on a fresh file in t's temp
// directory.
func NewSQLite(t testing.TB, cfg sqlite.Config) *sqlite.Driver {
	t.Helper()
	d, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "eos.db"), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

// SQLite returns a migrated SQLite engine on a fresh file.
func SQLite(t testing.TB) *Engine[*sql.Tx] {
	t.Helper()
	d := NewSQLite(t, sqlite.Config{})
	migrate(t, d.Migrator())
	return sqlEngine("sqlite", d, d.DB())
}

// sqlEngine is an engine for a database/sql driver over db.
func sqlEngine(name string, d driver.Driver[*sql.Tx], db *sql.DB) *Engine[*sql.Tx] {
	var mu sync.Mutex
	stmts := map[string]*sql.Stmt{}
	out := &Engine[*sql.Tx]{Name: name, Driver: d, QueryInt: sqlInt}
	out.Prepare = func(t testing.TB, queries ...string) {
		t.Helper()
		mu.Lock()
		defer mu.Unlock()
		for _, q := range queries {
			st, err := db.Prepare(q)
			if err != nil {
				t.Fatalf("prepare %s: %v", q, err)
			}
			t.Cleanup(func() { st.Close() })
			stmts[q] = st
		}
	}
	out.Exec = func(ctx context.Context, tx *sql.Tx, q string, args ...any) error {
		mu.Lock()
		st := stmts[q]
		mu.Unlock()
		if st == nil {
			return sqlExec(ctx, tx, q, args...)
		}
		txst := tx.StmtContext(ctx, st)
		defer txst.Close()
		_, err := txst.ExecContext(ctx, args...)
		return err
	}
	return out
}

// PostgresSchema creates a fresh schema, dropped when t ends, and returns
// its name with a pool whose search_path is that schema.
func PostgresSchema(t testing.TB) (string, *pgxpool.Pool) {
	t.Helper()
	url := testenv.PostgresURL(t)
	ctx := context.Background()
	name := testenv.Name("eos_t_")
	admin, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatalf("connect to PostgreSQL: %v", err)
	}
	defer admin.Close(ctx)
	if _, err := admin.Exec(ctx, "CREATE SCHEMA "+name); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c, err := pgx.Connect(context.Background(), url)
		if err == nil {
			c.Exec(context.Background(), "DROP SCHEMA "+name+" CASCADE")
			c.Close(context.Background())
		}
	})
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	cfg.ConnConfig.RuntimeParams["search_path"] = name
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return name, pool
}

// NewPostgres returns an unmigrated pgx driver on a fresh schema.
func NewPostgres(t testing.TB) *postgres.Driver {
	t.Helper()
	schema, pool := PostgresSchema(t)
	d, err := postgres.New(pool, postgres.Config{Schema: schema})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// NewPostgresStdlib returns an unmigrated database/sql driver on a fresh
// schema.
func NewPostgresStdlib(t testing.TB) *postgres.StdlibDriver {
	t.Helper()
	schema, pool := PostgresSchema(t)
	db := stdlib.OpenDBFromPool(pool)
	t.Cleanup(func() { db.Close() })
	d, err := postgres.NewStdlib(db, postgres.Config{Schema: schema})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// Postgres returns a migrated pgx engine on a fresh schema.
func Postgres(t testing.TB) *Engine[pgx.Tx] {
	t.Helper()
	d := NewPostgres(t)
	migrate(t, d.Migrator())
	return &Engine[pgx.Tx]{Name: "postgres", Driver: d, Exec: pgxExec, QueryInt: pgxInt, Prepare: func(testing.TB, ...string) {}}
}

// PostgresStdlib returns a migrated database/sql engine on a fresh schema.
func PostgresStdlib(t testing.TB) *Engine[*sql.Tx] {
	t.Helper()
	schema, pool := PostgresSchema(t)
	db := stdlib.OpenDBFromPool(pool)
	t.Cleanup(func() { db.Close() })
	d, err := postgres.NewStdlib(db, postgres.Config{Schema: schema})
	if err != nil {
		t.Fatal(err)
	}
	migrate(t, d.Migrator())
	return sqlEngine("postgres-stdlib", d, db)
}

func migrate(t testing.TB, m driver.Migrator) {
	t.Helper()
	if _, err := m.Up(context.Background()); err != nil {
		t.Fatalf("migrate: %v", err)
	}
}

// Each runs a generic test on every engine: SQLite, PostgreSQL through pgx
// and PostgreSQL through database/sql.
func Each(t *testing.T, sqlTest func(*testing.T, *Engine[*sql.Tx]), pgxTest func(*testing.T, *Engine[pgx.Tx])) {
	t.Run("sqlite", func(t *testing.T) { sqlTest(t, SQLite(t)) })
	t.Run("postgres", func(t *testing.T) { pgxTest(t, Postgres(t)) })
	t.Run("postgres-stdlib", func(t *testing.T) { sqlTest(t, PostgresStdlib(t)) })
}
