package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"math"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/eoskit/eos"
	"github.com/eoskit/eos/driver"
	"github.com/eoskit/eos/internal/schema"
	"github.com/eoskit/eos/internal/wake"

	_ "modernc.org/sqlite" // registers database/sql driver "sqlite"
)

//go:embed migrations/*.sql
var migrationFS embed.FS

// Synchronous is SQLite's synchronous setting.
type Synchronous string

const (
	// SyncFull makes every commit durable across power loss. The default.
	SyncFull Synchronous = "FULL"
	// SyncNormal syncs only at checkpoints; see the package documentation
	// for its loss window.
	SyncNormal Synchronous = "NORMAL"
)

// Config configures a Driver. The zero value is valid; defaults are applied
// by [Open].
type Config struct {
	// Prefix is prepended to every table name. Default "eos_". Must match
	// ^[a-z_][a-z0-9_]{0,39}$.
	Prefix string
	// Synchronous is the durability setting. Default SyncFull.
	Synchronous Synchronous
	// BusyTimeout is how long a connection waits for a lock held by another
	// process. Default 5s; SQLite counts it in whole milliseconds, from 1ms
	// up to 2^31-1 ms.
	BusyTimeout time.Duration
	// CacheSize is SQLite's page cache in KiB. Default 65536 (64 MiB): the
	// dedupe records grow the database, and a cache too small for the hot
	// pages turns every statement into file reads.
	CacheSize int
	// WriterLock, if set, is the path of a lock file (created if missing)
	// on which the processes that write to this database take turns: each
	// transaction begun with [Driver.Begin] holds an exclusive flock(2) on
	// it until [Driver.Commit] or [Driver.Rollback] ends it. Empty (the
	// default): no such lock.
	//
	// Without it, processes writing to one file at once wait for each other
	// in SQLite's busy handler, which polls with sleeps growing to 100 ms,
	// so the write lock is often free while every waiter sleeps. With it
	// they queue in the kernel and the next starts as soon as the last
	// commits: a fair queue, which cuts the tail of the wait (figures, and
	// BenchmarkWriterLock to reproduce them, in docs/ARCHITECTURE.md).
	//
	// Every process must name the same file. Writes through [Driver.DB] and
	// migrations do not take it; they wait in the busy handler as before.
	// Begin waits for its turn even if its ctx ends meanwhile (a turn lasts
	// one transaction), and a transaction from Begin must end with the
	// Driver's Commit or Rollback, not the *sql.Tx's own, or its turn is
	// never given up.
	// Where flock(2) is missing it orders this process's transactions only.
	WriterLock string
}

// Defaults of [Config].
const (
	DefaultPrefix      = "eos_"
	DefaultSynchronous = SyncFull
	DefaultBusyTimeout = 5 * time.Second
	DefaultCacheSize   = 64 << 10 // KiB
)

// WithDefaults returns a copy of c with the defaults applied, or a
// *eos.ConfigError naming the first invalid field.
func (c Config) WithDefaults() (Config, error) {
	err := c.applyDefaults()
	return c, err
}

func (c *Config) applyDefaults() error {
	if c.Prefix == "" {
		c.Prefix = DefaultPrefix
	}
	if err := schema.CheckPrefix("sqlite.Config.Prefix", c.Prefix); err != nil {
		return err
	}
	if c.Synchronous == "" {
		c.Synchronous = DefaultSynchronous
	}
	if c.Synchronous != SyncFull && c.Synchronous != SyncNormal {
		return &eos.ConfigError{Field: "sqlite.Config.Synchronous", Reason: fmt.Sprintf("must be FULL or NORMAL, got %q", c.Synchronous)}
	}
	if c.BusyTimeout == 0 {
		c.BusyTimeout = DefaultBusyTimeout
	}
	if c.BusyTimeout < 0 {
		return &eos.ConfigError{Field: "sqlite.Config.BusyTimeout", Reason: "negative"}
	}
	// SQLite counts it in whole milliseconds, in a 32-bit int.
	if c.BusyTimeout < time.Millisecond || c.BusyTimeout.Milliseconds() > math.MaxInt32 {
		return &eos.ConfigError{Field: "sqlite.Config.BusyTimeout", Reason: fmt.Sprintf("%s is outside 1ms to %d ms", c.BusyTimeout, math.MaxInt32)}
	}
	if c.CacheSize == 0 {
		c.CacheSize = DefaultCacheSize
	}
	if c.CacheSize < 0 || c.CacheSize > math.MaxInt32 {
		return &eos.ConfigError{Field: "sqlite.Config.CacheSize", Reason: fmt.Sprintf("%d is outside 0 to %d KiB", c.CacheSize, math.MaxInt32)}
	}
	return nil
}

// Driver is the SQLite implementation of driver.Driver[*sql.Tx].
type Driver struct {
	db    *sql.DB
	cfg   Config
	t     tables
	wake  wake.Signal
	relay sync.Mutex // one outbox batch at a time
	// wl is the writer lock (nil: Config.WriterLock is empty); turn is the
	// one transaction of this process that holds it, so that a Rollback
	// after a Commit gives it up once.
	wl   *writerLock
	turn atomic.Pointer[sql.Tx]
	mig  *schema.Runner
	// claimMany claims a batch given as one JSON parameter, claimOne a
	// single message; both are prepared once the schema exists (parsing
	// them costs more than running them).
	claimMany, claimOne prepared
}

// prepared is a statement prepared on the writer connection when it can be.
type prepared struct {
	sql  string
	stmt atomic.Pointer[sql.Stmt]
}

// prepare prepares the statement. It runs outside any transaction of this
// goroutine (a statement can only be prepared while the single connection
// is free); before the schema is migrated it fails, and exec runs the
// statement unprepared.
func (p *prepared) prepare(ctx context.Context, db *sql.DB) {
	if p.stmt.Load() != nil {
		return
	}
	st, err := db.PrepareContext(ctx, p.sql)
	if err != nil {
		return
	}
	if !p.stmt.CompareAndSwap(nil, st) {
		st.Close()
	}
}

func (p *prepared) exec(ctx context.Context, tx *sql.Tx, args ...any) (sql.Result, error) {
	if st := p.stmt.Load(); st != nil {
		txst := tx.StmtContext(ctx, st)
		defer txst.Close()
		return txst.ExecContext(ctx, args...)
	}
	return tx.ExecContext(ctx, p.sql, args...)
}

func (p *prepared) close() {
	if st := p.stmt.Swap(nil); st != nil {
		st.Close()
	}
}

var _ driver.Driver[*sql.Tx] = (*Driver)(nil)

type tables struct {
	inbox, failures, quarantine, deadLetters, outbox, dedupe, offsets, migrations string
}

// Open opens (creating if needed) the database file at path and checks that
// every setting of cfg took. It does not migrate: call Migrator().Up.
//
// A database file Open creates is readable by its owner only; SQLite gives
// the -wal and -shm files it creates beside it the same mode.
func Open(ctx context.Context, path string, cfg Config) (*Driver, error) {
	return open(ctx, path, cfg, func(dsn string) (*sql.DB, error) { return sql.Open("sqlite", dsn) })
}

// open is Open with the *sql.DB made by openDB from the connection string.
func open(ctx context.Context, path string, cfg Config, openDB func(dsn string) (*sql.DB, error)) (*Driver, error) {
	cfg, err := cfg.WithDefaults()
	if err != nil {
		return nil, err
	}
	switch path {
	case "":
		return nil, &eos.ConfigError{Field: "sqlite.Open path", Reason: "empty"}
	case ":memory:":
		return nil, &eos.ConfigError{Field: "sqlite.Open path", Reason: `":memory:" is an in-memory database; eos needs a file (the claims must outlive the process)`}
	}
	if err := createPrivate(path); err != nil {
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	pragmas := cfg.pragmas()
	db, err := openDB(connString(path, pragmas))
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(1)
	db.SetMaxIdleConns(1)
	db.SetConnMaxLifetime(0)
	db.SetConnMaxIdleTime(0)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	if err := checkPragmas(ctx, db, path, pragmas); err != nil {
		db.Close()
		return nil, err
	}
	var wl *writerLock
	if cfg.WriterLock != "" {
		if wl, err = openWriterLock(cfg.WriterLock); err != nil {
			db.Close()
			return nil, err
		}
	}
	p := cfg.Prefix
	d := &Driver{db: db, cfg: cfg, wl: wl, t: tables{
		inbox: p + "inbox", failures: p + "inbox_failures", quarantine: p + "inbox_quarantine",
		deadLetters: p + "dead_letters", outbox: p + "outbox", dedupe: p + "dedupe", offsets: p + "offsets", migrations: p + "migrations",
	}}
	migs, err := migrations(cfg)
	if err != nil {
		d.Close()
		return nil, err
	}
	insert := "INSERT INTO " + d.t.inbox + " (consumer, id, fingerprint, claimed_at) "
	d.claimMany.sql = insert + fmt.Sprintf("SELECT ?1, substr(j.value, %d), unhex(substr(j.value, 1, %d)), ?2 FROM json_each(?3) AS j WHERE true ",
		2*eos.FingerprintSize+1, 2*eos.FingerprintSize) + "ON CONFLICT (consumer, id) DO NOTHING"
	d.claimOne.sql = insert + "VALUES (?1, ?3, ?4, ?2) ON CONFLICT (consumer, id) DO NOTHING"
	d.mig = &schema.Runner{Conn: migConn{db}, Table: d.t.migrations, Migrations: migs}
	return d, nil
}

// Migrations returns the driver's migrations rendered for cfg (its
// Prefix), in version order, for teams that apply migrations with a tool
// of their own (goose, atlas) instead of Migrator. Run each script in one
// transaction. Use one or the other on a database: Migrator records what it
// applied in the <prefix>migrations table, which such a tool neither reads
// nor writes.
func Migrations(cfg Config) ([]driver.Migration, error) {
	cfg, err := cfg.WithDefaults()
	if err != nil {
		return nil, err
	}
	return migrations(cfg)
}

// migrations renders the embedded migrations for cfg, defaults applied.
func migrations(cfg Config) ([]driver.Migration, error) {
	return schema.Load(migrationFS, "migrations", struct{ P string }{cfg.Prefix})
}

// createPrivate creates the database file with mode 0600 unless it exists.
// SQLite would create it 0644 (less the umask), and the -wal and -shm files
// take the database file's mode.
func createPrivate(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	return f.Close()
}

// pragma is a setting that every connection gets from its connection
// string and that Open reads back.
type pragma struct {
	name string // e.g. "journal_mode"
	set  string // the argument in the connection string
	want string // what "PRAGMA name" answers once it took
}

// pragmas are the settings of cfg in the order a connection applies them:
// busy_timeout first, so that a process turning a new file to WAL waits for
// another doing the same instead of failing with SQLITE_BUSY.
func (c Config) pragmas() []pragma {
	ms := strconv.FormatInt(c.BusyTimeout.Milliseconds(), 10)
	cache := strconv.Itoa(-c.CacheSize)
	return []pragma{
		{"busy_timeout", ms, ms},
		{"journal_mode", "WAL", "wal"},
		{"synchronous", string(c.Synchronous), c.Synchronous.level()},
		{"foreign_keys", "1", "1"},
		{"cache_size", cache, cache},
	}
}

// level is the number PRAGMA synchronous answers for s.
func (s Synchronous) level() string {
	switch s {
	case SyncFull:
		return "2"
	case SyncNormal:
		return "1"
	}
	return ""
}

// connString is the connection string that opens path with the pragmas.
// SQLite reads it as a URI, so the path is percent-encoded: a '?' in it
// would begin the query (dropping the first pragma), a '#' a fragment, a
// '%' an escape, and a leading "//" an authority.
func connString(path string, pragmas []pragma) string {
	var b strings.Builder
	b.WriteString("file:")
	if strings.HasPrefix(path, "/") {
		b.WriteString("//") // an empty authority, then the absolute path
	}
	for i := range len(path) {
		c := path[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("-._~/", c) >= 0 {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	q := url.Values{}
	for _, p := range pragmas {
		q.Add("_pragma", p.name+"("+p.set+")")
	}
	q.Set("_txlock", "immediate")
	return b.String() + "?" + q.Encode()
}

// ErrPragma is wrapped by every [PragmaError].
var ErrPragma = errors.New("sqlite: setting did not take")

// PragmaError reports a setting that Open asked for and the connection does
// not have. SQLite does not fail such a setting (PRAGMA journal_mode answers
// the mode it kept), so Open reads every one back rather than run with
// weaker durability than the Config says.
type PragmaError struct {
	Path      string // the database file
	Pragma    string // e.g. "journal_mode"
	Want, Got string // as "PRAGMA name" answers
}

func (e *PragmaError) Error() string {
	return fmt.Sprintf("sqlite: open %s: PRAGMA %s is %q, want %q", e.Path, e.Pragma, e.Got, e.Want)
}

func (e *PragmaError) Unwrap() error { return ErrPragma }

// checkPragmas reads the pragmas back on db's connection; each one that did
// not take is a *PragmaError in the joined error.
func checkPragmas(ctx context.Context, db *sql.DB, path string, pragmas []pragma) error {
	var errs []error
	for _, p := range pragmas {
		var got string
		if err := db.QueryRowContext(ctx, "PRAGMA "+p.name).Scan(&got); err != nil {
			return fmt.Errorf("sqlite: open %s: read PRAGMA %s: %w", path, p.name, err)
		}
		if got != p.want {
			errs = append(errs, &PragmaError{Path: path, Pragma: p.name, Want: p.want, Got: got})
		}
	}
	return errors.Join(errs...)
}

// DB returns the writer *sql.DB (one connection). Use it for reads and
// writes outside eos; a long read here delays every writer.
func (d *Driver) DB() *sql.DB { return d.db }

// Close closes the database.
func (d *Driver) Close() error {
	d.claimMany.close()
	d.claimOne.close()
	err := d.db.Close()
	if d.wl != nil {
		err = errors.Join(err, d.wl.close())
	}
	return err
}

func (d *Driver) Name() string { return "sqlite" }

func (d *Driver) Begin(ctx context.Context) (*sql.Tx, error) {
	if d.claimOne.stmt.Load() == nil || d.claimMany.stmt.Load() == nil {
		d.claimOne.prepare(ctx, d.db)
		d.claimMany.prepare(ctx, d.db)
	}
	if d.wl == nil {
		return d.db.BeginTx(ctx, nil)
	}
	if err := d.wl.lock(); err != nil {
		return nil, err
	}
	tx, err := d.db.BeginTx(ctx, nil)
	if err != nil {
		d.wl.unlock()
		return nil, err
	}
	d.turn.Store(tx)
	return tx, nil
}

// Commit commits tx and, with a WriterLock, gives up its turn.
func (d *Driver) Commit(_ context.Context, tx *sql.Tx) error {
	defer d.release(tx)
	return tx.Commit()
}

// Rollback rolls tx back (after a Commit it does nothing) and, with a
// WriterLock, gives up its turn.
func (d *Driver) Rollback(_ context.Context, tx *sql.Tx) error {
	defer d.release(tx)
	if err := tx.Rollback(); err != nil && !errors.Is(err, sql.ErrTxDone) {
		return err
	}
	return nil
}

// release gives up the writer lock if tx holds it.
func (d *Driver) release(tx *sql.Tx) {
	if d.wl != nil && d.turn.CompareAndSwap(tx, nil) {
		d.wl.unlock()
	}
}

func (d *Driver) Executor(tx *sql.Tx) driver.Executor { return &executor{d: d, tx: tx} }

func (d *Driver) Migrator() driver.Migrator { return d.mig }

// OutboxWakeup is fed by OutboxInsert in this process. The relay's next
// claim waits for the writer connection, so it runs only once the enqueuing
// transaction has ended.
func (d *Driver) OutboxWakeup(context.Context) (<-chan struct{}, func(), error) {
	ch, stop := d.wake.Subscribe()
	return ch, stop, nil
}

type migConn struct{ db *sql.DB }

func (m migConn) MigrationTx(ctx context.Context, fn func(context.Context, schema.Tx) error) error {
	tx, err := m.db.BeginTx(ctx, nil) // BEGIN IMMEDIATE: the write lock is the migration lock
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if err := fn(ctx, sqlMigTx{tx}); err != nil {
		return err
	}
	return tx.Commit()
}

type sqlMigTx struct{ tx *sql.Tx }

func (t sqlMigTx) Exec(ctx context.Context, script string) error {
	_, err := t.tx.ExecContext(ctx, script)
	return err
}

func (t sqlMigTx) QueryVersions(ctx context.Context, q string) ([]schema.VersionRow, error) {
	rows, err := t.tx.QueryContext(ctx, q)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []schema.VersionRow
	for rows.Next() {
		var r schema.VersionRow
		if err := rows.Scan(&r.Version, &r.AppliedAt); err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

func micros(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMicro()
}

func fromMicros(v int64) time.Time {
	if v == 0 {
		return time.Time{}
	}
	return time.UnixMicro(v).UTC()
}
