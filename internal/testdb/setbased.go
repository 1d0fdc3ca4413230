package testdb

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"testing"

	"github.com/eoskit/eos"
)

// The set-based form of the payments workload: a batch of messages applied
// with one ledger insert and one balance update (per account, aggregated),
// whatever its size. Lists travel as arrays on PostgreSQL and as one JSON
// parameter on SQLite, so that each statement's text and parameter count
// are the same for every batch and stay prepared.
const (
	pgLedgerBatchSQL = "INSERT INTO ledger (msg_id, account, amount) " +
		"SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[])"
	pgDebitBatchSQL = "UPDATE accounts AS a SET balance = a.balance - u.total " +
		"FROM unnest($1::text[], $2::bigint[]) AS u(id, total) WHERE a.id = u.id"
	pgSeenSQL = "INSERT INTO seen (id) SELECT unnest($1::text[]) ON CONFLICT DO NOTHING RETURNING id"

	// $1 is [[msg_id, account, amount], …].
	sqliteLedgerBatchSQL = "INSERT INTO ledger (msg_id, account, amount) " +
		"SELECT j.value ->> 0, j.value ->> 1, j.value ->> 2 FROM json_each($1) AS j"
	// $1 is [[account, total], …]; the join looks each account up by key.
	sqliteDebitBatchSQL = "UPDATE accounts SET balance = balance - (j.value ->> 1) " +
		"FROM json_each($1) AS j WHERE accounts.id = j.value ->> 0"
	// $1 is [id, …].
	sqliteSeenSQL = "INSERT INTO seen (id) SELECT value FROM json_each($1) WHERE true " +
		"ON CONFLICT DO NOTHING RETURNING id"
)

func (p Payments[TTx]) sqlite() bool { return p.E.Name == "sqlite" }

// SetupBatch prepares the set-based statements, and creates the table of
// seen ids that SetBasedBatch keeps (its key is of the inbox's type: text
// in the "C" collation on PostgreSQL). Call it after Setup.
func (p Payments[TTx]) SetupBatch(t testing.TB) {
	t.Helper()
	if p.sqlite() {
		p.E.Script(t, "CREATE TABLE seen (id TEXT PRIMARY KEY)")
		p.E.Prepare(t, sqliteLedgerBatchSQL, sqliteDebitBatchSQL, sqliteSeenSQL)
		return
	}
	p.E.Script(t, `CREATE TABLE seen (id text COLLATE "C" PRIMARY KEY)`)
}

// ApplyBatch applies ms in tx set-based: one ledger insert for all of them
// and one update of the balances they debit, aggregated per account (in
// account order, so that concurrent batches lock accounts in one order).
func (p Payments[TTx]) ApplyBatch(ctx context.Context, tx TTx, ms []eos.Message) error {
	if len(ms) == 0 {
		return nil
	}
	amounts := make([]int64, len(ms))
	totals := make(map[string]int64)
	for i, m := range ms {
		a, err := strconv.ParseInt(string(m.Payload), 10, 64)
		if err != nil {
			return fmt.Errorf("payments: bad amount %q: %w", m.Payload, err)
		}
		amounts[i] = a
		totals[m.Key] += a
	}
	accounts := make([]string, 0, len(totals))
	for a := range totals {
		accounts = append(accounts, a)
	}
	slices.Sort(accounts)
	if p.sqlite() {
		return p.applyBatchSQLite(ctx, tx, ms, amounts, accounts, totals)
	}
	ids, keys := make([]string, len(ms)), make([]string, len(ms))
	for i, m := range ms {
		ids[i], keys[i] = m.ID, m.Key
	}
	if err := p.E.Exec(ctx, tx, pgLedgerBatchSQL, ids, keys, amounts); err != nil {
		return err
	}
	sums := make([]int64, len(accounts))
	for i, a := range accounts {
		sums[i] = totals[a]
	}
	return p.E.Exec(ctx, tx, pgDebitBatchSQL, accounts, sums)
}

func (p Payments[TTx]) applyBatchSQLite(ctx context.Context, tx TTx, ms []eos.Message, amounts []int64, accounts []string, totals map[string]int64) error {
	b := make([]byte, 0, 64*len(ms))
	b = append(b, '[')
	for i, m := range ms {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, '[')
		b = appendJSONString(b, m.ID)
		b = append(b, ',')
		b = appendJSONString(b, m.Key)
		b = append(b, ',')
		b = strconv.AppendInt(b, amounts[i], 10)
		b = append(b, ']')
	}
	b = append(b, ']')
	if err := p.E.Exec(ctx, tx, sqliteLedgerBatchSQL, string(b)); err != nil {
		return err
	}
	b = append(b[:0], '[')
	for i, a := range accounts {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, '[')
		b = appendJSONString(b, a)
		b = append(b, ',')
		b = strconv.AppendInt(b, totals[a], 10)
		b = append(b, ']')
	}
	b = append(b, ']')
	return p.E.Exec(ctx, tx, sqliteDebitBatchSQL, string(b))
}

// appendJSONString appends s as a JSON string.
func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '"' || c == '\\':
			b = append(b, '\\', c)
		case c < 0x20:
			b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		default:
			b = append(b, c)
		}
	}
	return append(b, '"')
}

// SetBasedBatch is the hand-written exactly-once batch without eos: in one
// transaction, insert the ids of ms into table seen where absent, and
// apply with ApplyBatch the messages whose id was new (the first delivery
// of each).
func (p Payments[TTx]) SetBasedBatch(ctx context.Context, ms []eos.Message) error {
	tx, err := p.E.Driver.Begin(ctx)
	if err != nil {
		return err
	}
	defer p.E.Driver.Rollback(ctx, tx)
	var fresh []string
	if p.sqlite() {
		b := make([]byte, 0, 32*len(ms))
		b = append(b, '[')
		for i, m := range ms {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendJSONString(b, m.ID)
		}
		fresh, err = p.E.Strings(ctx, tx, sqliteSeenSQL, string(append(b, ']')))
	} else {
		ids := make([]string, len(ms))
		for i, m := range ms {
			ids[i] = m.ID
		}
		fresh, err = p.E.Strings(ctx, tx, pgSeenSQL, ids)
	}
	if err != nil {
		return err
	}
	apply := ms
	if len(fresh) < len(ms) {
		isNew := make(map[string]bool, len(fresh))
		for _, id := range fresh {
			isNew[id] = true
		}
		apply = make([]eos.Message, 0, len(fresh))
		for _, m := range ms {
			if isNew[m.ID] {
				apply = append(apply, m)
				delete(isNew, m.ID)
			}
		}
	}
	if err := p.ApplyBatch(ctx, tx, apply); err != nil {
		return err
	}
	return p.E.Driver.Commit(ctx, tx)
}

// PlainBatch applies ms with ApplyBatch in one transaction, without any
// claim: at-least-once.
func (p Payments[TTx]) PlainBatch(ctx context.Context, ms []eos.Message) error {
	tx, err := p.E.Driver.Begin(ctx)
	if err != nil {
		return err
	}
	defer p.E.Driver.Rollback(ctx, tx)
	if err := p.ApplyBatch(ctx, tx, ms); err != nil {
		return err
	}
	return p.E.Driver.Commit(ctx, tx)
}

// CheckLedger fails t unless the ledger holds n rows of n distinct
// messages and the balances of the accounts (each created with balance)
// sum to what the ledger leaves: every message applied once, none twice.
func (p Payments[TTx]) CheckLedger(t testing.TB, n int, accounts int, balance int64) {
	t.Helper()
	if got := p.E.Int(t, "SELECT count(*) FROM ledger"); got != int64(n) {
		t.Errorf("ledger has %d rows, want %d", got, n)
	}
	if got := p.E.Int(t, "SELECT count(DISTINCT msg_id) FROM ledger"); got != int64(n) {
		t.Errorf("ledger has %d distinct messages, want %d", got, n)
	}
	debited := p.E.Int(t, "SELECT coalesce(sum(amount), 0) FROM ledger")
	if total := p.E.Int(t, "SELECT sum(balance) FROM accounts"); total != int64(accounts)*balance-debited {
		t.Errorf("balances sum to %d, want %d", total, int64(accounts)*balance-debited)
	}
}
