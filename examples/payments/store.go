package payments

import (
	"context"
	"database/sql"
	"fmt"
	"regexp"
)

// Dialect is the SQL engine behind a Store.
type Dialect string

const (
	SQLite   Dialect = "sqlite"
	Postgres Dialect = "postgres"
)

// Store is the scenario's database: its tables (accounts, ledger,
// payments) next to eos's, reached through database/sql on either engine
// (PostgreSQL through the pgx stdlib driver). It reads only its own
// tables; eos's rows are read through eos's admin API (inbox.Processor's
// Stats and DeadLetters, outbox.Outbox's Stats). Statements use $n
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
	if s.Schema != "" && !schemaName.MatchString(s.Schema) {
		return fmt.Errorf("payments: Store.Schema %q: must match %s", s.Schema, schemaName)
	}
	return nil
}

// schemaName is what a schema name must look like: the names are written
// into statements, so only plain lower-case identifiers are accepted (the
// same rule as postgres.Config.Schema).
var schemaName = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,39}$`)

// table qualifies a table name with the schema.
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

// Progress is a cheap snapshot of how far the scenario's tables got, for
// a progress display.
type Progress struct {
	Applied int64 // distinct orders with a ledger row
	Paid    int64 // distinct orders the payment worker recorded
}

// Progress reads the counts.
func (s Store) Progress(ctx context.Context) (Progress, error) {
	var p Progress
	q := "SELECT" +
		" (SELECT count(DISTINCT order_id) FROM " + s.table("ledger") + ")," +
		" (SELECT count(DISTINCT order_id) FROM " + s.table("payments") + ")"
	if err := s.DB.QueryRowContext(ctx, q).Scan(&p.Applied, &p.Paid); err != nil {
		return Progress{}, fmt.Errorf("payments: progress: %w", err)
	}
	return p, nil
}

// LedgerRow is one row of the ledger: an order applied, with the times (in
// microseconds since the epoch) it was created and applied.
type LedgerRow struct {
	OrderID, Account     string
	Amount               int64
	CreatedUS, AppliedUS int64
}

// Ledger reads every ledger row, in insertion order.
func (s Store) Ledger(ctx context.Context) ([]LedgerRow, error) {
	var out []LedgerRow
	err := s.rows(ctx, "SELECT order_id, account, amount, created_us, applied_us FROM "+s.table("ledger")+" ORDER BY seq",
		func(scan func(...any) error) error {
			var l LedgerRow
			if err := scan(&l.OrderID, &l.Account, &l.Amount, &l.CreatedUS, &l.AppliedUS); err != nil {
				return err
			}
			out = append(out, l)
			return nil
		})
	return out, err
}

// PaymentRows counts the payment worker's rows per order id. The
// provider's idempotency turns a second charge request into a replay, so
// only these rows show the payment worker applying an order twice.
func (s Store) PaymentRows(ctx context.Context) (map[string]int, error) {
	out := map[string]int{}
	err := s.rows(ctx, "SELECT order_id, count(*) FROM "+s.table("payments")+" GROUP BY order_id", func(scan func(...any) error) error {
		var id string
		var n int
		if err := scan(&id, &n); err != nil {
			return err
		}
		out[id] = n
		return nil
	})
	return out, err
}

// Balance is one account's balance and the balance it started with.
type Balance struct {
	Account          string
	Balance, Initial int64
}

// Balances reads every account's balance.
func (s Store) Balances(ctx context.Context) ([]Balance, error) {
	var out []Balance
	err := s.rows(ctx, "SELECT id, balance, initial FROM "+s.table("accounts")+" ORDER BY id", func(scan func(...any) error) error {
		var b Balance
		if err := scan(&b.Account, &b.Balance, &b.Initial); err != nil {
			return err
		}
		out = append(out, b)
		return nil
	})
	return out, err
}

// rows runs q and calls scan for each row.
func (s Store) rows(ctx context.Context, q string, scan func(func(...any) error) error) error {
	rows, err := s.DB.QueryContext(ctx, q)
	if err != nil {
		return fmt.Errorf("payments: %s: %w", q, err)
	}
	defer rows.Close()
	for rows.Next() {
		if err := scan(rows.Scan); err != nil {
			return fmt.Errorf("payments: %s: %w", q, err)
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("payments: %s: %w", q, err)
	}
	return nil
}
