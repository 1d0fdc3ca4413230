package postgres_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/eoskit/eos"
	"github.com/eoskit/eos/driver"
	"github.com/eoskit/eos/driver/postgres"
	"github.com/eoskit/eos/inbox"
	"github.com/eoskit/eos/inbox/inboxtest"
	"github.com/eoskit/eos/internal/testenv"
)

// newDatabase creates a database with the given encoding, dropped when t
// ends, and returns a pool on it with the given runtime parameters.
func newDatabase(t *testing.T, encoding string, params map[string]string) *pgxpool.Pool {
	t.Helper()
	pool, _ := newDatabaseNamed(t, encoding, params)
	return pool
}

// newDatabaseNamed is newDatabase, and the database's name.
func newDatabaseNamed(t *testing.T, encoding string, params map[string]string) (*pgxpool.Pool, string) {
	t.Helper()
	ctx := context.Background()
	name := testenv.Name("eos_t_db_")
	conn := admin(t)
	_, err := conn.Exec(ctx, "CREATE DATABASE "+name+" TEMPLATE template0 ENCODING '"+encoding+"' LC_COLLATE 'C' LC_CTYPE 'C'")
	must(t, err)
	t.Cleanup(func() {
		if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Errorf("drop database: %v", err)
		}
	})
	cfg, err := pgxpool.ParseConfig(testenv.PostgresURL(t))
	must(t, err)
	cfg.ConnConfig.Database = name
	for k, v := range params {
		cfg.ConnConfig.RuntimeParams[k] = v
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	must(t, err)
	t.Cleanup(pool.Close) // before the drop
	return pool, name
}

// The one-round-trip claim writes the bytes of a value into the server's
// encoding as they are, while a parameter is converted from the
// connection's client_encoding. Where the two differ (a role or database
// setting of client_encoding, a database in another encoding) the fast path
// claimed a non-ASCII id under another string than the ordinary claim, and
// its redelivery was applied a second time. (The driver now refuses most of
// those connections, see TestEncoding; the fast path is right on its own.)
func TestBeginClaimClientEncoding(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name, db string
		params   map[string]string
	}{
		{"utf8", "UTF8", nil},
		{"utf8 database, latin1 client", "UTF8", map[string]string{"client_encoding": "LATIN1"}},
		{"latin1 database, utf8 client", "LATIN1", map[string]string{"client_encoding": "UTF8"}},
		{"latin1 database and client", "LATIN1", nil},
		{"sql_ascii database, utf8 client", "SQL_ASCII", map[string]string{"client_encoding": "UTF8"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, err := postgres.New(newDatabase(t, tc.db, tc.params), postgres.Config{})
			must(t, err)
			if _, err := d.Migrator().Up(ctx); errors.Is(err, eos.ErrInvalidConfig) {
				return // refused (TestEncoding): nothing to claim twice
			} else if err != nil {
				t.Fatal(err)
			}
			applied := map[string]int{}
			p, err := inbox.New(d, func(ctx context.Context, tx pgx.Tx, m eos.Message) error {
				applied[m.ID]++
				return nil
			}, inbox.Config{Consumer: "zähler"})
			must(t, err)
			const id = "é-1" // text every encoding here can hold
			for range 2 {    // a delivery and its redelivery
				if _, err := p.Process(ctx, inboxtest.NewDeliveries(eos.Message{ID: id, Payload: []byte("x")}).Inbox()); err != nil {
					t.Fatal(err)
				}
			}
			if n := applied[id]; n != 1 {
				t.Errorf("message %q applied %d times", id, n)
			}
		})
	}
}

// eos sends UTF-8 text. On a connection whose client_encoding is another
// (a role's or database's setting, the default of a database in another
// encoding), or to a database that cannot hold every character, a valid
// message failed its batch on every try (the consumer stalled) or was
// stored as other text. The driver refuses such a connection with a
// configuration error instead; elsewhere every message applies once and is
// stored as sent.
func TestEncoding(t *testing.T) {
	for _, tc := range []struct {
		name, db string
		params   map[string]string
		refused  bool
	}{
		{"utf8", "UTF8", nil, false},
		{"sql_ascii database", "SQL_ASCII", nil, false},
		{"sql_ascii database, utf8 client", "SQL_ASCII", map[string]string{"client_encoding": "UTF8"}, false},
		{"utf8 database, sjis client", "UTF8", map[string]string{"client_encoding": "SJIS"}, true},
		{"utf8 database, latin1 client", "UTF8", map[string]string{"client_encoding": "LATIN1"}, true},
		{"latin1 database, utf8 client", "LATIN1", map[string]string{"client_encoding": "UTF8"}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Run("pgx", func(t *testing.T) {
				pool, name := newDatabaseNamed(t, tc.db, tc.params)
				d, err := postgres.New(pool, postgres.Config{})
				must(t, err)
				testEncoding(t, d, name, tc.refused)
			})
			t.Run("stdlib", func(t *testing.T) {
				pool, name := newDatabaseNamed(t, tc.db, tc.params)
				db := stdlib.OpenDBFromPool(pool)
				t.Cleanup(func() { db.Close() })
				d, err := postgres.NewStdlib(db, postgres.Config{})
				must(t, err)
				testEncoding(t, d, name, tc.refused)
			})
		})
	}
}

func testEncoding[TTx any](t *testing.T, d driver.Driver[TTx], database string, refused bool) {
	ctx := context.Background()
	refusal := func(what string, err error) bool {
		t.Helper()
		if err == nil {
			return false
		}
		if !refused || !errors.Is(err, eos.ErrInvalidConfig) || !strings.Contains(err.Error(), "encoding") {
			t.Fatalf("%s: %v; want a configuration error naming the encoding only where text cannot travel as UTF-8 (refused %v)", what, err, refused)
		}
		return true
	}
	if _, err := d.Migrator().Up(ctx); refusal("Up", err) {
		return
	}
	applied := map[string]int{}
	p, err := inbox.New(d, func(ctx context.Context, tx TTx, m eos.Message) error {
		applied[m.ID]++
		return nil
	}, inbox.Config{Consumer: "c"})
	must(t, err)
	ids := []string{"plain", "é-1", "Ł-1", "日本-1"}
	for _, id := range ids {
		for range 2 { // a delivery and its redelivery
			if _, err := p.Process(ctx, inboxtest.NewDeliveries(eos.Message{ID: id, Payload: []byte("x")}).Inbox()); refusal("Process "+id, err) {
				return
			}
		}
	}
	if refused {
		t.Errorf("every batch passed on a connection that cannot carry UTF-8 text")
	}
	for _, id := range ids {
		if applied[id] != 1 {
			t.Errorf("message %q applied %d times", id, applied[id])
		}
	}
	// Read back by a UTF-8 client: the claims hold the ids as sent.
	cfg, err := pgx.ParseConfig(testenv.PostgresURL(t))
	must(t, err)
	cfg.Database = database
	conn, err := pgx.ConnectConfig(ctx, cfg)
	must(t, err)
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, "SELECT id FROM eos_inbox ORDER BY id")
	must(t, err)
	stored, err := pgx.CollectRows(rows, pgx.RowTo[string])
	must(t, err)
	if want := slices.Sorted(slices.Values(ids)); !slices.Equal(stored, want) {
		t.Errorf("claims stored as %q, want %q", stored, want)
	}
}
