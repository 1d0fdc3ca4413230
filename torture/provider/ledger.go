package provider

import (
	"context"
	"database/sql"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// table holds the charges in the SQL ledgers; created if missing.
const (
	createTable = "CREATE TABLE IF NOT EXISTS provider_charges (charge_id TEXT PRIMARY KEY, order_id TEXT NOT NULL," +
		" account TEXT NOT NULL, amount BIGINT NOT NULL, created_us BIGINT NOT NULL)"
	insertCharge = "INSERT INTO provider_charges (charge_id, order_id, account, amount, created_us) VALUES ($1, $2, $3, $4, $5)"
	listCharges  = "SELECT charge_id, order_id, account, amount, created_us FROM provider_charges ORDER BY created_us, charge_id"
)

// SQLLedger is the ledger over database/sql (SQLite).
type SQLLedger struct{ db *sql.DB }

// NewSQLLedger creates the charges table in db if needed.
func NewSQLLedger(ctx context.Context, db *sql.DB) (*SQLLedger, error) {
	if _, err := db.ExecContext(ctx, createTable); err != nil {
		return nil, err
	}
	return &SQLLedger{db: db}, nil
}

func (l *SQLLedger) Record(ctx context.Context, tx *sql.Tx, r Result) error {
	_, err := tx.ExecContext(ctx, insertCharge, r.ChargeID, r.OrderID, r.Account, r.Amount, r.Created.UnixMicro())
	return err
}

func (l *SQLLedger) Charges(ctx context.Context) ([]Result, error) {
	rows, err := l.db.QueryContext(ctx, listCharges)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []Result{}
	for rows.Next() {
		r := Result{Status: "succeeded"}
		var us int64
		if err := rows.Scan(&r.ChargeID, &r.OrderID, &r.Account, &r.Amount, &us); err != nil {
			return nil, err
		}
		r.Created = time.UnixMicro(us).UTC()
		out = append(out, r)
	}
	return out, rows.Err()
}

// PgxLedger is the ledger over pgx (PostgreSQL).
type PgxLedger struct{ pool *pgxpool.Pool }

// NewPgxLedger creates the charges table in the pool's search_path if
// needed.
func NewPgxLedger(ctx context.Context, pool *pgxpool.Pool) (*PgxLedger, error) {
	if _, err := pool.Exec(ctx, createTable); err != nil {
		return nil, err
	}
	return &PgxLedger{pool: pool}, nil
}

func (l *PgxLedger) Record(ctx context.Context, tx pgx.Tx, r Result) error {
	_, err := tx.Exec(ctx, insertCharge, r.ChargeID, r.OrderID, r.Account, r.Amount, r.Created.UnixMicro())
	return err
}

func (l *PgxLedger) Charges(ctx context.Context) ([]Result, error) {
	rows, err := l.pool.Query(ctx, listCharges)
	if err != nil {
		return nil, err
	}
	out := []Result{}
	for rows.Next() {
		r := Result{Status: "succeeded"}
		var us int64
		if err := rows.Scan(&r.ChargeID, &r.OrderID, &r.Account, &r.Amount, &us); err != nil {
			rows.Close()
			return nil, err
		}
		r.Created = time.UnixMicro(us).UTC()
		out = append(out, r)
	}
	return out, rows.Err()
}
