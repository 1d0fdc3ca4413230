package reconcile_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/stdlib"

	"github.com/eoskit/eos"
	"github.com/eoskit/eos/driver"
	"github.com/eoskit/eos/driver/postgres"
	"github.com/eoskit/eos/internal/testdb"
	"github.com/eoskit/eos/internal/testdb/engines"
	"github.com/eoskit/eos/reconcile"
)

var t0 = time.Date(2026, 1, 2, 3, 0, 0, 0, time.UTC)

// store is a migrated driver and a database/sql handle on the same
// database, for the producer's and the application's own tables.
type store[TTx any] struct {
	d  driver.Driver[TTx]
	db *sql.DB
}

// eachStore runs test on SQLite and on PostgreSQL through pgx.
func eachStore(t *testing.T, sqlTest func(*testing.T, store[*sql.Tx]), pgxTest func(*testing.T, store[pgxTx])) {
	t.Run("sqlite", func(t *testing.T) {
		e := testdb.SQLite(t)
		sqlTest(t, store[*sql.Tx]{d: e.Driver, db: sqliteDB(e)})
	})
	t.Run("postgres", func(t *testing.T) { pgxTest(t, pgxStore(t)) })
}

// pgxStore is a migrated pgx driver on a schema of its own, and a
// database/sql handle on the same pool.
func pgxStore(t testing.TB) store[pgxTx] {
	t.Helper()
	schema, pool := engines.PostgresSchema(t)
	d, err := postgres.New(pool, postgres.Config{Schema: schema})
	if err != nil {
		t.Fatal(err)
	}
	testdb.Migrate(t, d.Migrator())
	db := stdlib.OpenDBFromPool(pool)
	t.Cleanup(func() { db.Close() })
	return store[pgxTx]{d: d, db: db}
}

func (s store[TTx]) exec(t *testing.T, qs ...string) {
	t.Helper()
	for _, q := range qs {
		if _, err := s.db.ExecContext(context.Background(), q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
}

// inTx runs fn in a committed transaction of s's driver.
func (s store[TTx]) inTx(t *testing.T, fn func(ex driver.Executor) error) {
	t.Helper()
	ctx := context.Background()
	tx, err := s.d.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer s.d.Rollback(ctx, tx)
	if err := fn(s.d.Executor(tx)); err != nil {
		t.Fatal(err)
	}
	if err := s.d.Commit(ctx, tx); err != nil {
		t.Fatal(err)
	}
}

func (s store[TTx]) claim(t *testing.T, consumer string, at time.Time, ids ...string) {
	t.Helper()
	cs := make([]driver.Claim, len(ids))
	for i, id := range ids {
		cs[i] = driver.Claim{ID: id, Fingerprint: make([]byte, eos.FingerprintSize)}
	}
	s.inTx(t, func(ex driver.Executor) error {
		_, err := ex.InboxClaim(context.Background(), consumer, at, cs)
		return err
	})
}

// recorder is a hook keeping what it is told.
type recorder struct {
	mu       sync.Mutex
	findings []reconcile.Finding
	done     int
	err      error
}

func (r *recorder) ReconcileFinding(f reconcile.Finding) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.findings = append(r.findings, f)
}

func (r *recorder) ReconcileDone(_ *reconcile.Report, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.done++
	r.err = err
}

// setup fills s with a producer table of six ids sent a second apart from
// t0 (s4's apply is missing), the consumer's claims (with an unexpected
// one, an invalid delivery's record and another consumer's claim of s4), an
// effect table applying s1 twice, and an outbox holding an old and a young
// unsent row.
func setup[TTx any](t *testing.T, s store[TTx], now time.Time) {
	s.exec(t, "CREATE TABLE sent (id TEXT NOT NULL, at BIGINT NOT NULL)",
		"CREATE TABLE effects (id TEXT NOT NULL)")
	for i := 1; i <= 6; i++ {
		s.exec(t, fmt.Sprintf("INSERT INTO sent VALUES ('s%d', %d)", i, t0.Add(time.Duration(i)*time.Second).UnixMicro()))
	}
	s.exec(t, "INSERT INTO effects VALUES ('s1'), ('s1'), ('s2'), ('s3')")
	s.claim(t, "c", t0.Add(10*time.Second), "s1", "s2", "s3", "s5", "s6", "x9", "invalid-0123")
	s.claim(t, "c", t0.Add(-time.Hour), "before-the-range") // outside the window: not unexpected
	s.claim(t, "other", t0.Add(10*time.Second), "s4")
	s.inTx(t, func(ex driver.Executor) error {
		return ex.OutboxInsert(context.Background(), []driver.OutboxRow{
			{ID: "o-old", Topic: "t", CreatedAt: t0, EnqueuedAt: t0},
			{ID: "o-young", Topic: "t", CreatedAt: now, EnqueuedAt: now.Add(-time.Second)},
		})
	})
}

func TestReconcile(t *testing.T) { eachStore(t, testReconcile[*sql.Tx], testReconcile[pgxTx]) }

func testReconcile[TTx any](t *testing.T, s store[TTx]) {
	now := t0.Add(time.Hour)
	setup(t, s, now)
	rec := &recorder{}
	var progress []int64
	src := reconcile.SQLSource{DB: s.db, Query: "SELECT id, at FROM sent WHERE id > $1 ORDER BY id LIMIT $2"}
	r, err := reconcile.New(s.d, src, reconcile.Config{Consumer: "c", PartialAfter: time.Minute, Outbox: "orders-out",
		DB: s.db, Duplicates: "SELECT id, count(*) FROM effects GROUP BY id",
		PageSize: 2, Hooks: []reconcile.Hook{rec}, Progress: func(n int64) { progress = append(progress, n) },
		Test: eos.TestConfig{Now: func() time.Time { return now }}})
	if err != nil {
		t.Fatal(err)
	}
	rep, err := r.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	check := func(name string, got reconcile.Found, want ...string) {
		t.Helper()
		if got.Count != int64(len(want)) || !slices.Equal(got.Sample, want) {
			t.Errorf("%s: %+v, want %q", name, got, want)
		}
	}
	check("missed", rep.Missed, "s4")
	check("unexpected", rep.Unexpected, "x9")
	check("duplicates", rep.Duplicates, "s1")
	check("partial", rep.Partial, "o-old")
	if rep.Findings() != 4 || rep.OK() || rep.SourceEntries != 6 || rep.Applied != 5 || rep.ClaimsChecked != 6 ||
		!rep.UnexpectedChecked || !rep.DuplicatesChecked || !rep.PartialChecked || rep.Uncheckable != 0 || rep.Pending != 0 {
		t.Errorf("report: %+v", rep)
	}
	if !slices.Equal(progress, []int64{2, 4, 6}) {
		t.Errorf("progress %v, want pages of 2", progress)
	}
	want := []reconcile.Finding{{Kind: reconcile.Missed, Consumer: "c", ID: "s4"}, {Kind: reconcile.Unexpected, Consumer: "c", ID: "x9"},
		{Kind: reconcile.Duplicate, Consumer: "c", ID: "s1"}, {Kind: reconcile.Partial, Consumer: "c", Outbox: "orders-out", ID: "o-old"}}
	if !slices.Equal(rec.findings, want) || rec.done != 1 || rec.err != nil {
		t.Errorf("hook: %+v, done %d, %v", rec.findings, rec.done, rec.err)
	}

	// With a compaction horizon past s4's send, s4 cannot be checked; a
	// settle time covering s5 and s6 makes them pending (they are claimed:
	// nothing changes for them).
	r, err = reconcile.New(s.d, src, reconcile.Config{Consumer: "c", Retention: now.Sub(t0.Add(4500 * time.Millisecond)),
		Test: eos.TestConfig{Now: func() time.Time { return now }}})
	if err != nil {
		t.Fatal(err)
	}
	if rep, err = r.Run(context.Background()); err != nil || rep.Missed.Count != 0 || rep.Uncheckable != 1 || rep.Findings() != 1 {
		t.Errorf("with retention: %+v, %v", rep, err)
	}
	r, err = reconcile.New(s.d, src, reconcile.Config{Consumer: "c", Settle: now.Sub(t0.Add(3500 * time.Millisecond)),
		Test: eos.TestConfig{Now: func() time.Time { return now }}})
	if err != nil {
		t.Fatal(err)
	}
	if rep, err = r.Run(context.Background()); err != nil || rep.Missed.Count != 0 || rep.Pending != 1 {
		t.Errorf("with settle: %+v, %v", rep, err)
	}
}

// TestMaxSourceIDs: past the bound of remembered ids, the unexpected-apply
// check is skipped and says so; missed applies are still found.
func TestMaxSourceIDs(t *testing.T) {
	eachStore(t, testMaxSourceIDs[*sql.Tx], testMaxSourceIDs[pgxTx])
}

func testMaxSourceIDs[TTx any](t *testing.T, s store[TTx]) {
	now := t0.Add(time.Hour)
	setup(t, s, now)
	r, err := reconcile.New(s.d, reconcile.SQLSource{DB: s.db, Query: "SELECT id FROM sent WHERE id > $1 ORDER BY id LIMIT $2"},
		reconcile.Config{Consumer: "c", MaxSourceIDs: 3, Test: eos.TestConfig{Now: func() time.Time { return now }}})
	if err != nil {
		t.Fatal(err)
	}
	rep, err := r.Run(context.Background())
	if err != nil || rep.UnexpectedChecked || rep.Unexpected.Count != 0 || rep.Missed.Count != 1 || rep.Missed.Sample[0] != "s4" {
		t.Fatalf("%+v, %v", rep, err)
	}
}

func TestSourceErrors(t *testing.T) {
	db := sqliteDB(testdb.SQLite(t))
	e := testdb.SQLite(t)
	for _, q := range []string{"SELECT nothing FROM nowhere", "SELECT 'a', 'b', 'c', $1, $2", "SELECT 'a', 3.5 WHERE $1 = '' AND $2 > 0",
		"SELECT 'b' WHERE $1 = '' UNION ALL SELECT 'a' WHERE $2 > 0", "SELECT 'a' WHERE $1 = '' UNION ALL SELECT 'b' UNION ALL SELECT 'c' WHERE $2 > 0"} {
		rec := &recorder{}
		r, err := reconcile.New(e.Driver, reconcile.SQLSource{DB: db, Query: q}, reconcile.Config{Consumer: "c", PageSize: 2, Hooks: []reconcile.Hook{rec}})
		if err != nil {
			t.Fatal(err)
		}
		_, err = r.Run(context.Background())
		var se *reconcile.SourceError
		if !errors.Is(err, reconcile.ErrSource) || !errors.As(err, &se) || se.Source != "sql" || rec.done != 1 || rec.err != err {
			t.Errorf("%s: %v (hook: %d, %v)", q, err, rec.done, rec.err)
		}
	}
}

func TestConfigErrors(t *testing.T) {
	e := testdb.SQLite(t)
	src := reconcile.SQLSource{}
	for _, c := range []reconcile.Config{
		{},
		{Consumer: "c", Settle: -1},
		{Consumer: "c", Duplicates: "SELECT 1"},
		{Consumer: "c", Hooks: []reconcile.Hook{42}},
		{Consumer: "c", PageSize: -1},
		{Consumer: "c", PageSize: reconcile.MaxPageSize + 1},
	} {
		if _, err := reconcile.New(e.Driver, src, c); !errors.Is(err, eos.ErrInvalidConfig) {
			t.Errorf("%+v: %v", c, err)
		}
	}
}
