package payments

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/eoskit/eos/internal/schema"
)

// Dialect is the SQL engine behind a Store.
type Dialect string

const (
	SQLite   Dialect = "sqlite"
	Postgres Dialect = "postgres"
)

// EOSPrefix is the table prefix of eos's own tables (the drivers' default).
const EOSPrefix = "eos_"

// Store is the scenario's database: its tables (accounts, ledger,
// payments) next to eos's, reached through database/sql on either engine
// (PostgreSQL through the pgx stdlib driver). Statements use $n
// placeholders, which both engines accept.
type Store struct {
	DB      *sql.DB
	Dialect Dialect
	// Schema is the PostgreSQL schema holding the scenario's tables and
	// eos's (postgres.Config.Schema); empty on SQLite.
	Schema string
}

// Validate reports an unusable Store.
func (s Store) Validate() error {
	if s.DB == nil {
		return fmt.Errorf("payments: Store.DB is nil")
	}
	if s.Dialect != SQLite && s.Dialect != Postgres {
		return fmt.Errorf("payments: unknown dialect %q", s.Dialect)
	}
	if s.Dialect == SQLite && s.Schema != "" {
		return fmt.Errorf("payments: a schema (%q) on SQLite", s.Schema)
	}
	return schema.CheckSchema("payments.Store.Schema", s.Schema)
}

// table qualifies a table name with the schema.
// Table returns the qualified name of the scenario's table name (accounts,
// ledger, payments) or of eos's (EOSPrefix+"outbox" …), for checkers that
// read the tables themselves.
func (s Store) Table(name string) string { return s.table(name) }

func (s Store) table(name string) string {
	if s.Schema == "" {
		return name
	}
	return s.Schema + "." + name
}

// Setup creates the scenario's tables and the given number of accounts,
// each with the initial balance (in cents). The schema must exist (eos's
// migrations create it).
//
// The ledger and payments tables have no unique constraint on order_id, on
// purpose: exactly-once is the inbox's job, and a duplicate effect must show
// up as a second row for the checker to count, not as an error.
func (s Store) Setup(ctx context.Context, accounts int, initial int64) error {
	if err := s.Validate(); err != nil {
		return err
	}
	seq := "seq INTEGER PRIMARY KEY"
	if s.Dialect == Postgres {
		seq = "seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY"
	}
	// Index names take no schema: an index lives in its table's schema.
	ddl := []string{
		"CREATE TABLE " + s.table("accounts") + " (id TEXT PRIMARY KEY, balance BIGINT NOT NULL, initial BIGINT NOT NULL)",
		"CREATE TABLE " + s.table("ledger") + " (" + seq + ", order_id TEXT NOT NULL, account TEXT NOT NULL, amount BIGINT NOT NULL," +
			" created_us BIGINT NOT NULL, applied_us BIGINT NOT NULL)",
		"CREATE INDEX ledger_order ON " + s.table("ledger") + " (order_id)",
		"CREATE TABLE " + s.table("payments") + " (" + seq + ", order_id TEXT NOT NULL, charge_id TEXT NOT NULL, account TEXT NOT NULL," +
			" amount BIGINT NOT NULL, created_us BIGINT NOT NULL, paid_us BIGINT NOT NULL)",
		"CREATE INDEX payments_order ON " + s.table("payments") + " (order_id)",
	}
	tx, err := s.DB.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("payments: setup: %w", err)
	}
	defer tx.Rollback()
	for _, q := range ddl {
		if _, err := tx.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("payments: setup: %s: %w", q, err)
		}
	}
	ins, err := tx.PrepareContext(ctx, "INSERT INTO "+s.table("accounts")+" (id, balance, initial) VALUES ($1, $2, $2)")
	if err != nil {
		return fmt.Errorf("payments: setup: %w", err)
	}
	defer ins.Close()
	for i := 0; i < accounts; i++ {
		if _, err := ins.ExecContext(ctx, Account(i, accounts), initial); err != nil {
			return fmt.Errorf("payments: setup: account %d: %w", i, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("payments: setup: %w", err)
	}
	return nil
}

// Progress is a cheap snapshot of how far the pipeline got, for a progress
// display; [Check] is the real verdict.
type Progress struct {
	Applied      int64 // distinct orders with a ledger row
	Paid         int64 // distinct orders the payment worker recorded
	Unsent       int64 // outbox rows not yet forwarded
	DeadLettered int64 // dead letters of every consumer
}

// Progress reads the counts.
func (s Store) Progress(ctx context.Context) (Progress, error) {
	var p Progress
	q := "SELECT" +
		" (SELECT count(DISTINCT order_id) FROM " + s.table("ledger") + ")," +
		" (SELECT count(DISTINCT order_id) FROM " + s.table("payments") + ")," +
		" (SELECT count(*) FROM " + s.table(EOSPrefix+"outbox") + " WHERE sent_at IS NULL)," +
		" (SELECT count(*) FROM " + s.table(EOSPrefix+"dead_letters") + ")"
	if err := s.DB.QueryRowContext(ctx, q).Scan(&p.Applied, &p.Paid, &p.Unsent, &p.DeadLettered); err != nil {
		return Progress{}, fmt.Errorf("payments: progress: %w", err)
	}
	return p, nil
}
