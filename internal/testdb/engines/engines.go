package engines

import (
	"context"
	"database/sql"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/eoskit/eos/driver/postgres"
	"github.com/eoskit/eos/internal/testdb"
	"github.com/eoskit/eos/internal/testenv"
)

func pgxExec(ctx context.Context, tx pgx.Tx, q string, args ...any) error {
	_, err := tx.Exec(ctx, q, args...)
	return err
}

func pgxInt(ctx context.Context, tx pgx.Tx, q string, args ...any) (n int64, err error) {
	err = tx.QueryRow(ctx, q, args...).Scan(&n)
	return n, err
}

func pgxStrings(ctx context.Context, tx pgx.Tx, q string, args ...any) ([]string, error) {
	rows, err := tx.Query(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
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
	d, _, _ := PostgresStdlibDB(t)
	return d
}

// Postgres returns a migrated pgx engine on a fresh schema.
func Postgres(t testing.TB) *testdb.Engine[pgx.Tx] {
	t.Helper()
	d := NewPostgres(t)
	testdb.Migrate(t, d.Migrator())
	return &testdb.Engine[pgx.Tx]{Name: "postgres", Driver: d, Exec: pgxExec, QueryInt: pgxInt, Strings: pgxStrings, Prepare: func(testing.TB, ...string) {}}
}

// PostgresStdlib returns a migrated database/sql engine on a fresh schema.
func PostgresStdlib(t testing.TB) *testdb.Engine[*sql.Tx] {
	t.Helper()
	d, db, _ := PostgresStdlibDB(t)
	testdb.Migrate(t, d.Migrator())
	return testdb.SQLEngine("postgres-stdlib", d, db)
}

// PostgresStdlibDB returns an unmigrated database/sql driver on a fresh
// schema, with its database handle and the schema's name (for tables of
// the test's own beside eos's).
func PostgresStdlibDB(t testing.TB) (*postgres.StdlibDriver, *sql.DB, string) {
	t.Helper()
	schema, pool := PostgresSchema(t)
	db := stdlib.OpenDBFromPool(pool)
	t.Cleanup(func() { db.Close() })
	d, err := postgres.NewStdlib(db, postgres.Config{Schema: schema})
	if err != nil {
		t.Fatal(err)
	}
	return d, db, schema
}

// Each runs a generic test on every engine: SQLite, PostgreSQL through pgx
// and PostgreSQL through database/sql.
func Each(t *testing.T, sqlTest func(*testing.T, *testdb.Engine[*sql.Tx]), pgxTest func(*testing.T, *testdb.Engine[pgx.Tx])) {
	t.Run("sqlite", func(t *testing.T) { sqlTest(t, testdb.SQLite(t)) })
	t.Run("postgres", func(t *testing.T) { pgxTest(t, Postgres(t)) })
	t.Run("postgres-stdlib", func(t *testing.T) { sqlTest(t, PostgresStdlib(t)) })
}
