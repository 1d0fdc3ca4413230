package postgres_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/eoskit/eos"
	"github.com/eoskit/eos/driver/postgres"
	"github.com/eoskit/eos/inbox"
	"github.com/eoskit/eos/internal/testenv"
)

// newDatabase creates a database with the given encoding, dropped when t
// ends, and returns a pool on it with the given runtime parameters.
func newDatabase(t *testing.T, encoding string, params map[string]string) *pgxpool.Pool {
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
	return pool
}

type ackDelivery struct{ m eos.Message }

func (d ackDelivery) Message() eos.Message                      { return d.m }
func (d ackDelivery) Ack(context.Context) error                 { return nil }
func (d ackDelivery) Nack(context.Context, time.Duration) error { return nil }

// The one-round-trip claim writes the bytes of a value into the server's
// encoding as they are, while a parameter is converted from the
// connection's client_encoding. Where the two differ (a role or database
// setting of client_encoding, a database in another encoding) the fast path
// claimed a non-ASCII id under another string than the ordinary claim, and
// its redelivery was applied a second time.
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
			migrate(t, d)
			applied := map[string]int{}
			p, err := inbox.New(d, func(ctx context.Context, tx pgx.Tx, m eos.Message) error {
				applied[m.ID]++
				return nil
			}, inbox.Config{Consumer: "zähler"})
			must(t, err)
			const id = "é-1" // text every encoding here can hold
			for range 2 {    // a delivery and its redelivery
				if _, err := p.Process(ctx, []inbox.Delivery{ackDelivery{eos.Message{ID: id, Payload: []byte("x")}}}); err != nil {
					t.Fatal(err)
				}
			}
			if n := applied[id]; n != 1 {
				t.Errorf("message %q applied %d times", id, n)
			}
		})
	}
}
