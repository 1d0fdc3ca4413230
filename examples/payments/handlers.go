package payments

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/eoskit/eos"
	"github.com/eoskit/eos/callonce"
	"github.com/eoskit/eos/dedupe"
	"github.com/eoskit/eos/inbox"
	"github.com/eoskit/eos/outbox"
	"github.com/eoskit/eos/tracing"
)

// Consumer names of the scenario's inboxes.
const (
	OrdersConsumer   = "orders"
	PaymentsConsumer = "payments"
)

// OrderHandler applies orders: the inbox handler of the "orders" consumer.
// In the inbox's transaction it debits the account, appends a ledger row
// and enqueues the order's charge in the outbox, so the three commit with
// the claim of the order's id or not at all.
type OrderHandler struct {
	ob     *outbox.Outbox[*sql.Tx]
	topic  string
	now    func() time.Time
	debit  *sql.Stmt
	ledger *sql.Stmt
}

// NewOrderHandler prepares the handler's statements on s. Charges are
// enqueued on chargeTopic (the relay's publish subject). Close releases the
// statements.
func NewOrderHandler(ctx context.Context, s Store, ob *outbox.Outbox[*sql.Tx], chargeTopic string) (*OrderHandler, error) {
	if err := s.Validate(); err != nil {
		return nil, err
	}
	if ob == nil {
		return nil, errors.New("payments: NewOrderHandler: nil outbox")
	}
	if err := outbox.CheckTopic(chargeTopic); err != nil {
		return nil, fmt.Errorf("payments: charge topic: %w", err)
	}
	h := &OrderHandler{ob: ob, topic: chargeTopic, now: time.Now}
	var err error
	if h.debit, err = s.DB.PrepareContext(ctx, "UPDATE "+s.table("accounts")+" SET balance = balance - $1 WHERE id = $2"); err != nil {
		return nil, fmt.Errorf("payments: prepare debit: %w", err)
	}
	if h.ledger, err = s.DB.PrepareContext(ctx, "INSERT INTO "+s.table("ledger")+
		" (order_id, account, amount, created_us, applied_us) VALUES ($1, $2, $3, $4, $5)"); err != nil {
		h.debit.Close()
		return nil, fmt.Errorf("payments: prepare ledger: %w", err)
	}
	return h, nil
}

// Close releases the prepared statements.
func (h *OrderHandler) Close() error { return errors.Join(h.debit.Close(), h.ledger.Close()) }

// Handle is an inbox.Handler[*sql.Tx]. A malformed order, one whose
// order_id is not its message id, or one for an unknown account fails
// permanently (dead-lettered at once); a database error fails this attempt.
//
// The handler continues the order's trace (tracing.ContextFor), if it
// carries one, for its own work and into the charge it enqueues
// (tracing.Inject): the charge's publish and payment are in the order's
// trace.
func (h *OrderHandler) Handle(ctx context.Context, tx *sql.Tx, m eos.Message) error {
	ctx = tracing.ContextFor(ctx, m)
	o, err := ParseOrder(m.Payload)
	if err != nil {
		return inbox.Permanent(err)
	}
	if o.ID != m.ID {
		return inbox.Permanent(&InputError{What: "order", Reason: fmt.Sprintf("order_id %q is not the message id %q", o.ID, m.ID)})
	}
	res, err := tx.StmtContext(ctx, h.debit).ExecContext(ctx, o.Amount, o.Account)
	if err != nil {
		return fmt.Errorf("payments: debit %s: %w", o.Account, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("payments: debit %s: %w", o.Account, err)
	} else if n == 0 {
		return inbox.Permanent(&InputError{What: "order", Reason: fmt.Sprintf("unknown account %q", o.Account)})
	}
	now := h.now()
	created := m.CreatedAt
	if created.IsZero() {
		created = now
	}
	if _, err := tx.StmtContext(ctx, h.ledger).ExecContext(ctx, o.ID, o.Account, o.Amount, created.UnixMicro(), now.UnixMicro()); err != nil {
		return fmt.Errorf("payments: ledger %s: %w", o.ID, err)
	}
	payload, err := json.Marshal(o.Charge())
	if err != nil {
		return fmt.Errorf("payments: charge %s: %w", o.ID, err)
	}
	// The charge keeps the order's creation time, so the payment side can
	// measure from the order, end to end.
	charge := eos.Message{ID: ChargeID(o.ID), Key: o.Account, Payload: payload, CreatedAt: created, Headers: tracing.Inject(ctx, nil)}
	if err := h.ob.Enqueue(ctx, tx, h.topic, charge); err != nil {
		return fmt.Errorf("payments: enqueue charge %s: %w", o.ID, err)
	}
	return nil
}

// ChargeScope is the dedupe scope of the payment worker's provider calls.
const ChargeScope = "payments/charges"

// PaymentHandler charges applied orders at the provider: the stage and the
// inbox handler of the "payments" consumer.
//
// The charge is not made in the handler. Before the inbox's transaction,
// the stage (Source, or Prepare before Processor.Process) makes each
// charge's call through a callonce.Caller: claimed under the charge's
// message id, sent with that id as Idempotency-Key, retried with the same
// key while its outcome is unknown, and recorded with the provider's
// answer. Then the handler, in the inbox's transaction, records the
// recorded answer (the provider's charge id) in the payments table. A
// redelivery, or a batch the inbox redoes, finds the answer recorded and
// does not call the provider again.
type PaymentHandler struct {
	client *ProviderClient
	stage  *callonce.Stage
	now    func() time.Time
	record *sql.Stmt
}

// NewPaymentHandler prepares the handler's statement on s; calls makes the
// provider calls (its store: dedupe.NewSQL over the same database is the
// natural choice).
func NewPaymentHandler(ctx context.Context, s Store, client *ProviderClient, calls *callonce.Caller) (*PaymentHandler, error) {
	if err := s.Validate(); err != nil {
		return nil, err
	}
	if client == nil || calls == nil {
		return nil, errors.New("payments: NewPaymentHandler: nil client or caller")
	}
	st, err := s.DB.PrepareContext(ctx, "INSERT INTO "+s.table("payments")+
		" (order_id, charge_id, account, amount, created_us, paid_us) VALUES ($1, $2, $3, $4, $5, $6)")
	if err != nil {
		return nil, fmt.Errorf("payments: prepare payment record: %w", err)
	}
	h := &PaymentHandler{client: client, now: time.Now, record: st}
	h.stage = callonce.NewStage(calls, h.plan)
	return h, nil
}

// Close releases the prepared statement.
func (h *PaymentHandler) Close() error { return h.record.Close() }

// Source wraps the payments inbox's source: the charges of each batch are
// made before the batch is handed to the inbox.
func (h *PaymentHandler) Source(src inbox.Source) inbox.Source { return h.stage.Source(src) }

// Prepare makes the charges of ds before they are passed to
// Processor.Process, and returns ds.
func (h *PaymentHandler) Prepare(ctx context.Context, ds []inbox.Delivery) []inbox.Delivery {
	return h.stage.Prepare(ctx, ds)
}

// plan is the provider call of a charge message; none for a malformed one,
// which Handle dead-letters.
func (h *PaymentHandler) plan(m eos.Message) (callonce.Call, bool) {
	c, err := ParseCharge(m.Payload)
	if err != nil || m.ID != ChargeID(c.OrderID) {
		return callonce.Call{}, false
	}
	canon, err := json.Marshal(c)
	if err != nil {
		return callonce.Call{}, false
	}
	sum := sha256.Sum256(canon)
	return callonce.Call{Scope: ChargeScope, Key: m.ID, Fingerprint: sum[:], Func: h.charge(c)}, true
}

// charge classifies the provider's answers: a charge (replayed or not) is
// Done; a 4xx other than 408 and 429 is Failed; anything else (a network
// error, a timeout, a 5xx) may have charged, and is Unknown.
func (h *PaymentHandler) charge(c Charge) callonce.Func {
	return func(ctx context.Context, key string) callonce.Outcome {
		res, err := h.client.ChargeWithKey(ctx, key, c)
		var pe *ProviderError
		switch {
		case err == nil:
			v, err := json.Marshal(res)
			if err != nil {
				return callonce.Unknown(err)
			}
			return callonce.Done(v)
		case errors.As(err, &pe) && !pe.Temporary():
			return callonce.Failed(nil, pe.Error())
		}
		return callonce.Unknown(err)
	}
}

// Handle is an inbox.Handler[*sql.Tx]. A malformed charge, or one the
// provider refused (4xx), fails permanently; a charge whose call has no
// definitive answer yet (unknown outcome, in progress elsewhere, a store
// failure) fails this attempt, to be made again with the same key.
func (h *PaymentHandler) Handle(ctx context.Context, tx *sql.Tx, m eos.Message) error {
	c, err := ParseCharge(m.Payload)
	if err != nil {
		return inbox.Permanent(err)
	}
	if want := ChargeID(c.OrderID); m.ID != want {
		return inbox.Permanent(&InputError{What: "charge", Reason: fmt.Sprintf("message id %q is not %q", m.ID, want)})
	}
	r, err := h.stage.Result(m)
	switch {
	case errors.Is(err, callonce.ErrMismatch), errors.Is(err, dedupe.ErrResultTooLarge):
		return inbox.Permanent(err)
	case err != nil:
		return fmt.Errorf("payments: charge %s: %w", c.OrderID, err)
	case r.Status != callonce.Succeeded:
		return inbox.Permanent(r.Err())
	}
	var res ChargeResult
	if err := json.Unmarshal(r.Value, &res); err != nil || res.ChargeID == "" {
		return inbox.Permanent(fmt.Errorf("payments: charge %s: recorded answer %q unreadable", c.OrderID, r.Value))
	}
	now := h.now()
	created := m.CreatedAt
	if created.IsZero() {
		created = now
	}
	if _, err := tx.StmtContext(ctx, h.record).ExecContext(ctx, c.OrderID, res.ChargeID, c.Account, c.Amount, created.UnixMicro(), now.UnixMicro()); err != nil {
		return fmt.Errorf("payments: record payment %s: %w", c.OrderID, err)
	}
	return nil
}
