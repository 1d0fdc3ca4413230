package check

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/eoskit/eos"
	"github.com/eoskit/eos/driver"
	"github.com/eoskit/eos/examples/payments"
	"github.com/eoskit/eos/inbox"
	"github.com/eoskit/eos/outbox"
	"github.com/eoskit/eos/reconcile"
)

// Reader reads a scenario's database: the scenario's tables through
// payments.Store, eos's state through eos's admin API.
type Reader struct {
	store   payments.Store
	outbox  *outbox.Outbox[*sql.Tx]
	inboxes map[string]*inbox.Processor[*sql.Tx] // by consumer
}

// errReadOnly is the handler of the Reader's processors, which never run.
var errReadOnly = errors.New("check: a reader's processor handles nothing")

// NewReader returns a reader of the database behind drv and store.
func NewReader(drv driver.Driver[*sql.Tx], store payments.Store) (*Reader, error) {
	r := &Reader{store: store, inboxes: map[string]*inbox.Processor[*sql.Tx]{}}
	var err error
	if r.outbox, err = outbox.New(drv, outbox.Config{}); err != nil {
		return nil, err
	}
	refuse := func(context.Context, *sql.Tx, eos.Message) error { return errReadOnly }
	for _, c := range []string{payments.OrdersConsumer, payments.PaymentsConsumer} {
		if r.inboxes[c], err = inbox.New(drv, refuse, inbox.Config{Consumer: c}); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// Pipeline is a cheap snapshot of how far a run got, for deciding when it
// is done and for a progress display.
type Pipeline struct {
	Applied, Paid int64 // distinct orders with a ledger row, a payment row
	Unsent        int64 // outbox rows not yet forwarded
	DeadLettered  int64 // dead letters of every consumer
}

// Pipeline reads the counts.
func (r *Reader) Pipeline(ctx context.Context) (Pipeline, error) {
	p, err := r.store.Progress(ctx)
	if err != nil {
		return Pipeline{}, err
	}
	out := Pipeline{Applied: p.Applied, Paid: p.Paid}
	st, err := r.outbox.Stats(ctx)
	if err != nil {
		return Pipeline{}, err
	}
	out.Unsent = st.Unsent
	for c, p := range r.inboxes {
		st, err := p.Stats(ctx)
		if err != nil {
			return Pipeline{}, fmt.Errorf("inbox %s: %w", c, err)
		}
		out.DeadLettered += st.DeadLetters
	}
	return out, nil
}

// Store reads the facts of the database.
func (r *Reader) Store(ctx context.Context) (StoreFacts, error) {
	var f StoreFacts
	var err error
	if f.Ledger, err = r.store.Ledger(ctx); err != nil {
		return f, err
	}
	if f.PaymentRows, err = r.store.PaymentRows(ctx); err != nil {
		return f, err
	}
	if f.Balances, err = r.store.Balances(ctx); err != nil {
		return f, err
	}
	st, err := r.outbox.Stats(ctx)
	if err != nil {
		return f, err
	}
	f.Unsent = st.Unsent
	f.Inbox = map[string]InboxFacts{}
	for c, p := range r.inboxes {
		in, err := readInbox(ctx, p)
		if err != nil {
			return f, fmt.Errorf("inbox %s: %w", c, err)
		}
		f.Inbox[c] = in
	}
	return f, nil
}

// deadLetterPage is how many dead letters one read takes.
const deadLetterPage = 500

func readInbox(ctx context.Context, p *inbox.Processor[*sql.Tx]) (InboxFacts, error) {
	var in InboxFacts
	var err error
	if in.Stats, err = p.Stats(ctx); err != nil {
		return in, err
	}
	for after := ""; ; {
		page, err := p.DeadLetters(ctx, after, deadLetterPage)
		if err != nil {
			return in, err
		}
		in.DeadLetters = append(in.DeadLetters, page...)
		if len(page) < deadLetterPage {
			return in, nil
		}
		after = page[len(page)-1].ID
	}
}

// SourceIDs reads every message of src (a JetStream stream, a Kafka
// topic: see package reconcile) and counts them by id; messages without
// one count under "".
func SourceIDs(ctx context.Context, src reconcile.Source) (map[string]int, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	ids := map[string]int{}
	err := src.Scan(ctx, 1000, func(page []reconcile.Entry) error {
		for _, e := range page {
			ids[e.ID]++
		}
		return nil
	})
	return ids, err
}
