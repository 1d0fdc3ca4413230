package dedupe_test

import (
	"context"
	"database/sql"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/eoskit/eos"
	"github.com/eoskit/eos/compact"
	"github.com/eoskit/eos/dedupe"
	"github.com/eoskit/eos/dedupe/dedupetest"
	"github.com/eoskit/eos/driver"
	"github.com/eoskit/eos/driver/postgres"
	"github.com/eoskit/eos/driver/sqlite"
	"github.com/eoskit/eos/internal/testdb"
	"github.com/eoskit/eos/internal/testdb/engines"
)

// newSQL returns the SQL store over drv, failing t on error.
func newSQL[TTx any](t *testing.T, drv driver.Driver[TTx], cfg dedupe.Config) *dedupe.SQL[TTx] {
	t.Helper()
	s, err := dedupe.NewSQL(drv, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestConformanceSQLite(t *testing.T) {
	dedupetest.Run(t, dedupetest.Backend{
		New: func(t *testing.T, cfg dedupe.Config) dedupe.Store {
			return newSQL(t, testdb.SQLite(t).Driver, cfg)
		},
		Down: func(t *testing.T, cfg dedupe.Config) dedupe.Store {
			d := testdb.NewSQLite(t, sqlite.Config{})
			testdb.Migrate(t, d.Migrator())
			d.Close()
			return newSQL[*sql.Tx](t, d, cfg)
		},
	})
}

func TestConformancePostgres(t *testing.T) {
	dedupetest.Run(t, dedupetest.Backend{
		New: func(t *testing.T, cfg dedupe.Config) dedupe.Store {
			return newSQL(t, engines.Postgres(t).Driver, cfg)
		},
		Down: func(t *testing.T, cfg dedupe.Config) dedupe.Store {
			schema, pool := engines.PostgresSchema(t)
			d, err := postgres.New(pool, postgres.Config{Schema: schema})
			if err != nil {
				t.Fatal(err)
			}
			testdb.Migrate(t, d.Migrator())
			pool.Close()
			return newSQL[pgx.Tx](t, d, cfg)
		},
	})
}

func TestConformancePostgresStdlib(t *testing.T) {
	dedupetest.Run(t, dedupetest.Backend{
		New: func(t *testing.T, cfg dedupe.Config) dedupe.Store {
			return newSQL(t, engines.PostgresStdlib(t).Driver, cfg)
		},
		Down: func(t *testing.T, cfg dedupe.Config) dedupe.Store {
			d, db, _ := engines.PostgresStdlibDB(t)
			testdb.Migrate(t, d.Migrator())
			db.Close()
			return newSQL[*sql.Tx](t, d, cfg)
		},
	})
}

// TestCompleteTx: the key's completion commits with the handler's writes,
// or not at all.
func TestCompleteTx(t *testing.T) {
	engines.Each(t, func(t *testing.T, e *testdb.Engine[*sql.Tx]) { testCompleteTx(t, e) },
		func(t *testing.T, e *testdb.Engine[pgx.Tx]) { testCompleteTx(t, e) })
}

func testCompleteTx[TTx any](t *testing.T, e *testdb.Engine[TTx]) {
	ctx := context.Background()
	e.Script(t, "CREATE TABLE charges (id TEXT NOT NULL)")
	s := newSQL(t, e.Driver, dedupe.Config{})
	c, err := s.Claim(ctx, "tenant", "key", []byte("fp"), time.Minute)
	if err != nil || c.Status != dedupe.Claimed {
		t.Fatalf("claim: %+v, %v", c, err)
	}
	// handler runs the handler's write and the completion in one
	// transaction, committed when commit is set.
	handler := func(commit bool) error {
		tx, err := e.Driver.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer e.Driver.Rollback(ctx, tx)
		if err := e.Exec(ctx, tx, "INSERT INTO charges (id) VALUES ($1)", "ch-1"); err != nil {
			t.Fatal(err)
		}
		if err := s.CompleteTx(ctx, tx, c.Lease, []byte("charged")); err != nil || !commit {
			return err
		}
		return e.Driver.Commit(ctx, tx)
	}
	if err := handler(false); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Claim(ctx, "tenant", "key", []byte("fp"), time.Minute); err != nil || got.Status != dedupe.InProgress {
		t.Fatalf("after a rolled-back completion: %+v, %v", got, err)
	}
	if n := e.Int(t, "SELECT count(*) FROM charges"); n != 0 {
		t.Fatalf("%d charges after the rollback", n)
	}
	if err := handler(true); err != nil {
		t.Fatal(err)
	}
	got, err := s.Claim(ctx, "tenant", "key", []byte("fp"), time.Minute)
	if err != nil || got.Status != dedupe.Completed || string(got.Result) != "charged" {
		t.Fatalf("after the commit: %+v, %v", got, err)
	}
	if n := e.Int(t, "SELECT count(*) FROM charges"); n != 1 {
		t.Fatalf("%d charges after the commit", n)
	}
	// The lease is spent: the same handler again is fenced.
	if err := handler(true); !errors.Is(err, dedupe.ErrFenced) {
		t.Fatalf("second completion: %v", err)
	}
	if n := e.Int(t, "SELECT count(*) FROM charges"); n != 1 {
		t.Fatalf("%d charges after a fenced completion", n)
	}
	// ClaimTx and ReleaseTx: a claim rolled back leaves the key free; a
	// claim released in its transaction too.
	for _, commit := range []bool{false, true} {
		tx, err := e.Driver.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		c, err := s.ClaimTx(ctx, tx, "tenant", "other", nil, time.Minute)
		if err != nil || c.Status != dedupe.Claimed {
			t.Fatalf("ClaimTx: %+v, %v", c, err)
		}
		if commit {
			if err := s.ReleaseTx(ctx, tx, c.Lease); err != nil {
				t.Fatal(err)
			}
			err = e.Driver.Commit(ctx, tx)
		} else {
			err = e.Driver.Rollback(ctx, tx)
		}
		if err != nil {
			t.Fatal(err)
		}
		got, err := s.Claim(ctx, "tenant", "other", nil, time.Minute)
		if err != nil || got.Status != dedupe.Claimed {
			t.Fatalf("claim after ClaimTx (commit %v): %+v, %v", commit, got, err)
		}
		if err := s.Release(ctx, got.Lease); err != nil {
			t.Fatal(err)
		}
	}
}

// TestCompactor: compact.Compactor deletes the records past their expiry,
// by the retention they were written with.
func TestCompactor(t *testing.T) {
	ctx := context.Background()
	clock := dedupetest.NewClock()
	e := testdb.SQLite(t)
	s := newSQL(t, e.Driver, dedupe.Config{Retention: time.Minute, Test: eos.TestConfig{Now: clock.Now}})
	c, err := s.Claim(ctx, "s", "k", nil, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Complete(ctx, c.Lease, []byte("r")); err != nil {
		t.Fatal(err)
	}
	comp, err := compact.New(e.Driver, compact.Config{RedeliveryHorizon: time.Hour, Test: eos.TestConfig{Now: clock.Now}})
	if err != nil {
		t.Fatal(err)
	}
	for _, step := range []struct {
		advance time.Duration
		want    int64
	}{{time.Minute - time.Millisecond, 0}, {time.Millisecond, 1}} {
		clock.Advance(step.advance)
		st, err := comp.Compact(ctx)
		if err != nil || st.Dedupe != step.want {
			t.Fatalf("after %v: %+v, %v; want %d dedupe records deleted", step.advance, st, err, step.want)
		}
	}
}
