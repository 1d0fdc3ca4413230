package testdb

import (
	"context"
	"database/sql"
	"path/filepath"
	"sync"
	"testing"

	"github.com/eoskit/eos"
	"github.com/eoskit/eos/driver"
	"github.com/eoskit/eos/driver/sqlite"
	"github.com/eoskit/eos/outbox"
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
	// Strings runs a query returning one text column in tx, prepared when
	// Prepare prepared it.
	Strings func(ctx context.Context, tx TTx, query string, args ...any) ([]string, error)
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

func SQLExec(ctx context.Context, tx *sql.Tx, q string, args ...any) error {
	_, err := tx.ExecContext(ctx, q, args...)
	return err
}

func SQLInt(ctx context.Context, tx *sql.Tx, q string, args ...any) (n int64, err error) {
	err = tx.QueryRowContext(ctx, q, args...).Scan(&n)
	return n, err
}

// scanStrings reads the one text column of rows and closes them.
func scanStrings(rows *sql.Rows) ([]string, error) {
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, rows.Err()
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
	Migrate(t, d.Migrator())
	return SQLEngine("sqlite", d, d.DB())
}

// SQLEngine is an engine for a database/sql driver over db.
func SQLEngine(name string, d driver.Driver[*sql.Tx], db *sql.DB) *Engine[*sql.Tx] {
	var mu sync.Mutex
	stmts := map[string]*sql.Stmt{}
	out := &Engine[*sql.Tx]{Name: name, Driver: d, QueryInt: SQLInt}
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
			return SQLExec(ctx, tx, q, args...)
		}
		txst := tx.StmtContext(ctx, st)
		defer txst.Close()
		_, err := txst.ExecContext(ctx, args...)
		return err
	}
	out.Strings = func(ctx context.Context, tx *sql.Tx, q string, args ...any) ([]string, error) {
		mu.Lock()
		st := stmts[q]
		mu.Unlock()
		var rows *sql.Rows
		var err error
		if st == nil {
			rows, err = tx.QueryContext(ctx, q, args...)
		} else {
			txst := tx.StmtContext(ctx, st)
			defer txst.Close()
			rows, err = txst.QueryContext(ctx, args...)
		}
		if err != nil {
			return nil, err
		}
		return scanStrings(rows)
	}
	return out
}

// Migrate applies every migration of m, failing t on error.
func Migrate(t testing.TB, m driver.Migrator) {
	t.Helper()
	if _, err := m.Up(context.Background()); err != nil {
		t.Fatalf("migrate: %v", err)
	}
}

// Enqueue enqueues msgs on topic through ob (nil: an outbox of e with the
// default configuration) in a transaction of its own, and commits it if
// commit is set (else rolls it back).
func Enqueue[TTx any](t testing.TB, e *Engine[TTx], ob *outbox.Outbox[TTx], topic string, commit bool, msgs ...eos.Message) {
	t.Helper()
	ctx := context.Background()
	if ob == nil {
		var err error
		if ob, err = outbox.New(e.Driver, outbox.Config{}); err != nil {
			t.Fatal(err)
		}
	}
	tx, err := e.Driver.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Driver.Rollback(ctx, tx)
	if err := ob.Enqueue(ctx, tx, topic, msgs...); err != nil {
		t.Fatal(err)
	}
	if commit {
		if err := e.Driver.Commit(ctx, tx); err != nil {
			t.Fatal(err)
		}
	}
}
