package worker

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx"

	"github.com/eoskit/eos/driver"
	"github.com/eoskit/eos/driver/postgres"
	"github.com/eoskit/eos/driver/sqlite"
	"github.com/eoskit/eos/examples/payments"
	"github.com/eoskit/eos/internal/redact"
)

// StoreConfig says where the scenario's database is. The harness passes it
// to its workers, which open the same database.
type StoreConfig struct {
	Kind   payments.Dialect `json:"kind"`
	Path   string           `json:"path,omitempty"`   // SQLite file
	URL    string           `json:"url,omitempty"`    // PostgreSQL URL
	Schema string           `json:"schema,omitempty"` // PostgreSQL schema of this run
}

// Store is an open database: eos's driver and the scenario's tables over
// one *sql.DB.
type Store struct {
	Driver  driver.Driver[*sql.Tx]
	Tables  payments.Store
	closeDB func() error
}

// Close closes the database.
func (s *Store) Close() error { return s.closeDB() }

// sqliteBusyTimeout is how long a process waits for SQLite's write lock:
// several worker processes share one file, and a payment batch holds the
// lock while it calls the provider.
const sqliteBusyTimeout = time.Minute

// LockSuffix names the file beside a SQLite database that its processes
// lock to take turns at writing (sqlite.Config.WriterLock).
const LockSuffix = ".lock"

// OpenStore opens the database of c. conns bounds PostgreSQL connections
// (SQLite has one writer connection per process).
func OpenStore(ctx context.Context, c StoreConfig, conns int) (*Store, error) {
	switch c.Kind {
	case payments.SQLite:
		d, err := sqlite.Open(ctx, c.Path, sqlite.Config{BusyTimeout: sqliteBusyTimeout, WriterLock: c.Path + LockSuffix})
		if err != nil {
			return nil, err
		}
		return &Store{Driver: d, Tables: payments.Store{DB: d.DB(), Dialect: payments.SQLite}, closeDB: d.Close}, nil
	case payments.Postgres:
		db, err := sql.Open("pgx", c.URL)
		if err != nil {
			return nil, fmt.Errorf("PostgreSQL %s: %w", redact.URL(c.URL), err)
		}
		db.SetMaxOpenConns(conns)
		db.SetMaxIdleConns(conns)
		pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		if err := db.PingContext(pctx); err != nil {
			db.Close()
			return nil, fmt.Errorf("cannot connect to PostgreSQL at %s: %w", redact.URL(c.URL), connectCause(err))
		}
		d, err := postgres.NewStdlib(db, postgres.Config{Schema: c.Schema})
		if err != nil {
			db.Close()
			return nil, err
		}
		return &Store{Driver: d, Tables: payments.Store{DB: db, Dialect: payments.Postgres, Schema: c.Schema}, closeDB: db.Close}, nil
	}
	return nil, fmt.Errorf("unknown store kind %q", c.Kind)
}

// connectCause returns the network error behind a failed connection (pgx
// reports one per address it tried), or err.
func connectCause(err error) error {
	var op *net.OpError
	if errors.As(err, &op) {
		return op
	}
	return err
}

// Topology names the streams, subjects and consumers of one run.
type Topology struct {
	OrdersStream   string `json:"orders_stream"`
	PaymentsStream string `json:"payments_stream"`
	Base           string `json:"base"` // subject prefix
}

// OrdersSubject is the subject the producer publishes orders on.
func (t Topology) OrdersSubject() string { return t.Base + ".orders" }

// PaymentsSubject is the subject the relay publishes charges on.
func (t Topology) PaymentsSubject() string { return t.Base + ".payments" }

// Durable consumer names: all order workers share one, and the payment
// worker has its own.
const (
	OrdersDurable   = "orders"
	PaymentsDurable = "payments"
)

// Settings of the durable consumers, which the harness provisions.
const (
	AckWait    = 2 * time.Second // redelivery after a kill comes quickly
	MaxDeliver = 1000
)
