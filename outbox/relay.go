package outbox

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/eoskit/eos"
	"github.com/eoskit/eos/driver"
	"github.com/eoskit/eos/failpoint"
	"github.com/eoskit/eos/internal/config"
)

// Envelope is one message handed to a Publisher.
type Envelope struct {
	Topic string
	// Message.ID must be used as the broker's dedupe id.
	eos.Message
}

// Publisher sends messages to a broker. A transport implements it.
type Publisher interface {
	// Publish sends msgs in order, each with its ID as the broker's dedupe
	// id, and returns how many of them, counted from the first, the broker
	// acknowledged. It returns an error when that is fewer than len(msgs).
	Publish(ctx context.Context, msgs []Envelope) (acked int, err error)
}

// FailAfterPublishBeforeMark is the relay's failpoint between the broker's
// ack and the mark-as-sent.
const FailAfterPublishBeforeMark = "relay.after_publish_before_mark"

// RelayConfig configures a Relay. Defaults are applied by [NewRelay].
type RelayConfig struct {
	// BatchSize is the most rows claimed and published at once. Default 256.
	BatchSize int
	// PollInterval bounds how long an enqueued row waits if its wakeup is
	// missed. Default 1s.
	PollInterval time.Duration
	// DeleteSent deletes rows once sent instead of marking them; marked rows
	// are removed later by the compactor. Default false.
	DeleteSent bool
	// RetryBackoff is the first wait after a failure; it doubles up to
	// MaxRetryBackoff. Defaults 100ms and 10s.
	RetryBackoff, MaxRetryBackoff time.Duration
	// Now is the clock. Default time.Now.
	Now func() time.Time
	// Logger receives the relay's logs. Default slog.Default().
	Logger *slog.Logger
	// Observer, if set, is told about each forwarded batch and failure.
	Observer RelayObserver
	// Failpoints, if set, arms fault injection points.
	Failpoints *failpoint.Set
}

// RelayObserver is told what the relay does; methods must not block.
type RelayObserver interface {
	// Forwarded is called after rows were published and marked sent.
	Forwarded(ctx context.Context, rows []driver.OutboxRow, sentAt time.Time)
	// RelayError is called for each failed step (op names it).
	RelayError(ctx context.Context, op string, err error)
}

func (c *RelayConfig) applyDefaults() error {
	if err := config.Int("outbox.RelayConfig.BatchSize", &c.BatchSize, 256, 10000); err != nil {
		return err
	}
	if err := config.Durations("outbox.RelayConfig.",
		config.DurationField{Name: "PollInterval", P: &c.PollInterval, Default: time.Second},
		config.DurationField{Name: "RetryBackoff", P: &c.RetryBackoff, Default: 100 * time.Millisecond},
		config.DurationField{Name: "MaxRetryBackoff", P: &c.MaxRetryBackoff, Default: 10 * time.Second},
	); err != nil {
		return err
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return nil
}

// Relay forwards committed outbox rows to a Publisher.
type Relay[TTx any] struct {
	drv driver.Driver[TTx]
	pub Publisher
	cfg RelayConfig
}

// NewRelay returns a relay from drv's outbox to pub.
func NewRelay[TTx any](drv driver.Driver[TTx], pub Publisher, cfg RelayConfig) (*Relay[TTx], error) {
	if drv == nil || pub == nil {
		return nil, &eos.ConfigError{Field: "outbox.NewRelay", Reason: "nil driver or publisher"}
	}
	if err := cfg.applyDefaults(); err != nil {
		return nil, err
	}
	return &Relay[TTx]{drv: drv, pub: pub, cfg: cfg}, nil
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
	backoff := r.cfg.RetryBackoff
	for {
		n, err := r.Forward(ctx)
		var wait time.Duration
		switch {
		case ctx.Err() != nil:
			return ctx.Err()
		case err != nil:
			r.cfg.Logger.ErrorContext(ctx, "eos relay: forwarding failed, retrying", "error", err, "retry_in", backoff)
			wait, backoff = backoff, min(2*backoff, r.cfg.MaxRetryBackoff)
		case n == r.cfg.BatchSize:
			backoff = r.cfg.RetryBackoff
			continue // more may be waiting
		default:
			backoff = r.cfg.RetryBackoff
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
func (r *Relay[TTx]) Forward(ctx context.Context) (int, error) {
	b, err := r.drv.ClaimOutbox(ctx, r.cfg.BatchSize)
	if err != nil {
		return 0, r.fail(ctx, "outbox.claim", err)
	}
	rows := b.Rows()
	if len(rows) == 0 {
		return 0, b.Abort(ctx)
	}
	envs := make([]Envelope, len(rows))
	for i, row := range rows {
		envs[i] = Envelope{Topic: row.Topic, Message: eos.Message{ID: row.ID, Key: row.Key, Payload: row.Payload, Headers: row.Headers, CreatedAt: row.CreatedAt}}
	}
	acked, perr := r.pub.Publish(ctx, envs)
	if acked < 0 || acked > len(rows) {
		b.Abort(ctx)
		return 0, r.fail(ctx, "outbox.publish", fmt.Errorf("publisher reported %d acked of %d", acked, len(rows)))
	}
	if err := r.cfg.Failpoints.Eval(FailAfterPublishBeforeMark); err != nil {
		b.Abort(ctx)
		return 0, err
	}
	now := r.cfg.Now()
	if err := b.Complete(ctx, driver.OutboxOutcome{Sent: driver.Seqs(rows[:acked]), At: now, DeleteSent: r.cfg.DeleteSent}); err != nil {
		return 0, r.fail(ctx, "outbox.mark_sent", err)
	}
	if acked > 0 && r.cfg.Observer != nil {
		r.cfg.Observer.Forwarded(ctx, rows[:acked], now)
	}
	if perr != nil {
		return acked, r.fail(ctx, "outbox.publish", perr)
	}
	return acked, nil
}

// fail reports err; failures of the store are *eos.StoreError, those of the
// broker wrap the publisher's error.
func (r *Relay[TTx]) fail(ctx context.Context, op string, err error) error {
	if r.cfg.Observer != nil {
		r.cfg.Observer.RelayError(ctx, op, err)
	}
	if op == "outbox.publish" {
		return fmt.Errorf("eos relay: publish: %w", err)
	}
	return &eos.StoreError{Op: op, Err: err}
}
