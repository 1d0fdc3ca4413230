package postgres

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"hash/fnv"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/eoskit/eos"
	"github.com/eoskit/eos/driver"
	"github.com/eoskit/eos/internal/schema"
)

//go:embed migrations/*.sql
var migrationFS embed.FS

// Config configures a driver. The zero value is valid; defaults are applied
// by [New] and [NewStdlib].
type Config struct {
	// Schema holds eos's tables. Default "": the connection's search_path.
	// Must be empty or match ^[a-z_][a-z0-9_]{0,39}$. Migrations create it
	// when it does not exist.
	Schema string
	// Prefix is prepended to every table name. Default "eos_". Must match
	// ^[a-z_][a-z0-9_]{0,39}$.
	Prefix string
	// NotifyChannel is the LISTEN/NOTIFY channel that wakes relays. Default:
	// the qualified outbox table name, e.g. "eos_outbox" or
	// "myschema.eos_outbox" (hashed down to 63 bytes when longer). If set,
	// it must match ^[a-z_][a-z0-9_]{0,39}$.
	NotifyChannel string
}

// DefaultPrefix is the default of Config.Prefix.
const DefaultPrefix = "eos_"

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
	if err := schema.CheckPrefix("postgres.Config.Prefix", c.Prefix); err != nil {
		return err
	}
	if err := schema.CheckSchema("postgres.Config.Schema", c.Schema); err != nil {
		return err
	}
	if c.NotifyChannel != "" {
		return schema.CheckPrefix("postgres.Config.NotifyChannel", c.NotifyChannel)
	}
	c.NotifyChannel = c.qualify("outbox")
	if len(c.NotifyChannel) > maxIdent {
		c.NotifyChannel = fmt.Sprintf("%s_%016x", c.NotifyChannel[:maxIdent-17], hash(c.NotifyChannel))
	}
	return nil
}

// qualify returns the table name for name: [schema.]prefix+name.
func (c *Config) qualify(name string) string {
	if c.Schema == "" {
		return c.Prefix + name
	}
	return c.Schema + "." + c.Prefix + name
}

// maxIdent is PostgreSQL's identifier length limit (NAMEDATALEN-1), which
// also bounds channel names.
const maxIdent = 63

func hash(s string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(s))
	return h.Sum64()
}

type tables struct {
	inbox, failures, quarantine, deadLetters, outbox, dedupe, offsets, migrations string
}

// core is what the two drivers share: every statement runs through a [tx].
type core struct {
	cfg     Config
	t       tables
	lockKey int64 // migration advisory lock
	mig     *schema.Runner
	begin   func(context.Context) (tx, error)
	dial    func(context.Context) (*pgx.Conn, error) // a dedicated connection for LISTEN
	listen  listener
}

func newCore(cfg Config, begin func(context.Context) (tx, error), dial func(context.Context) (*pgx.Conn, error)) (*core, error) {
	c := &core{cfg: cfg, begin: begin, dial: dial, t: tables{
		inbox: cfg.qualify("inbox"), failures: cfg.qualify("inbox_failures"), quarantine: cfg.qualify("inbox_quarantine"),
		deadLetters: cfg.qualify("dead_letters"), outbox: cfg.qualify("outbox"), dedupe: cfg.qualify("dedupe"), offsets: cfg.qualify("offsets"),
		migrations: cfg.qualify("migrations"),
	}}
	c.lockKey = int64(hash(c.t.migrations))
	migs, err := migrations(cfg)
	if err != nil {
		return nil, err
	}
	c.mig = &schema.Runner{Conn: migConn{c}, Table: c.t.migrations, Migrations: migs}
	return c, nil
}

// Migrations returns the driver's migrations rendered for cfg (its Schema
// and Prefix), in version order, for teams that apply migrations with a
// tool of their own (goose, atlas) instead of Migrator. Run each script in
// one transaction. The scripts expect Config.Schema to exist (Migrator
// creates it; a tool of your own must). Use one or the other on a
// database: Migrator records what it applied in the <prefix>migrations
// table, which such a tool neither reads nor writes.
func Migrations(cfg Config) ([]driver.Migration, error) {
	cfg, err := cfg.WithDefaults()
	if err != nil {
		return nil, err
	}
	return migrations(cfg)
}

// migrations renders the embedded migrations for cfg, defaults applied.
func migrations(cfg Config) ([]driver.Migration, error) {
	var s string
	if cfg.Schema != "" {
		s = cfg.Schema + "."
	}
	return schema.Load(migrationFS, "migrations", struct{ S, P string }{s, cfg.Prefix})
}

func (c *core) Name() string { return "postgres" }

func (c *core) Migrator() driver.Migrator { return c.mig }

// migConn is the driver's schema.Conn.
type migConn struct{ c *core }

// MigrationTx runs fn under a transaction-scoped advisory lock, in a schema
// that exists.
func (m migConn) MigrationTx(ctx context.Context, fn func(context.Context, schema.Tx) error) error {
	c := m.c
	tx, err := c.begin(ctx)
	if err != nil {
		return err
	}
	defer tx.rollback(ctx)
	if _, err := tx.exec(ctx, "SELECT pg_advisory_xact_lock($1)", c.lockKey); err != nil {
		return fmt.Errorf("postgres: migration lock: %w", err)
	}
	if c.cfg.Schema != "" {
		if _, err := tx.exec(ctx, "CREATE SCHEMA IF NOT EXISTS "+c.cfg.Schema); err != nil {
			return fmt.Errorf("postgres: create schema: %w", err)
		}
	}
	if err := fn(ctx, migTx{tx}); err != nil {
		return err
	}
	return tx.commit(ctx)
}

type migTx struct{ tx tx }

func (m migTx) Exec(ctx context.Context, script string) error {
	_, err := m.tx.exec(ctx, script)
	return err
}

func (m migTx) QueryVersions(ctx context.Context, q string) ([]schema.VersionRow, error) {
	var out []schema.VersionRow
	err := m.tx.query(ctx, q, nil, func(scan scanFunc) error {
		var r schema.VersionRow
		if err := scan(&r.Version, &r.AppliedAt); err != nil {
			return err
		}
		out = append(out, r)
		return nil
	})
	return out, err
}

// Driver is the PostgreSQL implementation of driver.Driver[pgx.Tx] over a
// pgxpool.Pool.
type Driver struct {
	*core
	pool *pgxpool.Pool
}

var _ driver.Driver[pgx.Tx] = (*Driver)(nil)

// New returns a driver on pool. It does not migrate: call Migrator().Up. The
// pool stays the caller's to close.
func New(pool *pgxpool.Pool, cfg Config) (*Driver, error) {
	if pool == nil {
		return nil, &eos.ConfigError{Field: "postgres.New pool", Reason: "nil"}
	}
	cfg, err := cfg.WithDefaults()
	if err != nil {
		return nil, err
	}
	begin := func(ctx context.Context) (tx, error) {
		t, err := beginPgx(ctx, pool)
		if err != nil {
			return nil, err
		}
		return pgxTx{t}, nil
	}
	dial := func(ctx context.Context) (*pgx.Conn, error) {
		pc, err := pool.Acquire(ctx)
		if err != nil {
			return nil, err
		}
		return pc.Hijack(), nil
	}
	c, err := newCore(cfg, begin, dial)
	if err != nil {
		return nil, err
	}
	return &Driver{core: c, pool: pool}, nil
}

func (d *Driver) Begin(ctx context.Context) (pgx.Tx, error) { return beginPgx(ctx, d.pool) }

// beginPgx begins a transaction on a connection of pool that carries
// eos's text as it is (see checkEncoding).
func beginPgx(ctx context.Context, pool *pgxpool.Pool) (pgx.Tx, error) {
	t, err := pool.Begin(ctx)
	if err != nil {
		return nil, err
	}
	if err := checkEncoding(t.Conn().PgConn()); err != nil {
		t.Rollback(ctx)
		return nil, err
	}
	return t, nil
}

func (d *Driver) Commit(ctx context.Context, tx pgx.Tx) error { return tx.Commit(ctx) }

func (d *Driver) Rollback(ctx context.Context, tx pgx.Tx) error { return pgxTx{tx}.rollback(ctx) }

func (d *Driver) Executor(tx pgx.Tx) driver.Executor { return &executor{c: d.core, q: pgxTx{tx}} }

// StdlibDriver is the PostgreSQL implementation of driver.Driver[*sql.Tx]
// over a *sql.DB opened with the pgx stdlib driver.
type StdlibDriver struct {
	*core
	db *sql.DB
}

var _ driver.Driver[*sql.Tx] = (*StdlibDriver)(nil)

// NewStdlib returns a driver on db, which must come from the pgx stdlib
// driver (sql.Open("pgx", …), stdlib.OpenDB or stdlib.OpenDBFromPool). It
// does not migrate: call Migrator().Up. db stays the caller's to close.
func NewStdlib(db *sql.DB, cfg Config) (*StdlibDriver, error) {
	if db == nil {
		return nil, &eos.ConfigError{Field: "postgres.NewStdlib db", Reason: "nil"}
	}
	if _, ok := db.Driver().(*stdlib.Driver); !ok {
		return nil, &eos.ConfigError{Field: "postgres.NewStdlib db", Reason: fmt.Sprintf("not opened with the pgx stdlib driver (got %T)", db.Driver())}
	}
	cfg, err := cfg.WithDefaults()
	if err != nil {
		return nil, err
	}
	// database/sql would roll a transaction back when its ctx ends, but an
	// outbox batch outlives OutboxClaim's ctx (as it does with pgx): take the
	// connection with ctx, and begin without it.
	begin := func(ctx context.Context) (tx, error) {
		conn, err := checkedConn(ctx, db)
		if err != nil {
			return nil, err
		}
		t, err := conn.BeginTx(context.WithoutCancel(ctx), nil)
		if err != nil {
			conn.Close()
			return nil, err
		}
		return sqlTx{t, conn}, nil
	}
	c, err := newCore(cfg, begin, func(ctx context.Context) (*pgx.Conn, error) { return dialStdlib(ctx, db) })
	if err != nil {
		return nil, err
	}
	return &StdlibDriver{core: c, db: db}, nil
}

// dialStdlib opens a connection outside db's pool with the configuration of
// one of db's connections (as its BeforeConnect hook last left it).
func dialStdlib(ctx context.Context, db *sql.DB) (*pgx.Conn, error) {
	sc, err := db.Conn(ctx)
	if err != nil {
		return nil, err
	}
	var cfg *pgx.ConnConfig
	err = sc.Raw(func(dc any) error {
		c, ok := dc.(*stdlib.Conn)
		if !ok {
			return fmt.Errorf("postgres: unexpected driver connection %T", dc)
		}
		cfg = c.Conn().Config()
		return nil
	})
	sc.Close()
	if err != nil {
		return nil, err
	}
	return pgx.ConnectConfig(ctx, cfg)
}

// Begin begins a transaction on a connection of db that carries eos's text
// as it is (see checkEncoding).
func (d *StdlibDriver) Begin(ctx context.Context) (*sql.Tx, error) {
	conn, err := checkedConn(ctx, d.db)
	if err != nil {
		return nil, err
	}
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		conn.Close()
		return nil, err
	}
	// Close waits for tx to end (whoever ends it), then returns the
	// connection to db's pool.
	go conn.Close()
	return tx, nil
}

// checkedConn takes a connection of db and checks its encodings.
func checkedConn(ctx context.Context, db *sql.DB) (*sql.Conn, error) {
	conn, err := db.Conn(ctx)
	if err != nil {
		return nil, err
	}
	err = conn.Raw(func(dc any) error {
		c, ok := dc.(*stdlib.Conn)
		if !ok {
			return fmt.Errorf("postgres: unexpected driver connection %T", dc)
		}
		return checkEncoding(c.Conn().PgConn())
	})
	if err != nil {
		conn.Close()
		return nil, err
	}
	return conn, nil
}

func (d *StdlibDriver) Commit(_ context.Context, tx *sql.Tx) error { return tx.Commit() }

func (d *StdlibDriver) Rollback(ctx context.Context, tx *sql.Tx) error {
	return sqlTx{tx: tx}.rollback(ctx)
}

func (d *StdlibDriver) Executor(tx *sql.Tx) driver.Executor {
	return &executor{c: d.core, q: sqlTx{tx: tx}}
}

// scanFunc scans the current row.
type scanFunc func(dest ...any) error

// tx is one transaction of either driver: the SQL is written once against it.
type tx interface {
	exec(ctx context.Context, sql string, args ...any) (rowsAffected int64, err error)
	// query calls row for each result row.
	query(ctx context.Context, sql string, args []any, row func(scanFunc) error) error
	commit(ctx context.Context) error
	// rollback ignores an already finished transaction.
	rollback(ctx context.Context) error
}

type pgxTx struct{ tx pgx.Tx }

func (t pgxTx) exec(ctx context.Context, sql string, args ...any) (int64, error) {
	tag, err := t.tx.Exec(ctx, sql, args...)
	return tag.RowsAffected(), err
}

func (t pgxTx) query(ctx context.Context, sql string, args []any, row func(scanFunc) error) error {
	rows, err := t.tx.Query(ctx, sql, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		if err := row(rows.Scan); err != nil {
			return err
		}
	}
	return rows.Err()
}

func (t pgxTx) commit(ctx context.Context) error { return t.tx.Commit(ctx) }

func (t pgxTx) rollback(ctx context.Context) error {
	if err := t.tx.Rollback(ctx); err != nil && !errors.Is(err, pgx.ErrTxClosed) {
		return err
	}
	return nil
}

// sqlTx is a *sql.Tx, on conn when the driver began it (conn is then
// returned to the pool when the transaction ends).
type sqlTx struct {
	tx   *sql.Tx
	conn *sql.Conn
}

func (t sqlTx) exec(ctx context.Context, q string, args ...any) (int64, error) {
	res, err := t.tx.ExecContext(ctx, q, args...)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

func (t sqlTx) query(ctx context.Context, q string, args []any, row func(scanFunc) error) error {
	rows, err := t.tx.QueryContext(ctx, q, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		if err := row(rows.Scan); err != nil {
			return err
		}
	}
	return rows.Err()
}

func (t sqlTx) commit(context.Context) error {
	defer t.release()
	return t.tx.Commit()
}

func (t sqlTx) rollback(context.Context) error {
	defer t.release()
	if err := t.tx.Rollback(); err != nil && !errors.Is(err, sql.ErrTxDone) {
		return err
	}
	return nil
}

func (t sqlTx) release() {
	if t.conn != nil {
		t.conn.Close() // after the first time: sql.ErrConnDone
	}
}
