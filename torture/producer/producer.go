package producer

import (
	"context"
	"errors"
	"math/rand/v2"
	"sync/atomic"
	"time"

	"github.com/eoskit/eos/examples/payments"
	"github.com/eoskit/eos/internal/backoff"
	"github.com/eoskit/eos/internal/ctxtime"
	"github.com/eoskit/eos/outbox"
	"github.com/eoskit/eos/torture/intents"
)

// How the producer misbehaves in the demo and under the duplicates fault.
const (
	// DefaultRetryRate is the share of orders published twice in a row
	// with the same id, as a producer does when it retries after a lost
	// PubAck. Both land inside the stream's dedupe window: JetStream drops
	// the second.
	DefaultRetryRate = 0.02
	// DefaultCopyRate is the share of orders published again after the
	// window (see DupWindow): JetStream stores the copy as a new message,
	// and only the inbox's claim keeps it from being applied twice.
	DefaultCopyRate = 0.01
	// DupWindow is the duplicate window the ORDERS stream must have, short
	// on purpose (JetStream accepts down to 100ms). JetStream forgets an id
	// when a timer fires after the window, so a copy waits three windows
	// (DefaultCopyDelay).
	DupWindow        = time.Second
	DefaultCopyDelay = 3 * DupWindow
	// MaxBatch is the most orders published as one batch.
	MaxBatch = 256
)

// Config is what a Producer publishes and how.
type Config struct {
	// Publisher publishes orders, retries, copies and malformed inputs
	// (NATS or Kafka).
	Publisher Publisher
	Subject   string
	Orders    []payments.Order
	Bad       []payments.BadInput // spread evenly among the orders
	// Rate is orders per second; 0: as fast as the broker takes them.
	Rate int
	// Rand draws the retries and the copies.
	Rand *rand.Rand
	// RetryRate and CopyRate are the shares of orders retried inside and
	// copied past the broker's dedupe window (0: none).
	RetryRate, CopyRate float64
	// CopyDelay is how long after the broker acknowledged an order its
	// copy goes out. Default DefaultCopyDelay.
	CopyDelay time.Duration
	// Intents, if set, records every publish before it is made.
	Intents *intents.Log
}

// Producer publishes one workload once; Run may be called once.
type Producer struct {
	cfg         Config
	published   atomic.Int64
	republished atomic.Int64
	failed      atomic.Int64 // publish attempts that failed
	lastErr     atomic.Pointer[string]
}

// New returns a producer of cfg's workload.
func New(cfg Config) *Producer {
	if cfg.CopyDelay <= 0 {
		cfg.CopyDelay = DefaultCopyDelay
	}
	return &Producer{cfg: cfg}
}

// Published returns the orders published at least once so far.
func (p *Producer) Published() int64 { return p.published.Load() }

// Republished returns the copies the broker stored as new messages so far.
func (p *Producer) Republished() int64 { return p.republished.Load() }

// Failures returns how many publish attempts failed so far (each was
// retried), and the last one's error ("" if none).
func (p *Producer) Failures() (int64, string) {
	last := ""
	if s := p.lastErr.Load(); s != nil {
		last = *s
	}
	return p.failed.Load(), last
}

type pendingCopy struct {
	due time.Time
	env outbox.Envelope
}

// Run publishes everything and returns when every copy is out, or ctx
// ends. It stops at the first failure to write the intent log.
func (p *Producer) Run(ctx context.Context) error {
	c := p.cfg
	n := len(c.Orders)
	// Malformed inputs go at evenly spaced positions among the orders.
	badAt := map[int][]payments.BadInput{}
	for j, b := range c.Bad {
		at := (j + 1) * n / (len(c.Bad) + 1)
		badAt[at] = append(badAt[at], b)
	}
	batchSize := MaxBatch
	if c.Rate > 0 {
		batchSize = min(MaxBatch, max(1, c.Rate/20))
	}
	var batch []outbox.Envelope
	var copies, batchCopies []pendingCopy
	batchOrders := 0
	start := time.Now()
	for i, o := range c.Orders {
		if err := p.publishBad(ctx, badAt[i]); err != nil {
			return err
		}
		env := outbox.Envelope{Topic: c.Subject, Message: o.Message(time.Now())}
		batch = append(batch, env)
		batchOrders++
		if c.Rand.Float64() < c.RetryRate {
			batch = append(batch, env)
		}
		if c.Rand.Float64() < c.CopyRate {
			batchCopies = append(batchCopies, pendingCopy{env: env})
		}
		if len(batch) < batchSize && i < n-1 {
			continue
		}
		if err := c.Intents.Orders(batch); err != nil {
			return err
		}
		if err := p.publish(ctx, batch); err != nil {
			return err
		}
		p.published.Add(int64(batchOrders))
		batch, batchOrders = batch[:0], 0
		// A copy is due CopyDelay after its order was acknowledged, not
		// after it was made: a publish that took long (a loaded machine,
		// retries) must not bring its copy inside the dedupe window.
		due := time.Now().Add(c.CopyDelay)
		for _, pc := range batchCopies {
			copies = append(copies, pendingCopy{due: due, env: pc.env})
		}
		batchCopies = batchCopies[:0]
		var err error
		if copies, err = p.publishCopies(ctx, copies, false); err != nil {
			return err
		}
		if c.Rate > 0 {
			if err := sleepUntil(ctx, start.Add(time.Duration(i+1)*time.Second/time.Duration(c.Rate))); err != nil {
				return err
			}
		}
	}
	if err := p.publishBad(ctx, badAt[n]); err != nil {
		return err
	}
	_, err := p.publishCopies(ctx, copies, true)
	return err
}

// publish sends envs, retrying what the broker did not acknowledge, with
// the same ids: a retry of a publish that did land is dropped by the
// broker's dedupe.
func (p *Producer) publish(ctx context.Context, envs []outbox.Envelope) error {
	return p.retry(ctx, func() error {
		acked, err := p.cfg.Publisher.Publish(ctx, envs)
		envs = envs[acked:]
		if err != nil && ctx.Err() == nil {
			return errors.Join(err, p.cfg.Intents.Resend(envs)) // retried unless the log failed
		}
		return err
	})
}

// publishCopies publishes the copies that are due (all of them, waiting,
// when all is set) and returns the rest.
func (p *Producer) publishCopies(ctx context.Context, copies []pendingCopy, all bool) ([]pendingCopy, error) {
	for len(copies) > 0 {
		c := copies[0]
		if time.Now().Before(c.due) {
			if !all {
				break
			}
			if err := sleepUntil(ctx, c.due); err != nil {
				return nil, err
			}
		}
		if err := p.cfg.Intents.Copy(c.env.Message.ID); err != nil {
			return nil, err
		}
		dup, err := p.publishOne(ctx, c.env)
		if err != nil {
			return nil, err
		}
		if !dup {
			p.republished.Add(1)
		}
		copies = copies[1:]
	}
	return copies, nil
}

// publishOne publishes env until the broker takes it, and reports
// whether it dropped it as a duplicate.
func (p *Producer) publishOne(ctx context.Context, env outbox.Envelope) (dup bool, err error) {
	err = p.retry(ctx, func() error {
		if dup, err = p.cfg.Publisher.PublishOne(ctx, env); err != nil && ctx.Err() == nil {
			return errors.Join(err, p.cfg.Intents.Resend([]outbox.Envelope{env}))
		}
		return err
	})
	return dup, err
}

// publishBad publishes malformed inputs; one without a message id goes
// around the Publisher, which refuses it.
func (p *Producer) publishBad(ctx context.Context, bad []payments.BadInput) error {
	for _, b := range bad {
		if err := p.cfg.Intents.Poison(b); err != nil {
			return err
		}
		var err error
		if b.NoMessageID {
			err = p.publishWithoutID(ctx, b)
		} else {
			_, err = p.publishOne(ctx, outbox.Envelope{Topic: p.cfg.Subject, Message: b.Message})
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// publishWithoutID publishes b with no message id. Without an id the
// broker cannot drop a resend, so a resend may be stored twice: each copy
// is its own message, and the inbox dead-letters each once (the checker
// counts a malformed input once however many copies).
func (p *Producer) publishWithoutID(ctx context.Context, b payments.BadInput) error {
	return p.retry(ctx, func() error { return p.cfg.Publisher.PublishWithoutID(ctx, p.cfg.Subject, b.Message) })
}

// publishRetry is the producer's backoff between failed publishes: full
// jitter, the bound doubling from 50 ms to 2 s.
var publishRetry = backoff.Policy{Initial: 50 * time.Millisecond, Max: 2 * time.Second}

// retry runs publish until it succeeds or ctx ends, waiting between tries
// as publishRetry draws. An error wrapping a failure to write the intent
// log ends it at once: a publish the log does not announce must not be
// made.
func (p *Producer) retry(ctx context.Context, publish func() error) error {
	for try := 1; ; try++ {
		err := publish()
		if err == nil {
			return nil
		}
		p.failed.Add(1)
		msg := err.Error()
		p.lastErr.Store(&msg)
		if ctx.Err() != nil || errors.Is(err, intents.ErrLog) {
			return err
		}
		if !publishRetry.Sleep(ctx, try) {
			return ctx.Err()
		}
	}
}

// sleepUntil waits until t, or returns ctx's error when it ends first.
func sleepUntil(ctx context.Context, t time.Time) error {
	if !ctxtime.Sleep(ctx, time.Until(t)) {
		return ctx.Err()
	}
	return nil
}
