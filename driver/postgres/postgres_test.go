package postgres_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/eoskit/eos"
	"github.com/eoskit/eos/driver"
	"github.com/eoskit/eos/driver/drivertest"
	"github.com/eoskit/eos/driver/postgres"
	"github.com/eoskit/eos/internal/testenv"
)

// newSchema returns a fresh schema name, dropped when t ends (after the
// connections registered later are closed).
func newSchema(t *testing.T) string {
	t.Helper()
	url, s := testenv.PostgresURL(t), testenv.Name("eos_t_")
	t.Cleanup(func() {
		ctx := context.Background()
		conn, err := pgx.Connect(ctx, url)
		if err != nil {
			t.Errorf("drop schema: %v", err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "DROP SCHEMA IF EXISTS "+s+" CASCADE"); err != nil {
			t.Errorf("drop schema: %v", err)
		}
	})
	return s
}

func newPool(t *testing.T) *pgxpool.Pool {
	t.Helper()
	pool, err := pgxpool.New(context.Background(), testenv.PostgresURL(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool
}

func newDB(t *testing.T) *sql.DB {
	t.Helper()
	db, err := sql.Open("pgx", testenv.PostgresURL(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// newPgx returns an unmigrated pgx driver on a fresh schema.
func newPgx(t *testing.T) (*postgres.Driver, string) {
	t.Helper()
	s := newSchema(t)
	d, err := postgres.New(newPool(t), postgres.Config{Schema: s})
	if err != nil {
		t.Fatal(err)
	}
	return d, s
}

// newStdlib returns an unmigrated database/sql driver on a fresh schema.
func newStdlib(t *testing.T) (*postgres.StdlibDriver, string) {
	t.Helper()
	s := newSchema(t)
	d, err := postgres.NewStdlib(newDB(t), postgres.Config{Schema: s})
	if err != nil {
		t.Fatal(err)
	}
	return d, s
}

// both runs a test on each driver, unmigrated, with its schema's name.
func both(t *testing.T, pgxTest func(*testing.T, driver.Driver[pgx.Tx], string), sqlTest func(*testing.T, driver.Driver[*sql.Tx], string)) {
	t.Run("pgx", func(t *testing.T) {
		d, s := newPgx(t)
		pgxTest(t, d, s)
	})
	t.Run("stdlib", func(t *testing.T) {
		d, s := newStdlib(t)
		sqlTest(t, d, s)
	})
}

// admin returns a connection for the test's own statements.
func admin(t *testing.T) *pgx.Conn {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, testenv.PostgresURL(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(ctx) })
	return conn
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func migrate[TTx any](t *testing.T, d driver.Driver[TTx]) {
	t.Helper()
	_, err := d.Migrator().Up(context.Background())
	must(t, err)
}

func inTx[TTx any](t *testing.T, d driver.Driver[TTx], fn func(ctx context.Context, ex driver.Executor) error) {
	t.Helper()
	ctx := context.Background()
	tx, err := d.Begin(ctx)
	must(t, err)
	defer d.Rollback(ctx, tx)
	must(t, fn(ctx, d.Executor(tx)))
	must(t, d.Commit(ctx, tx))
}

func TestConformance(t *testing.T) {
	t.Run("pgx", func(t *testing.T) {
		drivertest.Run(t, func(t *testing.T) driver.Driver[pgx.Tx] { d, _ := newPgx(t); return d })
	})
	t.Run("stdlib", func(t *testing.T) {
		drivertest.Run(t, func(t *testing.T) driver.Driver[*sql.Tx] { d, _ := newStdlib(t); return d })
	})
}

func TestInvalidConfig(t *testing.T) {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, "postgres://127.0.0.1:1/none") // connects lazily: never here
	must(t, err)
	defer pool.Close()
	db, err := sql.Open("pgx", "postgres://127.0.0.1:1/none")
	must(t, err)
	defer db.Close()
	for _, cfg := range []postgres.Config{
		{Prefix: "Eos_"},
		{Prefix: "eos-"},
		{Schema: "1schema"},
		{Schema: `s"; DROP TABLE x; --`},
		{NotifyChannel: "wake up"},
	} {
		_, err := postgres.New(pool, cfg)
		var ce *eos.ConfigError
		if !errors.As(err, &ce) || !errors.Is(err, eos.ErrInvalidConfig) {
			t.Errorf("New(%+v): %v, want *eos.ConfigError", cfg, err)
		}
		if _, err := postgres.NewStdlib(db, cfg); !errors.As(err, &ce) {
			t.Errorf("NewStdlib(%+v): %v, want *eos.ConfigError", cfg, err)
		}
	}
	if _, err := postgres.New(nil, postgres.Config{}); !errors.Is(err, eos.ErrInvalidConfig) {
		t.Errorf("New(nil): %v", err)
	}
	if _, err := postgres.NewStdlib(nil, postgres.Config{}); !errors.Is(err, eos.ErrInvalidConfig) {
		t.Errorf("NewStdlib(nil): %v", err)
	}
	if _, err := postgres.New(pool, postgres.Config{Schema: "ok_schema", Prefix: "ok_", NotifyChannel: "ok_channel"}); err != nil {
		t.Errorf("valid config: %v", err)
	}
}

func TestMigrations(t *testing.T) { both(t, testMigrations[pgx.Tx], testMigrations[*sql.Tx]) }

func testMigrations[TTx any](t *testing.T, d driver.Driver[TTx], schema string) {
	ctx := context.Background()
	conn := admin(t)
	tableExists := func() bool {
		var ok bool
		must(t, conn.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", schema+".eos_outbox").Scan(&ok))
		return ok
	}
	m := d.Migrator()
	known, err := m.Status(ctx)
	must(t, err)
	var all []int
	for _, st := range known {
		all = append(all, st.Version)
	}
	if len(all) == 0 || all[0] != 1 {
		t.Fatalf("known migrations: %+v", known)
	}
	reversed := slices.Clone(all)
	slices.Reverse(reversed)
	// Concurrent migrators (the schema does not exist yet) apply every
	// version exactly once between them.
	var mu sync.Mutex
	var applied []int
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			v, err := m.Up(ctx)
			if err != nil {
				t.Error(err)
			}
			mu.Lock()
			applied = append(applied, v...)
			mu.Unlock()
		})
	}
	wg.Wait()
	slices.Sort(applied)
	if !slices.Equal(applied, all) || !tableExists() {
		t.Fatalf("concurrent Up applied %v, want %v", applied, all)
	}
	st, err := m.Status(ctx)
	must(t, err)
	if len(st) != len(all) || st[0].Version != 1 || st[0].Name != "init" || !st[0].Applied || st[0].AppliedAt.IsZero() {
		t.Fatalf("status after Up: %+v", st)
	}
	down, err := m.Down(ctx, 0)
	must(t, err)
	if !slices.Equal(down, reversed) || tableExists() {
		t.Fatalf("Down reverted %v", down)
	}
	st, err = m.Status(ctx)
	must(t, err)
	if st[0].Applied {
		t.Fatalf("status after Down: %+v", st)
	}
	up, err := m.Up(ctx)
	must(t, err)
	if !slices.Equal(up, all) || !tableExists() {
		t.Fatalf("Up again applied %v", up)
	}
}

// TestSearchPath leaves Schema empty: the tables land in the search_path.
func TestSearchPath(t *testing.T) {
	ctx := context.Background()
	s := newSchema(t)
	conn := admin(t)
	_, err := conn.Exec(ctx, "CREATE SCHEMA "+s)
	must(t, err)
	cfg, err := pgxpool.ParseConfig(testenv.PostgresURL(t))
	must(t, err)
	cfg.ConnConfig.RuntimeParams["search_path"] = s
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	must(t, err)
	defer pool.Close()
	d, err := postgres.New(pool, postgres.Config{Prefix: "sp_"})
	must(t, err)
	migrate(t, d)
	inTx(t, d, func(ctx context.Context, ex driver.Executor) error {
		_, err := ex.InboxClaim(ctx, "c", time.Now(), []driver.Claim{{ID: "a", Fingerprint: []byte("f")}})
		return err
	})
	var n int
	must(t, conn.QueryRow(ctx, "SELECT count(*) FROM "+s+".sp_inbox").Scan(&n))
	if n != 1 {
		t.Fatalf("%d rows in %s.sp_inbox", n, s)
	}
}

func claims(ids ...string) []driver.Claim {
	out := make([]driver.Claim, len(ids))
	for i, id := range ids {
		out[i] = driver.Claim{ID: id, Fingerprint: []byte("fp-" + id)}
	}
	return out
}

func TestClaimInbox(t *testing.T) { both(t, testClaimInbox[pgx.Tx], testClaimInbox[*sql.Tx]) }

func testClaimInbox[TTx any](t *testing.T, d driver.Driver[TTx], _ string) {
	migrate(t, d)
	now := time.Now()
	inTx(t, d, func(ctx context.Context, ex driver.Executor) error {
		_, err := ex.InboxClaim(ctx, "c", now, claims("b", "d"))
		return err
	})
	inTx(t, d, func(ctx context.Context, ex driver.Executor) error {
		fresh, err := ex.InboxClaim(ctx, "c", now, claims("a", "b", "c", "d", "e"))
		if err != nil {
			return err
		}
		if want := []bool{true, false, true, false, true}; !slices.Equal(fresh, want) {
			t.Errorf("fresh = %v, want %v", fresh, want)
		}
		fps, err := ex.InboxFingerprints(ctx, "c", []string{"a", "d", "zz"})
		if err != nil {
			return err
		}
		if len(fps) != 2 || string(fps["a"]) != "fp-a" || string(fps["d"]) != "fp-d" {
			t.Errorf("fingerprints = %q", fps)
		}
		return nil
	})
}

func TestClaimInboxConcurrent(t *testing.T) {
	both(t, testClaimInboxConcurrent[pgx.Tx], testClaimInboxConcurrent[*sql.Tx])
}

func testClaimInboxConcurrent[TTx any](t *testing.T, d driver.Driver[TTx], _ string) {
	migrate(t, d)
	const workers, n = 8, 100
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("id-%03d", i)
	}
	var wins [n]atomic.Int32
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			// Each worker claims every id, in its own order.
			order := make([]string, n)
			index := make([]int, n)
			for i := range order {
				index[i] = (i*7 + w*13) % n
				order[i] = ids[index[i]]
			}
			ctx := context.Background()
			tx, err := d.Begin(ctx)
			if err != nil {
				t.Error(err)
				return
			}
			defer d.Rollback(ctx, tx)
			fresh, err := d.Executor(tx).InboxClaim(ctx, "c", time.Now(), claims(order...))
			if err == nil {
				err = d.Commit(ctx, tx)
			}
			if err != nil {
				t.Error(err)
				return
			}
			for i, f := range fresh {
				if f {
					wins[index[i]].Add(1)
				}
			}
		})
	}
	wg.Wait()
	for i := range wins {
		if got := wins[i].Load(); got != 1 {
			t.Errorf("%s fresh %d times", ids[i], got)
		}
	}
}

func TestOutboxRelays(t *testing.T) { both(t, testOutboxRelays[pgx.Tx], testOutboxRelays[*sql.Tx]) }

// testOutboxRelays drains 20 keys × 50 rows (and 50 rows without a key) with
// 4 concurrent relays that sometimes abort or send part of a batch, and
// checks that every row is sent once and each key in seq order.
func testOutboxRelays[TTx any](t *testing.T, d driver.Driver[TTx], _ string) {
	migrate(t, d)
	const keys, perKey, keyless, relays = 20, 50, 50, 4
	const total = keys*perKey + keyless
	now := time.Now()
	var rows []driver.OutboxRow
	for i := range total {
		key := ""
		if i < keys*perKey {
			key = fmt.Sprintf("k%02d", i%keys)
		}
		rows = append(rows, driver.OutboxRow{ID: fmt.Sprintf("m%04d", i), Topic: "t", Key: key, Payload: []byte{byte(i)}, CreatedAt: now, EnqueuedAt: now})
	}
	for chunk := range slices.Chunk(rows, 100) {
		inTx(t, d, func(ctx context.Context, ex driver.Executor) error { return ex.OutboxInsert(ctx, chunk) })
	}

	var mu sync.Mutex
	sent := map[string]int{}
	seqs := map[string][]int64{}
	var left atomic.Int64
	left.Store(total)
	var wg sync.WaitGroup
	for r := range relays {
		wg.Go(func() {
			ctx := context.Background()
			for i := 0; left.Load() > 0 && !t.Failed(); i++ {
				b, err := d.OutboxClaim(ctx, 7)
				if err != nil {
					t.Error(err)
					return
				}
				rows := b.Rows()
				if len(rows) == 0 || i%5 == 4 {
					if err := b.Abort(ctx); err != nil {
						t.Error(err)
						return
					}
					continue
				}
				n := len(rows)
				if i%3 == 2 {
					n = (n + 1) / 2
				}
				mu.Lock() // "publish"
				for _, row := range rows[:n] {
					sent[row.ID]++
					seqs[row.Key] = append(seqs[row.Key], row.Seq)
				}
				mu.Unlock()
				if err := b.Complete(ctx, driver.OutboxOutcome{Sent: driver.Seqs(rows[:n]), At: now, DeleteSent: r%2 == 0}); err != nil {
					t.Error(err)
					return
				}
				left.Add(-int64(n))
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	for _, row := range rows {
		if sent[row.ID] != 1 {
			t.Errorf("%s sent %d times", row.ID, sent[row.ID])
		}
	}
	for key, s := range seqs {
		for i := 1; i < len(s) && key != ""; i++ {
			if s[i] <= s[i-1] {
				t.Errorf("key %q published out of order: %v", key, s)
				break
			}
		}
	}
	inTx(t, d, func(ctx context.Context, ex driver.Executor) error {
		n, oldest, err := ex.OutboxStats(ctx)
		if n != 0 || !oldest.IsZero() {
			t.Errorf("after draining: %d unsent, oldest %v", n, oldest)
		}
		return err
	})
}

func TestOutboxRelaysHeldKeys(t *testing.T) {
	both(t, testOutboxRelaysHeldKeys[pgx.Tx], testOutboxRelaysHeldKeys[*sql.Tx])
}

// testOutboxRelaysHeldKeys: 10 keys take turns over 50 rows. While one
// relay holds the first 4 keys, a second takes the next 4 keys' heads (it
// passes the held keys' rows), and a third, with room for 30 rows, every
// row of the last 2 keys and nothing else, in order.
func testOutboxRelaysHeldKeys[TTx any](t *testing.T, d driver.Driver[TTx], _ string) {
	migrate(t, d)
	ctx := context.Background()
	now := time.Now()
	var rows []driver.OutboxRow
	for i := range 50 {
		rows = append(rows, driver.OutboxRow{ID: fmt.Sprintf("k%d-%d", i%10, i/10), Topic: "t", Key: fmt.Sprintf("k%d", i%10), CreatedAt: now, EnqueuedAt: now})
	}
	inTx(t, d, func(ctx context.Context, ex driver.Executor) error { return ex.OutboxInsert(ctx, rows) })
	var batches []driver.OutboxBatch
	defer func() {
		for _, b := range batches {
			b.Abort(ctx)
		}
	}()
	for _, c := range []struct {
		limit int
		want  string
	}{
		{4, "k0-0,k1-0,k2-0,k3-0"},
		{4, "k4-0,k5-0,k6-0,k7-0"},
		{30, "k8-0,k9-0,k8-1,k9-1,k8-2,k9-2,k8-3,k9-3,k8-4,k9-4"},
	} {
		b, err := d.OutboxClaim(ctx, c.limit)
		must(t, err)
		batches = append(batches, b)
		var ids []string
		for _, r := range b.Rows() {
			ids = append(ids, r.ID)
		}
		if got := strings.Join(ids, ","); got != c.want {
			t.Fatalf("claimed %s, want %s", got, c.want)
		}
	}
}

func TestOutboxBatchOutlivesContext(t *testing.T) {
	both(t, testOutboxBatchOutlivesContext[pgx.Tx], testOutboxBatchOutlivesContext[*sql.Tx])
}

// testOutboxBatchOutlivesContext: a batch lasts until Complete, whatever
// becomes of the context it was claimed with.
func testOutboxBatchOutlivesContext[TTx any](t *testing.T, d driver.Driver[TTx], _ string) {
	migrate(t, d)
	inTx(t, d, func(ctx context.Context, ex driver.Executor) error {
		return ex.OutboxInsert(ctx, []driver.OutboxRow{{ID: "m", Topic: "t", Key: "k", Headers: map[string]string{"h": "v"}, CreatedAt: time.Now(), EnqueuedAt: time.Now()}})
	})
	ctx, cancel := context.WithCancel(context.Background())
	b, err := d.OutboxClaim(ctx, 10)
	cancel()
	must(t, err)
	if rows := b.Rows(); len(rows) != 1 || rows[0].Headers["h"] != "v" || rows[0].Payload != nil {
		t.Fatalf("claimed %+v", rows)
	}
	must(t, b.Complete(context.Background(), driver.OutboxOutcome{Sent: driver.Seqs(b.Rows()), At: time.Now()}))
	inTx(t, d, func(ctx context.Context, ex driver.Executor) error {
		if n, _, err := ex.OutboxStats(ctx); n != 0 || err != nil {
			t.Errorf("unsent %d, %v", n, err)
		}
		return nil
	})
}

func TestOutboxParkedCommitOrder(t *testing.T) {
	both(t, testOutboxParkedCommitOrder[pgx.Tx], testOutboxParkedCommitOrder[*sql.Tx])
}

// testOutboxParkedCommitOrder: seq is taken at insert, so an earlier row of
// a key can commit after a later one was parked. It becomes the key's head;
// the rows claimed with it stop at the parked row.
func testOutboxParkedCommitOrder[TTx any](t *testing.T, d driver.Driver[TTx], _ string) {
	migrate(t, d)
	ctx := context.Background()
	now := time.Now()
	row := func(id string) driver.OutboxRow {
		return driver.OutboxRow{ID: id, Topic: "t", Key: "A", CreatedAt: now, EnqueuedAt: now}
	}
	early, err := d.Begin(ctx)
	must(t, err)
	defer d.Rollback(ctx, early)
	must(t, d.Executor(early).OutboxInsert(ctx, []driver.OutboxRow{row("early")}))
	inTx(t, d, func(ctx context.Context, ex driver.Executor) error {
		return ex.OutboxInsert(ctx, []driver.OutboxRow{row("late-1"), row("late-2")})
	})
	b, err := d.OutboxClaim(ctx, 10)
	must(t, err)
	if rows := b.Rows(); len(rows) != 2 || rows[0].ID != "late-1" {
		b.Abort(ctx)
		t.Fatalf("claimed %+v", rows)
	}
	must(t, b.Complete(ctx, driver.OutboxOutcome{Parked: []driver.OutboxParking{{Seq: b.Rows()[0].Seq, Error: "x"}}, At: now}))
	must(t, d.Commit(ctx, early))
	b, err = d.OutboxClaim(ctx, 10)
	must(t, err)
	defer b.Abort(ctx)
	if rows := b.Rows(); len(rows) != 1 || rows[0].ID != "early" {
		t.Fatalf("claimed %+v, want early only: late-2 waits behind the parked late-1", rows)
	}
}

func TestOutboxWakeup(t *testing.T) { both(t, testOutboxWakeup[pgx.Tx], testOutboxWakeup[*sql.Tx]) }

func testOutboxWakeup[TTx any](t *testing.T, d driver.Driver[TTx], schema string) {
	migrate(t, d)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second) // failure bound only
	defer cancel()
	wait := func(ch <-chan struct{}, what string) {
		t.Helper()
		select {
		case <-ch:
		case <-ctx.Done():
			t.Fatalf("no wakeup %s", what)
		}
	}
	enqueue := func(ctx context.Context, ex driver.Executor) error {
		return ex.OutboxInsert(ctx, []driver.OutboxRow{{ID: "m", Topic: "t", Key: "k", CreatedAt: time.Now(), EnqueuedAt: time.Now()}})
	}
	ch, stop, err := d.OutboxWakeup(ctx)
	must(t, err)
	defer stop()
	ch2, stop2, err := d.OutboxWakeup(ctx) // shares the listening connection
	must(t, err)

	// The test listens on the channel too. PostgreSQL delivers the
	// notifications of different transactions in commit order, so a probe
	// notified after the enqueue arrives after any notification the enqueue
	// sent outside its transaction: the probe must come first.
	channel := schema + ".eos_outbox"
	listener := admin(t)
	_, err = listener.Exec(ctx, `LISTEN "`+channel+`"`)
	must(t, err)
	next := func() string {
		t.Helper()
		n, err := listener.WaitForNotification(ctx)
		must(t, err)
		return n.Payload
	}

	tx, err := d.Begin(ctx)
	must(t, err)
	defer d.Rollback(ctx, tx)
	must(t, enqueue(ctx, d.Executor(tx)))
	// A wake within the process would be there already (the executor runs
	// nothing in the background).
	select {
	case <-ch:
		t.Fatal("woken in process before commit")
	default:
	}
	_, err = admin(t).Exec(ctx, "SELECT pg_notify($1, 'probe')", channel)
	must(t, err)
	if p := next(); p != "probe" {
		t.Fatalf("notification %q before the probe sent after the enqueue: the enqueue notified outside its transaction", p)
	}
	// The subscribers wake for the probe; drained, they wake again only
	// for the commit.
	wait(ch, "for the probe")
	wait(ch2, "for the probe")
	must(t, d.Commit(ctx, tx))
	if p := next(); p != "" {
		t.Fatalf("notification %q after commit, want the outbox's", p)
	}
	wait(ch, "after commit")
	wait(ch2, "for the second subscriber")
	stop2()

	// Kill the listening backend: the driver reconnects and wakes once.
	var killed int
	must(t, admin(t).QueryRow(ctx, "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE query = $1 AND pid <> $2",
		`LISTEN "`+channel+`"`, listener.PgConn().PID()).Scan(&killed))
	if killed != 1 {
		t.Fatalf("%d listening backends, want 1", killed)
	}
	wait(ch, "after reconnecting")
	inTx(t, d, enqueue)
	wait(ch, "after commit on the new connection")
}

// TestUpIsOneTransaction: Up applies every pending migration in one
// transaction, so a migration that fails leaves none of those before it
// applied. The failure is real: a table named like the index migration
// 0003 creates (an index and a table share a namespace).
func TestUpIsOneTransaction(t *testing.T) {
	both(t, testUpIsOneTransaction[pgx.Tx], testUpIsOneTransaction[*sql.Tx])
}

func testUpIsOneTransaction[TTx any](t *testing.T, d driver.Driver[TTx], schema string) {
	ctx := context.Background()
	conn := admin(t)
	_, err := conn.Exec(ctx, "CREATE SCHEMA "+schema+"; CREATE TABLE "+schema+".eos_outbox_parked (x int)")
	must(t, err)
	m := d.Migrator()
	if v, err := m.Up(ctx); err == nil || !strings.Contains(err.Error(), "0003_outbox_parked") {
		t.Fatalf("Up = %v, %v; want migration 0003 to fail", v, err)
	}
	st, err := m.Status(ctx)
	must(t, err)
	for _, s := range st {
		if s.Applied {
			t.Errorf("migration %04d_%s applied by an Up that failed", s.Version, s.Name)
		}
	}
	var inbox bool
	must(t, conn.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", schema+".eos_inbox").Scan(&inbox))
	if inbox {
		t.Error("migration 0001's table exists after an Up that failed")
	}
	_, err = conn.Exec(ctx, "DROP TABLE "+schema+".eos_outbox_parked")
	must(t, err)
	if v, err := m.Up(ctx); err != nil || len(v) != len(st) {
		t.Fatalf("Up after the fix applied %v, %v; want all %d", v, err, len(st))
	}
}

// TestMigrationsForOwnTool applies the rendered scripts by hand, as goose
// or atlas would, in a schema of their own, and finds the tables, columns
// and indexes Migrator makes in another, less its own record; the down
// scripts, newest first, leave nothing.
func TestMigrationsForOwnTool(t *testing.T) {
	ctx := context.Background()
	conn := admin(t)
	byHand, byMigrator := newSchema(t), newSchema(t)
	migs, err := postgres.Migrations(postgres.Config{Schema: byHand, Prefix: "app_"})
	must(t, err)
	run := func(script string) {
		t.Helper()
		tx, err := conn.Begin(ctx)
		must(t, err)
		defer tx.Rollback(ctx)
		if _, err := tx.Exec(ctx, script); err != nil {
			t.Fatalf("%s: %v", script, err)
		}
		must(t, tx.Commit(ctx))
	}
	run("CREATE SCHEMA " + byHand) // the scripts expect it
	for i, m := range migs {
		if m.Version != i+1 || m.Name == "" || !strings.Contains(m.Up, byHand+".app_") || strings.Contains(m.Up, "{{") {
			t.Fatalf("migration %d: %+v", i, m)
		}
		run(m.Up)
	}
	d, err := postgres.New(newPool(t), postgres.Config{Schema: byMigrator, Prefix: "app_"})
	must(t, err)
	applied, err := d.Migrator().Up(ctx)
	if err != nil || len(applied) != len(migs) {
		t.Fatalf("Migrator applied %v, %v; Migrations returned %d", applied, err, len(migs))
	}
	shape := func(schema string) []string {
		t.Helper()
		rows, err := conn.Query(ctx, `
SELECT table_name || '.' || column_name || ' ' || data_type || ' ' || is_nullable || ' ' || is_identity || ' ' || coalesce(column_default, '')
  FROM information_schema.columns WHERE table_schema = $1 AND table_name <> 'app_migrations'
UNION ALL
SELECT indexname || ' ' || replace(indexdef, $1 || '.', '')
  FROM pg_indexes WHERE schemaname = $1 AND tablename <> 'app_migrations'
ORDER BY 1`, schema)
		must(t, err)
		out, err := pgx.CollectRows(rows, pgx.RowTo[string])
		must(t, err)
		return out
	}
	if got, want := shape(byHand), shape(byMigrator); len(want) == 0 || !slices.Equal(got, want) {
		t.Errorf("by hand:\n%s\nby Migrator:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	for i := len(migs) - 1; i >= 0; i-- {
		run(migs[i].Down)
	}
	if left := shape(byHand); len(left) != 0 {
		t.Errorf("left after the down scripts: %v", left)
	}

	if _, err := postgres.Migrations(postgres.Config{Schema: "Bad-Schema"}); !errors.Is(err, eos.ErrInvalidConfig) {
		t.Errorf("Migrations with an invalid schema: %v, want a ConfigError", err)
	}
}

func TestStatements(t *testing.T) {
	// newCounting returns a pool on a fresh schema whose connections count
	// the statements they send.
	newCounting := func(t *testing.T) (*pgxpool.Pool, string, drivertest.Statements) {
		cfg, err := pgxpool.ParseConfig(testenv.PostgresURL(t))
		must(t, err)
		tr := &countingTracer{}
		cfg.ConnConfig.Tracer = tr
		pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
		must(t, err)
		t.Cleanup(pool.Close)
		return pool, newSchema(t), tr.n.Load
	}
	t.Run("pgx", func(t *testing.T) {
		drivertest.RunStatements(t, func(t *testing.T) (driver.Driver[pgx.Tx], drivertest.Statements) {
			pool, s, count := newCounting(t)
			d, err := postgres.New(pool, postgres.Config{Schema: s})
			must(t, err)
			return d, count
		})
	})
	t.Run("stdlib", func(t *testing.T) {
		drivertest.RunStatements(t, func(t *testing.T) (driver.Driver[*sql.Tx], drivertest.Statements) {
			pool, s, count := newCounting(t)
			db := stdlib.OpenDBFromPool(pool)
			t.Cleanup(func() { db.Close() })
			d, err := postgres.NewStdlib(db, postgres.Config{Schema: s})
			must(t, err)
			return d, count
		})
	})
}

// countingTracer counts the statements and batches a connection sends.
type countingTracer struct{ n atomic.Int64 }

func (c *countingTracer) TraceQueryStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceQueryStartData) context.Context {
	c.n.Add(1)
	return ctx
}

func (c *countingTracer) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

func (c *countingTracer) TraceBatchStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceBatchStartData) context.Context {
	c.n.Add(1)
	return ctx
}

func (c *countingTracer) TraceBatchQuery(context.Context, *pgx.Conn, pgx.TraceBatchQueryData) {}

func (c *countingTracer) TraceBatchEnd(context.Context, *pgx.Conn, pgx.TraceBatchEndData) {}
