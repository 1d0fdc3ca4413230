package outbox

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/eoskit/eos"
	"github.com/eoskit/eos/driver"
	"github.com/eoskit/eos/internal/backoff"
	"github.com/eoskit/eos/internal/config"
	"github.com/eoskit/eos/internal/storable"
)

// Envelope is one message handed to a Publisher.
type Envelope struct {
	Topic string
	// Message.ID must be used as the broker's dedupe id. Message.Subject
	// is Topic.
	eos.Message
}

// Publisher sends messages to a broker. A transport implements it.
type Publisher interface {
	// Publish sends msgs in order, each with its ID as the broker's dedupe
	// id, and returns how many of them, counted from the first, the broker
	// acknowledged. It returns an error when that is fewer than len(msgs):
	// the error is about msgs[acked]. An error wrapping ErrUnpublishable
	// says that no retry can publish msgs[acked]; a *PublishError can also
	// name later messages the broker acknowledged all the same.
	Publish(ctx context.Context, msgs []Envelope) (acked int, err error)
}

// ErrUnpublishable marks a publish failure that every retry would meet
// again, such as a destination the broker has nowhere to store, or a message
// larger than it accepts. A Publisher wraps it only when it is sure: the
// relay parks the row (see [Outbox.ParkedRows]) instead of retrying it, and
// its key waits behind it until an operator acts. A failure that may pass
// (a timeout, a lost connection, a broker restarting) must not wrap it.
var ErrUnpublishable = errors.New("outbox: unpublishable message")

// PublishError is a failed Publish's detailed report.
type PublishError struct {
	// Err is why msgs[acked] failed; it wraps ErrUnpublishable when no
	// retry can help.
	Err error
	// AlsoAcked are the indexes after acked, ascending, of messages the
	// broker acknowledged all the same (they were in flight when msgs[acked]
	// failed). The relay marks them sent at once, so that no retry stores
	// them again once the broker's dedupe window has passed.
	AlsoAcked []int
}

func (e *PublishError) Error() string { return e.Err.Error() }

func (e *PublishError) Unwrap() error { return e.Err }

// RowError is a failure about one outbox row, as the relay's ErrorHook gets
// it for op "outbox.park" and, when the failure is about a row, for op
// "outbox.publish": hooks tell topics apart by its fields, never by the
// text. Err is the publisher's error (or the topic check's).
type RowError struct {
	Seq   int64
	ID    string
	Topic string
	Err   error
}

func (e *RowError) Error() string {
	return fmt.Sprintf("row %d (id %q, topic %q): %v", e.Seq, e.ID, e.Topic, e.Err)
}

func (e *RowError) Unwrap() error { return e.Err }

// rowError returns err about row.
func rowError(row driver.OutboxRow, err error) *RowError {
	return &RowError{Seq: row.Seq, ID: row.ID, Topic: row.Topic, Err: err}
}

// FailAfterPublishBeforeMark is the relay's failpoint between the broker's
// ack and the mark-as-sent.
const FailAfterPublishBeforeMark = "relay.after_publish_before_mark"

// FailpointNames returns the names of the failpoints the Relay evaluates,
// for failpoint.Parse.
func FailpointNames() []string { return []string{FailAfterPublishBeforeMark} }

// Defaults of [RelayConfig].
const (
	DefaultBatchSize       = 256
	DefaultPollInterval    = time.Second
	DefaultRetryBackoff    = 100 * time.Millisecond
	DefaultMaxRetryBackoff = 10 * time.Second
)

// RelayConfig configures a Relay. [RelayConfig.WithDefaults] applies the
// defaults (NewRelay does).
type RelayConfig struct {
	// BatchSize is the most rows claimed and published at once. Default 256.
	BatchSize int
	// PollInterval bounds how long an enqueued row waits if its wakeup is
	// missed. Default 1s.
	PollInterval time.Duration
	// DeleteSent deletes rows once sent instead of marking them; marked rows
	// are removed later by the compactor. Default false.
	DeleteSent bool
	// RetryBackoff bounds the first wait after a failure; the bound doubles
	// up to MaxRetryBackoff, and each wait is drawn from [0, bound] (full
	// jitter), so that relays failing on one outage do not retry in
	// lockstep. Defaults 100ms and 10s.
	RetryBackoff, MaxRetryBackoff time.Duration
	// Logger receives the relay's logs. Default slog.Default().
	Logger *slog.Logger
	// Hooks are told about each forwarded batch and failure; see [Hook].
	Hooks []Hook
	// Test holds the clock and the failpoints (FailAfterPublishBeforeMark),
	// for tests and fault injection.
	Test eos.TestConfig
}

// WithDefaults returns a copy of c with the defaults applied, or a
// *eos.ConfigError naming the first invalid field.
func (c RelayConfig) WithDefaults() (RelayConfig, error) {
	if err := config.Int("outbox.RelayConfig.BatchSize", &c.BatchSize, DefaultBatchSize, 10000); err != nil {
		return c, err
	}
	if err := config.Durations("outbox.RelayConfig.",
		config.DurationField{Name: "PollInterval", P: &c.PollInterval, Default: DefaultPollInterval},
		config.DurationField{Name: "RetryBackoff", P: &c.RetryBackoff, Default: DefaultRetryBackoff},
		config.DurationField{Name: "MaxRetryBackoff", P: &c.MaxRetryBackoff, Default: DefaultMaxRetryBackoff},
	); err != nil {
		return c, err
	}
	if _, err := newHooks("outbox.RelayConfig.Hooks", c.Hooks); err != nil {
		return c, err
	}
	c.Test = c.Test.WithDefaults()
	c.Logger = config.Logger(c.Logger)
	return c, nil
}

// Relay forwards committed outbox rows to a Publisher.
type Relay[TTx any] struct {
	drv   driver.Driver[TTx]
	pub   Publisher
	cfg   RelayConfig
	hooks hooks
}

// NewRelay returns a relay from drv's outbox to pub.
func NewRelay[TTx any](drv driver.Driver[TTx], pub Publisher, cfg RelayConfig) (*Relay[TTx], error) {
	if drv == nil || pub == nil {
		return nil, &eos.ConfigError{Field: "outbox.NewRelay", Reason: "nil driver or publisher"}
	}
	cfg, err := cfg.WithDefaults()
	if err != nil {
		return nil, err
	}
	hs, _ := newHooks("", cfg.Hooks) // checked by WithDefaults
	return &Relay[TTx]{drv: drv, pub: pub, cfg: cfg, hooks: hs}, nil
}

// Run forwards rows until ctx ends. Failures are logged and retried with
// backoff; Run returns only ctx's error.
func (r *Relay[TTx]) Run(ctx context.Context) error {
	wake, stop, err := r.drv.OutboxWakeup(ctx)
	if err != nil {
		r.cfg.Logger.WarnContext(ctx, "eos relay: no enqueue wakeups, polling only", "error", err, "poll", r.cfg.PollInterval)
		wake, stop = nil, func() {}
	}
	defer stop()
	poll := time.NewTimer(r.cfg.PollInterval)
	defer poll.Stop()
	policy := backoff.Policy{Initial: r.cfg.RetryBackoff, Max: r.cfg.MaxRetryBackoff}
	failures := 0
	for {
		_, claimed, err := r.forward(ctx)
		var wait time.Duration
		switch {
		case ctx.Err() != nil:
			return ctx.Err()
		case err != nil:
			failures++
			wait = policy.Wait(failures)
			r.cfg.Logger.ErrorContext(ctx, "eos relay: forwarding failed, retrying", "error", err, "retry_in", wait)
		case claimed == r.cfg.BatchSize:
			failures = 0
			continue // more may be waiting
		default:
			failures = 0
			wait = r.cfg.PollInterval
		}
		if !poll.Stop() {
			select {
			case <-poll.C:
			default:
			}
		}
		poll.Reset(wait)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-poll.C:
		case <-wake:
			if err != nil { // a wakeup does not cut a failure's backoff short
				select {
				case <-ctx.Done():
					return ctx.Err()
				case <-poll.C:
				}
			}
		}
	}
}

// Forward claims one batch, publishes it, and marks what the broker
// acknowledged as sent. It returns how many rows it forwarded.
//
// A row the Publisher reports as unpublishable (ErrUnpublishable), or whose
// topic is not valid, is parked with its error, and the rows of its key
// behind it stay unsent; the batch's other rows are published at once, in
// the same pass. Any other failure ends the pass: the rows acknowledged so
// far are marked sent and the rest wait for a retry.
func (r *Relay[TTx]) Forward(ctx context.Context) (int, error) {
	sent, _, err := r.forward(ctx)
	return sent, err
}

// forward is Forward that also reports how many rows it claimed.
func (r *Relay[TTx]) forward(ctx context.Context) (sent, claimed int, err error) {
	b, err := r.drv.OutboxClaim(ctx, r.cfg.BatchSize)
	if err != nil {
		return 0, 0, r.fail(ctx, "outbox.claim", err)
	}
	rows := b.Rows()
	if len(rows) == 0 {
		return 0, 0, b.Abort(ctx)
	}
	p := r.publish(ctx, rows)
	if err := r.cfg.Test.Failpoints.Eval(FailAfterPublishBeforeMark); err != nil {
		b.Abort(ctx)
		return 0, len(rows), err
	}
	now := r.cfg.Test.Now()
	parked := make([]driver.OutboxParking, len(p.parked))
	for i, pr := range p.parked {
		parked[i] = driver.OutboxParking{Seq: pr.row.Seq, Error: storable.Text(pr.err.Error(), MaxParkedErrorLen)}
	}
	if err := b.Complete(ctx, driver.OutboxOutcome{Sent: driver.Seqs(p.sent), Parked: parked, At: now, DeleteSent: r.cfg.DeleteSent}); err != nil {
		return 0, len(rows), r.fail(ctx, "outbox.mark_sent", err)
	}
	for _, pr := range p.parked {
		r.cfg.Logger.ErrorContext(ctx, "eos relay: parked an unpublishable row; its key waits until the row is requeued or discarded",
			"seq", pr.row.Seq, "id", pr.row.ID, "topic", pr.row.Topic, "key", pr.row.Key, "error", pr.err)
		r.hooks.onError(ctx, "outbox.park", rowError(pr.row, pr.err))
	}
	if len(p.sent) > 0 {
		r.hooks.onForwarded(ctx, p.sent, now)
	}
	if p.err != nil {
		return len(p.sent), len(rows), r.fail(ctx, "outbox.publish", p.err)
	}
	return len(p.sent), len(rows), nil
}

// MaxParkedErrorLen bounds the error text stored with a parked row, in
// bytes (made storable: valid UTF-8, no NUL, cut on a rune boundary).
const MaxParkedErrorLen = storable.MaxErrorLen

// pass is what one relay pass did with its batch.
type pass struct {
	sent   []driver.OutboxRow // in seq order
	parked []parkedRow
	err    error // the failure that ended the pass, if any
}

type parkedRow struct {
	row driver.OutboxRow
	err error
}

// publish publishes rows in order. After an unpublishable row it parks the
// row, blocks its key (a row with key "" blocks nothing) and publishes the
// remaining rows of other keys at once: they were likely in flight already,
// and the broker's dedupe drops those copies only within its window.
func (r *Relay[TTx]) publish(ctx context.Context, rows []driver.OutboxRow) pass {
	var p pass
	blocked := map[string]bool{}
	park := func(row driver.OutboxRow, err error) {
		p.parked = append(p.parked, parkedRow{row, err})
		if row.Key != "" {
			blocked[row.Key] = true
		}
	}
	pending := make([]driver.OutboxRow, 0, len(rows))
	for _, row := range rows {
		if blocked[row.Key] {
			continue
		}
		// A topic Enqueue refuses now may come from an older version.
		if err := CheckTopic(row.Topic); err != nil {
			park(row, fmt.Errorf("%w: %w", ErrUnpublishable, err))
			continue
		}
		pending = append(pending, row)
	}
	for len(pending) > 0 {
		acked, err := r.pub.Publish(ctx, envelopes(pending))
		if acked < 0 || acked > len(pending) {
			p.err = fmt.Errorf("publisher reported %d acknowledged of %d (error: %v)", acked, len(pending), err)
			break
		}
		p.sent = append(p.sent, pending[:acked]...)
		if acked == len(pending) {
			p.err = err // nil, or a late error about nothing left
			break
		}
		if err == nil {
			p.err = fmt.Errorf("publisher acknowledged %d of %d without an error", acked, len(pending))
			break
		}
		also, aerr := alsoAcked(err, acked, len(pending))
		if aerr != nil {
			p.err = aerr
			break
		}
		for _, j := range also {
			p.sent = append(p.sent, pending[j])
		}
		if !errors.Is(err, ErrUnpublishable) {
			p.err = rowError(pending[acked], err)
			break
		}
		park(pending[acked], err)
		next := make([]driver.OutboxRow, 0, len(pending)-acked-1)
		for j := acked + 1; j < len(pending); j++ {
			if len(also) > 0 && also[0] == j {
				also = also[1:]
				continue
			}
			if !blocked[pending[j].Key] {
				next = append(next, pending[j])
			}
		}
		pending = next
	}
	slices.SortFunc(p.sent, func(a, b driver.OutboxRow) int { return cmp.Compare(a.Seq, b.Seq) })
	return p
}

// alsoAcked returns the indexes a *PublishError in err names as
// acknowledged after the failed msgs[acked], checked against the contract.
func alsoAcked(err error, acked, n int) ([]int, error) {
	var pe *PublishError
	if !errors.As(err, &pe) {
		return nil, nil
	}
	last := acked
	for _, j := range pe.AlsoAcked {
		if j <= last || j >= n {
			return nil, fmt.Errorf("publisher reported %v also acknowledged after %d of %d (error: %v)", pe.AlsoAcked, acked, n, err)
		}
		last = j
	}
	return pe.AlsoAcked, nil
}

func envelopes(rows []driver.OutboxRow) []Envelope {
	envs := make([]Envelope, len(rows))
	for i, row := range rows {
		envs[i] = Envelope{Topic: row.Topic, Message: eos.Message{ID: row.ID, Key: row.Key, Payload: row.Payload, Headers: row.Headers,
			CreatedAt: row.CreatedAt, Subject: row.Topic}}
	}
	return envs
}

// fail reports err; failures of the store are *eos.StoreError, those of the
// broker wrap the publisher's error.
func (r *Relay[TTx]) fail(ctx context.Context, op string, err error) error {
	r.hooks.onError(ctx, op, err)
	if op == "outbox.publish" {
		return fmt.Errorf("eos relay: publish: %w", err)
	}
	return &eos.StoreError{Op: op, Err: err}
}
