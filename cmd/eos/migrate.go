package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/eoskit/eos/driver"
	"github.com/eoskit/eos/driver/postgres"
	"github.com/eoskit/eos/driver/sqlite"
	"github.com/eoskit/eos/internal/redact"
)

const migrateUsage = `Usage:
  eos migrate up     (--sqlite PATH | --postgres URL) [--schema NAME] [--prefix PREFIX]
  eos migrate down   --to N (--sqlite PATH | --postgres URL) [--schema NAME] [--prefix PREFIX]
  eos migrate status (--sqlite PATH | --postgres URL) [--schema NAME] [--prefix PREFIX]
  eos migrate sql    (--engine sqlite|postgres) [--schema NAME] [--prefix PREFIX] [--down]

Applies, reverts or lists eos's schema migrations (its inbox, dead-letter,
quarantine and outbox tables), as the drivers' Migrator does: up applies
every pending migration in one transaction under the migration lock, so
that a failure applies none of them and two processes migrating at once
apply each version once; down reverts the applied ones above version N
(0: all of them) in one transaction, newest first. status, like up and
down, creates the migrations table (and the PostgreSQL schema) when they
are missing.

sql connects to nothing: it prints the SQL of every migration, rendered for
--schema and --prefix, with a header per version, for teams that run
migrations with their own tool (goose, atlas): up scripts in the order to
apply them, or with --down the down scripts in the order to revert them
(newest first). Run each script in one transaction. Use one tool or the
other on a database: eos's migrator records its versions in the PREFIX
migrations table, which another tool neither reads nor writes.

The exit status is 0 on success, 1 when a migration failed, 2 for bad flags
or a database it cannot open.

Flags:
`

// migrateOptions are the flags of one migrate subcommand.
type migrateOptions struct {
	sqlite   string
	postgres string
	engine   string // sql: which engine's SQL, when neither --sqlite nor --postgres names it
	schema   string
	prefix   string
	to       int  // down
	down     bool // sql
}

// Engines of --engine.
const (
	engineSQLite   = "sqlite"
	enginePostgres = "postgres"
)

// migrateFlagSet registers the flags of subcommand sub; "" registers
// those of every subcommand, for the help.
func migrateFlagSet(sub string, o *migrateOptions) *flag.FlagSet {
	fs := flag.NewFlagSet("eos migrate "+sub, flag.ContinueOnError)
	fs.SetOutput(io.Discard) // errors are reported in one line by runMigrate
	fs.StringVar(&o.sqlite, "sqlite", "", "SQLite database file")
	fs.StringVar(&o.postgres, "postgres", "", "PostgreSQL URL (postgres://user@host:5432/db) or keyword/value DSN")
	fs.StringVar(&o.schema, "schema", "", "PostgreSQL schema of eos's tables (default: the connection's search_path)")
	fs.StringVar(&o.prefix, "prefix", sqlite.DefaultPrefix, "prefix of eos's table names")
	if sub == "down" || sub == "" {
		fs.IntVar(&o.to, "to", 0, "down: revert the migrations above this version (0: all of them; required)")
	}
	if sub == "sql" || sub == "" {
		fs.StringVar(&o.engine, "engine", "", "sql: sqlite or postgres (implied by --sqlite or --postgres, which sql does not open)")
		fs.BoolVar(&o.down, "down", false, "sql: print the down scripts, newest first")
	}
	return fs
}

// parseMigrateFlags parses the flags of subcommand sub and checks them.
func parseMigrateFlags(sub string, args []string) (migrateOptions, error) {
	var o migrateOptions
	fs := migrateFlagSet(sub, &o)
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if o.sqlite != "" && o.postgres != "" {
		return o, errors.New("--sqlite and --postgres: give one")
	}
	for _, named := range []struct{ flag, engine string }{{o.sqlite, engineSQLite}, {o.postgres, enginePostgres}} {
		switch {
		case named.flag == "":
		case o.engine != "" && o.engine != named.engine:
			return o, fmt.Errorf("--engine %s: the database is %s", o.engine, named.engine)
		default:
			o.engine = named.engine
		}
	}
	switch {
	case o.engine == "" && sub == "sql":
		return o, errors.New("--engine: required (sqlite or postgres)")
	case o.engine == "":
		return o, errors.New("--sqlite PATH or --postgres URL: required")
	case o.engine != engineSQLite && o.engine != enginePostgres:
		return o, fmt.Errorf("--engine: want sqlite or postgres, got %q", o.engine)
	}
	if o.engine == engineSQLite && o.schema != "" {
		return o, errors.New("--schema: PostgreSQL only")
	}
	if sub == "down" && (!set["to"] || o.to < 0) {
		return o, errors.New("--to: required, a version (0 reverts every migration)")
	}
	if o.postgres != "" {
		if _, err := pgxpool.ParseConfig(o.postgres); err != nil {
			return o, fmt.Errorf("--postgres: not a PostgreSQL URL or DSN: %q", redact.URL(o.postgres))
		}
	}
	return o, nil
}

func runMigrate(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || isHelp(args[0]) {
		w := stdout
		if len(args) == 0 {
			w = stderr
		}
		fmt.Fprint(w, migrateUsage)
		printMigrateDefaults(w)
		if len(args) == 0 {
			return exitUsage
		}
		return exitOK
	}
	sub := args[0]
	switch sub {
	case "up", "down", "status", "sql":
	default:
		fmt.Fprintf(stderr, "eos migrate: unknown subcommand %q (up, down, status, sql; see eos migrate -h)\n", sub)
		return exitUsage
	}
	o, err := parseMigrateFlags(sub, args[1:])
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprint(stdout, migrateUsage)
		printMigrateDefaults(stdout)
		return exitOK
	}
	if err != nil {
		fmt.Fprintf(stderr, "eos migrate %s: %s (see eos migrate -h)\n", sub, oneLine(err))
		return exitUsage
	}
	if sub == "sql" {
		return migrateSQL(o, stdout, stderr)
	}
	t, err := openMigrationTarget(ctx, sub, o)
	if err != nil {
		fmt.Fprintf(stderr, "eos migrate %s: %s\n", sub, oneLine(err))
		return exitUsage
	}
	defer t.close()
	switch sub {
	case "up":
		done, err := t.migrator.Up(ctx)
		return t.report(stdout, stderr, "up", done, err, "applied")
	case "down":
		done, err := t.migrator.Down(ctx, o.to)
		return t.report(stdout, stderr, "down", done, err, "reverted")
	}
	st, err := t.migrator.Status(ctx)
	if err != nil {
		fmt.Fprintf(stderr, "eos migrate status: %s\n", oneLine(err))
		return exitFailed
	}
	printStatus(stdout, st)
	return exitOK
}

// printMigrateDefaults lists the flags of every subcommand.
func printMigrateDefaults(w io.Writer) {
	printFlags(w, migrateFlagSet("", &migrateOptions{}))
}

// migrationTarget is an open database to migrate.
type migrationTarget struct {
	migrator driver.Migrator
	names    map[int]string // version → name, of the migrations this eos knows
	close    func()
}

// openMigrationTarget opens the database of o. status and down refuse a
// SQLite file that does not exist rather than create it.
func openMigrationTarget(ctx context.Context, sub string, o migrateOptions) (*migrationTarget, error) {
	var migs []driver.Migration
	var t migrationTarget
	if o.engine == engineSQLite {
		if _, err := os.Stat(o.sqlite); sub != "up" && errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("SQLite database %s: no such file (eos migrate up creates it)", o.sqlite)
		}
		cfg := sqlite.Config{Prefix: o.prefix}
		d, err := sqlite.Open(ctx, o.sqlite, cfg)
		if err != nil {
			return nil, err
		}
		if migs, err = sqlite.Migrations(cfg); err != nil {
			d.Close()
			return nil, err
		}
		t.migrator, t.close = d.Migrator(), func() { d.Close() }
	} else {
		cfg := postgres.Config{Schema: o.schema, Prefix: o.prefix}
		var err error
		if migs, err = postgres.Migrations(cfg); err != nil {
			return nil, err
		}
		pool, err := connectPostgres(ctx, o.postgres)
		if err != nil {
			return nil, err
		}
		d, err := postgres.New(pool, cfg)
		if err != nil {
			pool.Close()
			return nil, err
		}
		t.migrator, t.close = d.Migrator(), pool.Close
	}
	t.names = make(map[int]string, len(migs))
	for _, m := range migs {
		t.names[m.Version] = m.Name
	}
	return &t, nil
}

// connectPostgres opens a pool of one connection on url and checks that
// the server answers.
func connectPostgres(ctx context.Context, url string) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("PostgreSQL %s: %w", redact.URL(url), err)
	}
	cfg.MaxConns = 1
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("PostgreSQL %s: %w", redact.URL(url), err)
	}
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := pool.Ping(pctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("cannot connect to PostgreSQL at %s: %w", redact.URL(url), err)
	}
	return pool, nil
}

// report prints what up or down did, or why it did nothing.
func (t *migrationTarget) report(stdout, stderr io.Writer, sub string, done []int, err error, verb string) int {
	if err != nil {
		fmt.Fprintf(stderr, "eos migrate %s: %s (the migrations run in one transaction: all or none; see eos migrate status)\n", sub, oneLine(err))
		return exitFailed
	}
	if len(done) == 0 {
		fmt.Fprintf(stdout, "nothing to do: no migration to be %s\n", verb)
		return exitOK
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "VERSION\tNAME\tSTATE")
	for _, v := range done {
		fmt.Fprintf(tw, "%04d\t%s\t%s\n", v, t.names[v], verb)
	}
	tw.Flush()
	return exitOK
}

func printStatus(w io.Writer, st []driver.MigrationStatus) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "VERSION\tNAME\tSTATE\tAPPLIED AT")
	for _, s := range st {
		if s.Applied {
			fmt.Fprintf(tw, "%04d\t%s\tapplied\t%s\n", s.Version, s.Name, s.AppliedAt.UTC().Format(time.RFC3339))
		} else {
			fmt.Fprintf(tw, "%04d\t%s\tpending\n", s.Version, s.Name)
		}
	}
	tw.Flush()
}

// migrateSQL prints the rendered scripts of o's engine.
func migrateSQL(o migrateOptions, stdout, stderr io.Writer) int {
	var migs []driver.Migration
	var err error
	where := "SQLite, table prefix " + o.prefix
	if o.engine == engineSQLite {
		migs, err = sqlite.Migrations(sqlite.Config{Prefix: o.prefix})
	} else {
		migs, err = postgres.Migrations(postgres.Config{Schema: o.schema, Prefix: o.prefix})
		where = "PostgreSQL, table prefix " + o.prefix
		if o.schema != "" {
			where += ", schema " + o.schema
		}
	}
	if err != nil {
		fmt.Fprintf(stderr, "eos migrate sql: %s\n", oneLine(err))
		return exitUsage
	}
	dir := "up"
	if o.down {
		dir = "down"
		for i, j := 0, len(migs)-1; i < j; i, j = i+1, j-1 {
			migs[i], migs[j] = migs[j], migs[i]
		}
	}
	fmt.Fprintf(stdout, "-- eos schema migrations (%s), %s scripts in the order to run them, each in one transaction.\n", where, dir)
	if o.engine == enginePostgres && o.schema != "" && !o.down {
		fmt.Fprintf(stdout, "\n-- The scripts expect the schema to exist (eos migrate up creates it):\nCREATE SCHEMA IF NOT EXISTS %s;\n", o.schema)
	}
	for _, m := range migs {
		script := m.Up
		if o.down {
			script = m.Down
		}
		fmt.Fprintf(stdout, "\n-- %04d_%s %s\n%s", m.Version, m.Name, dir, script)
		if !strings.HasSuffix(script, "\n") {
			fmt.Fprintln(stdout)
		}
	}
	return exitOK
}
