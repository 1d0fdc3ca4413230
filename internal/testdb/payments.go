package testdb

import (
	"context"
	"fmt"
	"strconv"
	"testing"

	"github.com/eoskit/eos"
)

// Payments is the workload tests and benchmarks share: a message debits
// account Key by the amount in Payload (decimal) and appends a ledger row.
type Payments[TTx any] struct{ E *Engine[TTx] }

// Setup creates the accounts and ledger tables and n accounts a0…a(n-1)
// with the given balance.
func (p Payments[TTx]) Setup(t testing.TB, accounts int, balance int64) {
	t.Helper()
	ledger := "CREATE TABLE ledger (seq INTEGER PRIMARY KEY, msg_id TEXT NOT NULL, account TEXT NOT NULL, amount BIGINT NOT NULL)"
	if p.E.Name != "sqlite" {
		ledger = "CREATE TABLE ledger (seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, msg_id TEXT NOT NULL, account TEXT NOT NULL, amount BIGINT NOT NULL)"
	}
	p.E.Script(t, "CREATE TABLE accounts (id TEXT PRIMARY KEY, balance BIGINT NOT NULL)", ledger)
	// One statement, whatever the number of accounts.
	fill := "INSERT INTO accounts (id, balance) SELECT 'a' || i, $2 FROM generate_series(0, $1 - 1) AS i"
	if p.E.Name == "sqlite" {
		fill = "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i + 1 < $1) " +
			"INSERT INTO accounts (id, balance) SELECT 'a' || i, $2 FROM n"
	}
	ctx := context.Background()
	tx, err := p.E.Driver.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer p.E.Driver.Rollback(ctx, tx)
	if accounts > 0 {
		if err := p.E.Exec(ctx, tx, fill, accounts, balance); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.E.Driver.Commit(ctx, tx); err != nil {
		t.Fatal(err)
	}
	p.E.Prepare(t, debitSQL, ledgerSQL)
}

const (
	debitSQL  = "UPDATE accounts SET balance = balance - $1 WHERE id = $2"
	ledgerSQL = "INSERT INTO ledger (msg_id, account, amount) VALUES ($1, $2, $3)"
)

// Account names account i.
func Account(i int) string { return "a" + strconv.Itoa(i) }

// Message returns a payments message debiting account by amount.
func Message(id, account string, amount int64) eos.Message {
	return eos.Message{ID: id, Key: account, Payload: strconv.AppendInt(nil, amount, 10)}
}

// Handler applies a payments message in tx.
func (p Payments[TTx]) Handler(ctx context.Context, tx TTx, m eos.Message) error {
	amount, err := strconv.ParseInt(string(m.Payload), 10, 64)
	if err != nil {
		return fmt.Errorf("payments: bad amount %q: %w", m.Payload, err)
	}
	if err := p.E.Exec(ctx, tx, debitSQL, amount, m.Key); err != nil {
		return err
	}
	return p.E.Exec(ctx, tx, ledgerSQL, m.ID, m.Key, amount)
}

// Effects returns how many ledger rows message id produced.
func (p Payments[TTx]) Effects(t testing.TB, id string) int64 {
	return p.E.Int(t, "SELECT count(*) FROM ledger WHERE msg_id = $1", id)
}

// CheckExactlyOnce fails t unless each id has exactly one ledger row, there
// are no others, and balances sum to accounts*balance minus the ledger.
func (p Payments[TTx]) CheckExactlyOnce(t testing.TB, ids []string, accounts int, balance int64) {
	t.Helper()
	if n := p.E.Int(t, "SELECT count(*) FROM ledger"); n != int64(len(ids)) {
		t.Errorf("ledger has %d rows, want %d", n, len(ids))
	}
	if n := p.E.Int(t, "SELECT count(*) FROM (SELECT msg_id FROM ledger GROUP BY msg_id HAVING count(*) > 1) d"); n != 0 {
		t.Errorf("%d messages applied more than once", n)
	}
	debited := p.E.Int(t, "SELECT coalesce(sum(amount), 0) FROM ledger")
	if total := p.E.Int(t, "SELECT sum(balance) FROM accounts"); total != int64(accounts)*balance-debited {
		t.Errorf("balances sum to %d, want %d", total, int64(accounts)*balance-debited)
	}
	for _, id := range ids {
		if n := p.Effects(t, id); n != 1 {
			t.Errorf("message %s applied %d times", id, n)
		}
	}
}
