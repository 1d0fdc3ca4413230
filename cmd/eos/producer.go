package main

import (
	"context"
	"errors"
	"math/rand/v2"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/eoskit/eos/examples/payments"
	"github.com/eoskit/eos/internal/backoff"
	"github.com/eoskit/eos/outbox"
	"github.com/eoskit/eos/transport/natsjs"
)

// How the producer misbehaves, on purpose.
const (
	// retryRate: share of orders published twice in a row with the same
	// id, as a producer does when it retries after a lost PubAck. Both land
	// inside the stream's dedupe window: JetStream drops the second.
	retryRate = 0.02
	// copyRate: share of orders published again after the window (see
	// ordersDupWindow): JetStream stores the copy as a new message, and only
	// the inbox's claim keeps it from being applied twice.
	copyRate = 0.01
	// ordersDupWindow is the ORDERS stream's duplicate window, short on
	// purpose (JetStream accepts down to 100ms). JetStream forgets an id
	// when a timer fires after the window, so the copy waits three windows.
	ordersDupWindow = time.Second
	copyDelay       = 3 * ordersDupWindow
	publishBatch    = 256
)

// producer publishes the orders, the malformed inputs, the retries and the
// copies.
type producer struct {
	pub    *natsjs.Publisher
	js     jetstream.JetStream
	topo   topology
	orders []payments.Order
	bad    []payments.BadInput
	rate   int // orders per second; 0: as fast as the broker takes them
	rnd    *rand.Rand
	// retryRate and copyRate are the shares of orders retried inside and
	// copied past the broker's dedupe window (the demo: the constants).
	retryRate, copyRate float64
	// intents, if set, records every publish before it is made.
	intents *intentLog

	published   atomic.Int64 // orders published at least once
	republished atomic.Int64 // copies the broker stored as new messages
}

type pendingCopy struct {
	due time.Time
	env outbox.Envelope
}

// run publishes everything and returns when every copy is out, or ctx ends.
func (p *producer) run(ctx context.Context) error {
	n := len(p.orders)
	// Malformed inputs go at evenly spaced positions among the orders.
	badAt := map[int][]payments.BadInput{}
	for j, b := range p.bad {
		badAt[(j+1)*n/(len(p.bad)+1)] = append(badAt[(j+1)*n/(len(p.bad)+1)], b)
	}
	batchSize := publishBatch
	if p.rate > 0 {
		batchSize = min(publishBatch, max(1, p.rate/20))
	}
	var batch []outbox.Envelope
	var copies []pendingCopy
	batchOrders := 0
	start := time.Now()
	for i, o := range p.orders {
		for _, b := range badAt[i] {
			if err := p.publishBad(ctx, b); err != nil {
				return err
			}
		}
		env := outbox.Envelope{Topic: p.topo.ordersSubject(), Message: o.Message(time.Now())}
		batch = append(batch, env)
		batchOrders++
		if p.rnd.Float64() < p.retryRate {
			batch = append(batch, env)
		}
		if p.rnd.Float64() < p.copyRate {
			copies = append(copies, pendingCopy{due: time.Now().Add(copyDelay), env: env})
		}
		if len(batch) < batchSize && i < n-1 {
			continue
		}
		if err := p.intents.orders(batch); err != nil {
			return err
		}
		if err := p.publish(ctx, batch); err != nil {
			return err
		}
		p.published.Add(int64(batchOrders))
		batch, batchOrders = batch[:0], 0
		var err error
		if copies, err = p.publishCopies(ctx, copies, false); err != nil {
			return err
		}
		if p.rate > 0 {
			if err := sleepUntil(ctx, start.Add(time.Duration(i+1)*time.Second/time.Duration(p.rate))); err != nil {
				return err
			}
		}
	}
	for _, b := range badAt[n] {
		if err := p.publishBad(ctx, b); err != nil {
			return err
		}
	}
	_, err := p.publishCopies(ctx, copies, true)
	return err
}

// publish sends envs, retrying what the broker did not acknowledge, with
// the same ids: a retry of a publish that did land is dropped by the
// broker's dedupe.
func (p *producer) publish(ctx context.Context, envs []outbox.Envelope) error {
	return retry(ctx, func() error {
		acked, err := p.pub.Publish(ctx, envs)
		envs = envs[acked:]
		if err != nil && ctx.Err() == nil {
			return errors.Join(err, p.intents.resend(envs)) // retried unless the log failed
		}
		return err
	})
}

// publishCopies publishes the copies that are due (all of them, waiting,
// when all is set) and returns the rest.
func (p *producer) publishCopies(ctx context.Context, copies []pendingCopy, all bool) ([]pendingCopy, error) {
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
		if err := p.intents.copy(c.env.Message.ID); err != nil {
			return nil, err
		}
		res, err := p.publishOne(ctx, c.env)
		if err != nil {
			return nil, err
		}
		if !res.Duplicate {
			p.republished.Add(1)
		}
		copies = copies[1:]
	}
	return copies, nil
}

func (p *producer) publishOne(ctx context.Context, env outbox.Envelope) (res natsjs.Result, err error) {
	err = retry(ctx, func() error {
		if res, err = p.pub.PublishMessage(ctx, env.Topic, env.Message); err != nil && ctx.Err() == nil {
			return errors.Join(err, p.intents.resend([]outbox.Envelope{env}))
		}
		return err
	})
	return res, err
}

// publishBad publishes a malformed input; one without a message id goes
// around the Publisher, which refuses it.
func (p *producer) publishBad(ctx context.Context, b payments.BadInput) error {
	subject := p.topo.ordersSubject()
	if err := p.intents.poison(b); err != nil {
		return err
	}
	if !b.NoMessageID {
		_, err := p.publishOne(ctx, outbox.Envelope{Topic: subject, Message: b.Message})
		return err
	}
	// Without an id the broker cannot drop a resend, so a resend may be
	// stored twice: each copy is its own stream message, and the inbox
	// dead-letters each once, under an id derived from its stream position
	// (the checker counts a malformed input once however many copies).
	msg := &nats.Msg{Subject: subject, Data: b.Message.Payload, Header: nats.Header{}}
	msg.Header.Set(natsjs.HeaderKey, b.Message.Key)
	msg.Header.Set(natsjs.HeaderCreatedAt, time.Now().UTC().Format(time.RFC3339Nano))
	return retry(ctx, func() error {
		_, err := p.js.PublishMsg(ctx, msg)
		return err
	})
}

// publishRetry is the producer's backoff between failed publishes.
var publishRetry = backoff.Policy{Initial: 50 * time.Millisecond, Max: 2 * time.Second}

// retry runs publish until it succeeds or ctx ends, waiting between tries
// as publishRetry draws (full jitter, the bound doubling from 50 ms to 2 s).
// An error wrapping a failure to write the intent log ends it at once: a
// publish the log does not announce must not be made.
func retry(ctx context.Context, publish func() error) error {
	for try := 1; ; try++ {
		err := publish()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil || errors.Is(err, errIntentLog) {
			return err
		}
		if !publishRetry.Sleep(ctx, try) {
			return ctx.Err()
		}
	}
}

func sleepUntil(ctx context.Context, t time.Time) error {
	d := time.Until(t)
	if d <= 0 {
		return ctx.Err()
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-timer.C:
		return nil
	}
}
