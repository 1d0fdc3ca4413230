package main

import (
	"context"
	"database/sql"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/eoskit/eos/driver"
	"github.com/eoskit/eos/driver/postgres"
	"github.com/eoskit/eos/driver/sqlite"
	"github.com/eoskit/eos/internal/testenv"
)

// migrateCmd runs eos migrate with args and fails t unless it exits with
// want.
func migrateCmd(t *testing.T, want int, args ...string) result {
	t.Helper()
	r := runCmd(t, 30*time.Second, append([]string{"migrate"}, args...)...)
	if r.code != want {
		t.Fatalf("eos migrate %s: exit %d, want %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), r.code, want, r.stdout, r.stderr)
	}
	return r
}

// states reads the rows of a printed table (VERSION NAME STATE …) into
// "0001_init" → state, checking the header.
func states(t *testing.T, table string) map[string]string {
	t.Helper()
	lines := strings.Split(strings.TrimSuffix(table, "\n"), "\n")
	if len(lines) < 2 || !strings.HasPrefix(lines[0], "VERSION") {
		t.Fatalf("not a table:\n%s", table)
	}
	out := map[string]string{}
	for _, l := range lines[1:] {
		f := strings.Fields(l)
		if len(f) < 3 {
			t.Fatalf("row %q of:\n%s", l, table)
		}
		out[f[0]+"_"+f[1]] = f[2]
	}
	return out
}

// wantStates returns the states of migs: "applied" up to version upTo, other
// after it. other == "" leaves those out.
func wantStates(migs []driver.Migration, upTo int, applied, other string) map[string]string {
	out := map[string]string{}
	for _, m := range migs {
		name := fmt.Sprintf("%04d_%s", m.Version, m.Name)
		switch {
		case m.Version <= upTo && applied != "":
			out[name] = applied
		case m.Version > upTo && other != "":
			out[name] = other
		}
	}
	return out
}

func TestMigrateSQLite(t *testing.T) {
	path := filepath.Join(t.TempDir(), "eos.db")
	migs, err := sqlite.Migrations(sqlite.Config{})
	if err != nil {
		t.Fatal(err)
	}
	last := migs[len(migs)-1].Version

	r := migrateCmd(t, exitUsage, "status", "--sqlite", path)
	if !strings.Contains(r.stderr, "no such file") {
		t.Errorf("status of a missing file: %q", r.stderr)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("status created the database file (%v)", err)
	}

	r = migrateCmd(t, exitOK, "up", "--sqlite", path)
	if got, w := states(t, r.stdout), wantStates(migs, last, "applied", ""); !maps.Equal(got, w) {
		t.Errorf("up printed %v, want %v", got, w)
	}
	if r = migrateCmd(t, exitOK, "up", "--sqlite", path); !strings.Contains(r.stdout, "nothing to do") {
		t.Errorf("second up: %q", r.stdout)
	}
	migrateCmd(t, exitUsage, "down", "--sqlite", path) // --to is required
	r = migrateCmd(t, exitOK, "down", "--to", "2", "--sqlite", path)
	if got, w := states(t, r.stdout), wantStates(migs, 2, "", "reverted"); !maps.Equal(got, w) || !strings.Contains(r.stdout, fmt.Sprintf("\n%04d", last)) {
		t.Errorf("down --to 2 printed %v, want %v, newest first:\n%s", got, w, r.stdout)
	}
	r = migrateCmd(t, exitOK, "status", "--sqlite", path)
	if got, w := states(t, r.stdout), wantStates(migs, 2, "applied", "pending"); !maps.Equal(got, w) {
		t.Errorf("status printed %v, want %v", got, w)
	}

	// The database says the same.
	d, err := sqlite.Open(context.Background(), path, sqlite.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	st, err := d.Migrator().Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range st {
		if s.Applied != (s.Version <= 2) {
			t.Errorf("the database has %04d_%s applied: %v", s.Version, s.Name, s.Applied)
		}
	}
}

func TestMigratePostgres(t *testing.T) {
	url, schema, conn, migs := freshSchema(t)
	last := migs[len(migs)-1].Version
	db := []string{"--postgres", url, "--schema", schema}

	r := migrateCmd(t, exitOK, append([]string{"up"}, db...)...)
	if got, w := states(t, r.stdout), wantStates(migs, last, "applied", ""); !maps.Equal(got, w) {
		t.Errorf("up printed %v, want %v", got, w)
	}
	if !tableExists(t, conn, schema+".eos_dead_letters") {
		t.Error("up did not create the tables")
	}
	r = migrateCmd(t, exitOK, append([]string{"status"}, db...)...)
	if got, w := states(t, r.stdout), wantStates(migs, last, "applied", ""); !maps.Equal(got, w) {
		t.Errorf("status printed %v, want %v", got, w)
	}
	r = migrateCmd(t, exitOK, append([]string{"down", "--to", "0"}, db...)...)
	if got, w := states(t, r.stdout), wantStates(migs, 0, "", "reverted"); !maps.Equal(got, w) {
		t.Errorf("down --to 0 printed %v, want %v", got, w)
	}
	if tableExists(t, conn, schema+".eos_dead_letters") {
		t.Error("down --to 0 left the tables")
	}
}

// TestMigrateRedactsURL: a URL or DSN that fails to connect is shown
// without its password.
func TestMigrateRedactsURL(t *testing.T) {
	for _, dsn := range []string{
		"postgres://bob:hunter2@127.0.0.1:1/x?connect_timeout=5",
		"postgres://127.0.0.1:1/x?password=hunter2&connect_timeout=5",
		"host=127.0.0.1 port=1 user=bob password=hunter2 connect_timeout=5",
	} {
		r := migrateCmd(t, exitUsage, "status", "--postgres", dsn)
		if strings.Contains(r.stderr, "hunter2") || !strings.Contains(r.stderr, "cannot connect to PostgreSQL") {
			t.Errorf("%s: stderr %q", dsn, r.stderr)
		}
	}
	r := migrateCmd(t, exitUsage, "up", "--postgres", "postgres://bob:hunter2@[::1")
	if strings.Contains(r.stderr, "hunter2") {
		t.Errorf("unparsable URL: stderr %q", r.stderr)
	}
}

func TestMigrateFlags(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"up"}, "--sqlite PATH or --postgres URL: required"},
		{[]string{"sideways", "--sqlite", "x"}, `unknown subcommand "sideways"`},
		{[]string{"up", "--sqlite", "x", "--postgres", "postgres://h/db"}, "give one"},
		{[]string{"up", "--sqlite", "x", "--schema", "s"}, "--schema: PostgreSQL only"},
		{[]string{"down", "--sqlite", "x", "--to", "-1"}, "--to: required"},
		{[]string{"sql"}, "--engine: required"},
		{[]string{"sql", "--engine", "mysql"}, `want sqlite or postgres, got "mysql"`},
		{[]string{"sql", "--engine", "postgres", "--sqlite", "x"}, "the database is sqlite"},
		{[]string{"sql", "--engine", "sqlite", "--prefix", "Bad-"}, "Prefix"},
		{[]string{"status", "--sqlite", "x", "extra"}, `unexpected argument "extra"`},
	} {
		r := migrateCmd(t, exitUsage, c.args...)
		if !strings.Contains(r.stderr, c.want) || strings.Count(r.stderr, "\n") != 1 {
			t.Errorf("eos migrate %s: stderr %q, want one line with %q", strings.Join(c.args, " "), r.stderr, c.want)
		}
	}
	if r := migrateCmd(t, exitOK, "-h"); !strings.Contains(r.stdout, "eos migrate sql") || !strings.Contains(r.stdout, "-engine") {
		t.Errorf("eos migrate -h: %q", r.stdout)
	}
}

// TestMigrateSQLiteScript runs what eos migrate sql prints, as one script
// the way a tool of one's own would, on a fresh SQLite file: the up output
// creates eos's tables under the prefix, the down output removes them.
func TestMigrateSQLiteScript(t *testing.T) {
	migs, err := sqlite.Migrations(sqlite.Config{Prefix: "app_"})
	if err != nil {
		t.Fatal(err)
	}
	up := migrateCmd(t, exitOK, "sql", "--engine", "sqlite", "--prefix", "app_").stdout
	checkHeaders(t, up, migs, "up")
	down := migrateCmd(t, exitOK, "sql", "--sqlite", "not-opened.db", "--prefix", "app_", "--down").stdout
	checkHeaders(t, down, migs, "down")
	if _, err := os.Stat("not-opened.db"); !os.IsNotExist(err) {
		t.Errorf("sql opened the database (%v)", err)
	}

	db, err := sql.Open("sqlite", filepath.Join(t.TempDir(), "own.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	tables := func() int {
		var n int
		if err := db.QueryRow("SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name LIKE 'app!_%' ESCAPE '!'").Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if _, err := db.Exec(up); err != nil {
		t.Fatalf("the up script: %v", err)
	}
	if n := tables(); n != 7 {
		t.Errorf("%d app_ tables after the up script, want 7 (inbox, failures, quarantine, dead letters, outbox, dedupe, offsets)", n)
	}
	if _, err := db.Exec("SELECT expires_at FROM app_dedupe"); err != nil {
		t.Errorf("the last migration's column: %v", err)
	}
	if _, err := db.Exec(down); err != nil {
		t.Fatalf("the down script: %v", err)
	}
	if n := tables(); n != 0 {
		t.Errorf("%d app_ tables after the down script", n)
	}
}

// TestMigratePostgresScript runs what eos migrate sql prints for a schema
// that does not exist yet: the up output creates it and eos's tables; the
// down output removes the tables.
func TestMigratePostgresScript(t *testing.T) {
	_, schema, conn, migs := freshSchema(t)
	up := migrateCmd(t, exitOK, "sql", "--engine", "postgres", "--schema", schema).stdout
	checkHeaders(t, up, migs, "up")
	down := migrateCmd(t, exitOK, "sql", "--engine", "postgres", "--schema", schema, "--down").stdout
	checkHeaders(t, down, migs, "down")

	ctx := context.Background()
	if _, err := conn.Exec(ctx, up); err != nil {
		t.Fatalf("the up script: %v", err)
	}
	if !tableExists(t, conn, schema+".eos_inbox") || !tableExists(t, conn, schema+".eos_outbox") {
		t.Error("the up script did not create the tables")
	}
	if _, err := conn.Exec(ctx, "SELECT subject FROM "+schema+".eos_dead_letters"); err != nil {
		t.Errorf("the last migration's column: %v", err)
	}
	if _, err := conn.Exec(ctx, down); err != nil {
		t.Fatalf("the down script: %v", err)
	}
	if tableExists(t, conn, schema+".eos_inbox") {
		t.Error("the down script left the tables")
	}
}

// checkHeaders checks that out has a header per migration, in the order
// to run them (newest first for down).
func checkHeaders(t *testing.T, out string, migs []driver.Migration, dir string) {
	t.Helper()
	at := -1
	for i := range migs {
		m := migs[i]
		if dir == "down" {
			m = migs[len(migs)-1-i]
		}
		h := fmt.Sprintf("\n-- %04d_%s %s\n", m.Version, m.Name, dir)
		j := strings.Index(out, h)
		if j <= at {
			t.Fatalf("header %q missing or out of order in:\n%s", h, out)
		}
		at = j
	}
}

// freshSchema returns the PostgreSQL URL, the name of a schema that does
// not exist yet (dropped when t ends if it does by then), a connection for
// the test's own queries, and the migrations rendered for the schema.
func freshSchema(t *testing.T) (string, string, *pgx.Conn, []driver.Migration) {
	t.Helper()
	url, schema := testenv.PostgresURL(t), testenv.Name("eos_t_")
	migs, err := postgres.Migrations(postgres.Config{Schema: schema})
	if err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if _, err := conn.Exec(context.Background(), "DROP SCHEMA IF EXISTS "+schema+" CASCADE"); err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
		}
		conn.Close(context.Background())
	})
	return url, schema, conn, migs
}

func tableExists(t *testing.T, conn *pgx.Conn, name string) bool {
	t.Helper()
	var ok bool
	if err := conn.QueryRow(context.Background(), "SELECT to_regclass($1) IS NOT NULL", name).Scan(&ok); err != nil {
		t.Fatal(err)
	}
	return ok
}
