package check

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/eoskit/eos"
	"github.com/eoskit/eos/driver"
	"github.com/eoskit/eos/examples/payments"
	"github.com/eoskit/eos/inbox"
	"github.com/eoskit/eos/outbox"
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

// StreamIDs reads every message of stream and counts them by message id
// (Nats-Msg-Id); messages without one count under "".
func StreamIDs(ctx context.Context, js jetstream.JetStream, stream string) (map[string]int, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	st, err := js.Stream(ctx, stream)
	if err != nil {
		return nil, fmt.Errorf("stream %s: %w", stream, err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		return nil, fmt.Errorf("stream %s: %w", stream, err)
	}
	ids := map[string]int{}
	last := info.State.LastSeq
	if info.State.Msgs == 0 {
		return ids, nil
	}
	cons, err := st.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	if err != nil {
		return nil, fmt.Errorf("stream %s: %w", stream, err)
	}
	for {
		batch, err := cons.Fetch(1000, jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			return nil, fmt.Errorf("stream %s: %w", stream, err)
		}
		n := 0
		for m := range batch.Messages() {
			n++
			ids[m.Headers().Get(jetstream.MsgIDHeader)]++
			md, err := m.Metadata()
			if err != nil {
				return nil, fmt.Errorf("stream %s: %w", stream, err)
			}
			if md.Sequence.Stream >= last {
				return ids, nil
			}
		}
		if err := batch.Error(); err != nil {
			return nil, fmt.Errorf("stream %s: %w", stream, err)
		}
		if n == 0 {
			return nil, fmt.Errorf("stream %s: read stopped before sequence %d", stream, last)
		}
	}
}
