package payments

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/eoskit/eos"
	"github.com/eoskit/eos/inbox"
	"github.com/eoskit/eos/outbox"
	"github.com/eoskit/eos/tracing"
)

// OrderBatchHandler applies orders set-based: the inbox.BatchHandler of
// the "orders" consumer (inbox.NewBatch). Its effects are OrderHandler's —
// a debit, a ledger row and an outbox charge per order, committed with the
// claims — and so are its permanent failures, but a batch of any size costs
// four statements: which accounts exist, the ledger rows, the debits summed
// per account, the charges.
//
// Each charge continues its order's trace, if the order carries one: the
// handler has one ctx for the whole batch, so it derives the charge's
// trace headers from each message (tracing.ContextFor, tracing.Inject).
//
// On PostgreSQL the first statement locks the batch's accounts in account
// order (SELECT … ORDER BY id FOR UPDATE), so concurrent batches wait for
// each other instead of deadlocking, whatever order their messages come in.
type OrderBatchHandler struct {
	s     Store
	ob    *outbox.Outbox[*sql.Tx]
	topic string
	now   func() time.Time
	// PostgreSQL's statements, which take the batch as arrays: one
	// parameter per column, whatever the batch's size. SQLite's are built
	// per batch as VALUES lists (see sqliteMaxParams).
	lock, ledger, debit *sql.Stmt
}

// sqliteMaxParams is the most parameters one statement of SQLite (as
// modernc.org/sqlite builds it) binds: a SQLite statement of the batch
// handler covers up to sqliteMaxParams/columns rows, and a batch larger
// than that (inbox.Config.MaxBatch allows 8000) takes one statement more
// per such number of rows.
const sqliteMaxParams = 32766

// NewOrderBatchHandler prepares the handler's statements on s. Charges are
// enqueued on chargeTopic. Close releases the statements.
func NewOrderBatchHandler(ctx context.Context, s Store, ob *outbox.Outbox[*sql.Tx], chargeTopic string) (*OrderBatchHandler, error) {
	if err := s.Validate(); err != nil {
		return nil, err
	}
	if ob == nil {
		return nil, errors.New("payments: NewOrderBatchHandler: nil outbox")
	}
	if err := outbox.CheckTopic(chargeTopic); err != nil {
		return nil, fmt.Errorf("payments: charge topic: %w", err)
	}
	h := &OrderBatchHandler{s: s, ob: ob, topic: chargeTopic, now: time.Now}
	if s.Dialect != Postgres {
		return h, nil
	}
	for _, st := range []struct {
		to   **sql.Stmt
		what string
		q    string
	}{
		{&h.lock, "lock accounts", "SELECT id FROM " + s.table("accounts") + " WHERE id = ANY($1::text[]) ORDER BY id FOR UPDATE"},
		{&h.ledger, "ledger", "INSERT INTO " + s.table("ledger") + " (order_id, account, amount, created_us, applied_us)" +
			" SELECT o, a, m, c, $5 FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[])" +
			" WITH ORDINALITY AS u(o, a, m, c, n) ORDER BY n"},
		{&h.debit, "debit", "UPDATE " + s.table("accounts") + " AS a SET balance = a.balance - u.total" +
			" FROM unnest($1::text[], $2::bigint[]) AS u(id, total) WHERE a.id = u.id"},
	} {
		var err error
		if *st.to, err = s.DB.PrepareContext(ctx, st.q); err != nil {
			h.Close()
			return nil, fmt.Errorf("payments: prepare %s: %w", st.what, err)
		}
	}
	return h, nil
}

// Close releases the prepared statements.
func (h *OrderBatchHandler) Close() error {
	var errs []error
	for _, st := range []*sql.Stmt{h.lock, h.ledger, h.debit} {
		if st != nil {
			errs = append(errs, st.Close())
		}
	}
	return errors.Join(errs...)
}

// batchOrder is an order of the batch that passed validation.
type batchOrder struct {
	Order
	created time.Time
	trace   map[string]string // the charge's trace headers; nil when the order has none
}

// Handle is an inbox.BatchHandler[*sql.Tx]. It rejects (Batch.Reject) what
// OrderHandler fails permanently — a malformed order, an order_id that is
// not its message id, an unknown account — and writes the effects of the
// rest; a database error fails the call (the inbox then bisects the batch).
// It keeps nothing between calls: the inbox may call it several times in
// one transaction, on parts of a batch.
func (h *OrderBatchHandler) Handle(ctx context.Context, tx *sql.Tx, b *inbox.Batch) error {
	now := h.now()
	orders := make([]batchOrder, 0, len(b.Messages))
	at := make([]int, 0, len(b.Messages)) // orders[j] is b.Messages[at[j]]
	for i, m := range b.Messages {
		o, err := ParseOrder(m.Payload)
		if err != nil {
			b.Reject(i, err)
			continue
		}
		if o.ID != m.ID {
			b.Reject(i, &InputError{What: "order", Reason: fmt.Sprintf("order_id %q is not the message id %q", o.ID, m.ID)})
			continue
		}
		created := m.CreatedAt
		if created.IsZero() {
			created = now
		}
		// The charge continues the order's trace, if it carries one.
		trace := tracing.Inject(tracing.ContextFor(ctx, m), nil)
		orders = append(orders, batchOrder{Order: o, created: created, trace: trace})
		at = append(at, i)
	}
	if len(orders) == 0 {
		return nil
	}
	totals := map[string]int64{}
	for _, o := range orders {
		totals[o.Account] += o.Amount
	}
	known, err := h.lockAccounts(ctx, tx, slices.Sorted(maps.Keys(totals)))
	if err != nil {
		return fmt.Errorf("payments: accounts: %w", err)
	}
	kept := orders[:0]
	for j, o := range orders {
		if !known[o.Account] {
			b.Reject(at[j], &InputError{What: "order", Reason: fmt.Sprintf("unknown account %q", o.Account)})
			delete(totals, o.Account)
			continue
		}
		kept = append(kept, o)
	}
	if len(kept) == 0 {
		return nil
	}
	if err := h.insertLedger(ctx, tx, kept, now.UnixMicro()); err != nil {
		return fmt.Errorf("payments: ledger: %w", err)
	}
	if err := h.debitAll(ctx, tx, totals); err != nil {
		return fmt.Errorf("payments: debit: %w", err)
	}
	charges := make([]eos.Message, len(kept))
	for j, o := range kept {
		payload, err := json.Marshal(o.Charge())
		if err != nil {
			return fmt.Errorf("payments: charge %s: %w", o.ID, err)
		}
		charges[j] = eos.Message{ID: ChargeID(o.ID), Key: o.Account, Payload: payload, CreatedAt: o.created, Headers: o.trace}
	}
	if err := h.ob.Enqueue(ctx, tx, h.topic, charges...); err != nil {
		return fmt.Errorf("payments: enqueue %d charges: %w", len(charges), err)
	}
	return nil
}

// lockAccounts returns which of accounts (sorted) exist; on PostgreSQL it
// locks them, in that order.
func (h *OrderBatchHandler) lockAccounts(ctx context.Context, tx *sql.Tx, accounts []string) (map[string]bool, error) {
	known := make(map[string]bool, len(accounts))
	scan := func(rows *sql.Rows, err error) error {
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				return err
			}
			known[id] = true
		}
		return rows.Err()
	}
	if h.s.Dialect == Postgres {
		return known, scan(tx.StmtContext(ctx, h.lock).QueryContext(ctx, accounts))
	}
	return known, chunks(len(accounts), 1, func(from, to int) error {
		q := "SELECT id FROM " + h.s.table("accounts") + " WHERE id IN (" + placeholders(to-from, 1) + ")"
		args := make([]any, 0, to-from)
		for _, a := range accounts[from:to] {
			args = append(args, a)
		}
		return scan(tx.QueryContext(ctx, q, args...))
	})
}

// insertLedger appends the orders' ledger rows, in the orders' order.
func (h *OrderBatchHandler) insertLedger(ctx context.Context, tx *sql.Tx, orders []batchOrder, appliedUS int64) error {
	if h.s.Dialect == Postgres {
		ids, accounts, amounts, created := make([]string, len(orders)), make([]string, len(orders)), make([]int64, len(orders)), make([]int64, len(orders))
		for j, o := range orders {
			ids[j], accounts[j], amounts[j], created[j] = o.ID, o.Account, o.Amount, o.created.UnixMicro()
		}
		_, err := tx.StmtContext(ctx, h.ledger).ExecContext(ctx, ids, accounts, amounts, created, appliedUS)
		return err
	}
	const cols = 5
	return chunks(len(orders), cols, func(from, to int) error {
		q := "INSERT INTO " + h.s.table("ledger") + " (order_id, account, amount, created_us, applied_us) VALUES " + placeholders(to-from, cols)
		args := make([]any, 0, (to-from)*cols)
		for _, o := range orders[from:to] {
			args = append(args, o.ID, o.Account, o.Amount, o.created.UnixMicro(), appliedUS)
		}
		_, err := tx.ExecContext(ctx, q, args...)
		return err
	})
}

// debitAll debits each account by its total, in account order.
func (h *OrderBatchHandler) debitAll(ctx context.Context, tx *sql.Tx, totals map[string]int64) error {
	accounts := slices.Sorted(maps.Keys(totals))
	sums := make([]int64, len(accounts))
	for k, a := range accounts {
		sums[k] = totals[a]
	}
	if h.s.Dialect == Postgres {
		_, err := tx.StmtContext(ctx, h.debit).ExecContext(ctx, accounts, sums)
		return err
	}
	const cols = 2
	return chunks(len(accounts), cols, func(from, to int) error {
		t := h.s.table("accounts")
		q := "UPDATE " + t + " SET balance = balance - d.column2 FROM (VALUES " + placeholders(to-from, cols) +
			") AS d WHERE " + t + ".id = d.column1"
		args := make([]any, 0, (to-from)*cols)
		for k := from; k < to; k++ {
			args = append(args, accounts[k], sums[k])
		}
		_, err := tx.ExecContext(ctx, q, args...)
		return err
	})
}

// chunks calls f on consecutive ranges of n rows, each small enough for one
// SQLite statement of cols parameters per row.
func chunks(n, cols int, f func(from, to int) error) error {
	per := sqliteMaxParams / cols
	for from := 0; from < n; from += per {
		if err := f(from, min(from+per, n)); err != nil {
			return err
		}
	}
	return nil
}

// placeholders returns rows tuples of cols placeholders, "(?, ?), (?, ?)",
// or a plain list "?, ?" when cols is 1. SQLite's statements here use
// "?", not "$n": SQLite looks a numbered name up among those of the
// statement, which costs a statement of thousands of parameters more
// than the rest of its preparation.
func placeholders(rows, cols int) string {
	tuple := strings.Repeat("?, ", cols-1) + "?"
	if cols > 1 {
		tuple = "(" + tuple + ")"
	}
	return strings.Repeat(tuple+", ", rows-1) + tuple
}
