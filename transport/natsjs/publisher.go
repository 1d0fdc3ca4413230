package natsjs

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/eoskit/eos"
	"github.com/eoskit/eos/internal/config"
	"github.com/eoskit/eos/outbox"
)

// PublisherConfig configures a Publisher. Defaults are applied by
// [NewPublisher].
type PublisherConfig struct {
	// Window is the most publishes awaiting their ack at once, a message or
	// an atomic batch counting one. Default 256; 1 publishes one at a time.
	Window int
	// AckTimeout bounds how long Publish waits for the broker's next ack;
	// past it, Publish reports the messages acknowledged so far and the
	// relay retries the rest (their ids make that safe). Default 10s. The
	// bound matters: nats.go fails pending asynchronous publishes when the
	// connection reconnects, but not when it closes.
	AckTimeout time.Duration
	// OnDuplicate, if set, is called for each publish JetStream reported as
	// a duplicate (dropped by its dedupe): a re-publish after a crash, or a
	// producer retry.
	OnDuplicate func(subject, id string)
	// Batch says whether Publish sends the messages of one stream as
	// JetStream atomic batches: stored all or none, with one ack, and on a
	// server that syncs every write one sync per batch instead of one per
	// message. Default BatchAuto; see [BatchMode].
	Batch BatchMode
	// BatchSize is the most messages in one atomic batch. Default 1000, the
	// server's default limit (max_batch_size); a batch over the server's
	// limit is refused and its messages go one by one.
	BatchSize int
	// OnFallback, if set, is called when an atomic batch of n messages to
	// stream did not go through whole, with why (the broker's refusal: a
	// message id it has stored already, after a relay crashed between
	// publishing and marking rows sent; a message too large; …), before its
	// messages are published one by one.
	OnFallback func(stream string, n int, why error)
	// Test holds the clock (which tells when to look a stream up again) and
	// the failpoints (FailPublishAckLost), for tests and fault injection.
	Test eos.TestConfig
}

// FailPublishAckLost is evaluated when a PubAck arrives (of a message, or
// of an atomic batch's commit), before the Publisher looks at it. An error makes the Publisher behave as if the ack
// had been lost on the way: the broker holds the message, the caller is
// told it is unacknowledged and publishes it again, and the broker's dedupe
// drops the copy.
const FailPublishAckLost = "natsjs.publish_ack_lost"

// Publisher publishes eos messages to JetStream with their id as
// Nats-Msg-Id. It implements outbox.Publisher and is safe for concurrent use.
type Publisher struct {
	js         jetstream.JetStream
	cfg        PublisherConfig
	streams    streamCache
	duplicates atomic.Int64
	batches    atomic.Int64
	fallbacks  atomic.Int64
}

var _ outbox.Publisher = (*Publisher)(nil)

// NewPublisher returns a Publisher over js.
func NewPublisher(js jetstream.JetStream, cfg PublisherConfig) (*Publisher, error) {
	if js == nil {
		return nil, &eos.ConfigError{Field: "natsjs.NewPublisher js", Reason: "nil"}
	}
	cfg, err := cfg.WithDefaults()
	if err != nil {
		return nil, err
	}
	return &Publisher{js: js, cfg: cfg, streams: streamCache{js: js, now: cfg.Test.Now, timeout: cfg.AckTimeout}}, nil
}

// Defaults of [PublisherConfig].
const (
	DefaultWindow     = 256
	DefaultAckTimeout = 10 * time.Second
	DefaultBatchSize  = 1000
)

// WithDefaults returns a copy of c with the defaults applied, or a
// *eos.ConfigError naming the first invalid field.
func (c PublisherConfig) WithDefaults() (PublisherConfig, error) {
	if err := config.Int("natsjs.PublisherConfig.Window", &c.Window, DefaultWindow, 65536); err != nil {
		return c, err
	}
	if err := config.Int("natsjs.PublisherConfig.BatchSize", &c.BatchSize, DefaultBatchSize, maxBatchSize); err != nil {
		return c, err
	}
	if c.Batch != BatchAuto && c.Batch != BatchOff {
		return c, &eos.ConfigError{Field: "natsjs.PublisherConfig.Batch", Reason: fmt.Sprintf("unknown mode %d", c.Batch)}
	}
	c.Test = c.Test.WithDefaults()
	err := config.Duration("natsjs.PublisherConfig.AckTimeout", &c.AckTimeout, DefaultAckTimeout)
	return c, err
}

// Duplicates returns how many publishes JetStream reported as duplicates.
func (p *Publisher) Duplicates() int64 { return p.duplicates.Load() }

// Batches returns how many atomic batches JetStream stored.
func (p *Publisher) Batches() int64 { return p.batches.Load() }

// Fallbacks returns how many atomic batches did not go through whole and
// were published one message at a time instead (see OnFallback).
func (p *Publisher) Fallbacks() int64 { return p.fallbacks.Load() }

// Result is the broker's answer to one publish.
type Result struct {
	Stream    string
	Sequence  uint64
	Duplicate bool // JetStream already had this Nats-Msg-Id within its window
}

// PublishMessage validates m, publishes it synchronously and returns the
// broker's answer; a duplicate is reported in the Result, not as an error.
// It waits at most AckTimeout for the answer, however long ctx lasts.
func (p *Publisher) PublishMessage(ctx context.Context, subject string, m eos.Message) (Result, error) {
	if err := eos.Validate(m); err != nil {
		return Result{}, err
	}
	return p.publish(ctx, subject, m)
}

func (p *Publisher) publish(ctx context.Context, subject string, m eos.Message) (Result, error) {
	// Bounded by AckTimeout whatever ctx's deadline: a request whose
	// reply never comes (a connection gone silent, a responder that is not
	// JetStream) would otherwise hold the caller until ctx ends.
	ctx, cancel := context.WithTimeout(ctx, p.cfg.AckTimeout)
	defer cancel()
	ack, err := p.js.PublishMsg(ctx, toNATS(subject, m))
	if err == nil {
		err = p.cfg.Test.Failpoints.Eval(FailPublishAckLost)
	}
	if err != nil {
		return Result{}, publishErr(subject, m.ID, err)
	}
	return p.result(subject, m.ID, ack), nil
}

func publishErr(subject, id string, err error) error {
	return fmt.Errorf("natsjs: publish %s to %s: %w", id, subject, err)
}

func (p *Publisher) result(subject, id string, ack *jetstream.PubAck) Result {
	if ack.Duplicate {
		p.duplicates.Add(1)
		if p.cfg.OnDuplicate != nil {
			p.cfg.OnDuplicate(subject, id)
		}
	}
	return Result{Stream: ack.Stream, Sequence: ack.Sequence, Duplicate: ack.Duplicate}
}

// publishInOrder publishes msgs, at most Window publishes (a message or an
// atomic batch) awaiting their ack at once, and a message only once the
// previous message of its key (Message.Key; an empty key orders nothing)
// was acknowledged, and returns how many from the first were acknowledged
// (a duplicate counts: the broker has the message), with the error of the
// first that was not. When it returns, nothing it sent will be sent again
// by the client library. Order per key holds within a call and across
// calls made one after another, not across concurrent calls. The outbox
// validated the messages; it does not validate again. Publish
// (permanent.go) wraps it.
func (p *Publisher) publishInOrder(ctx context.Context, msgs []outbox.Envelope) (int, error) {
	if streams := p.batchStreams(ctx, msgs); streams != nil {
		return newWindow(p, msgs, streams).run(ctx)
	}
	return p.publishEach(ctx, msgs)
}

// publishEach is publishInOrder one message per publish.
func (p *Publisher) publishEach(ctx context.Context, msgs []outbox.Envelope) (int, error) {
	if p.cfg.Window == 1 {
		for i, m := range msgs {
			if _, err := p.publish(ctx, m.Topic, m.Message); err != nil {
				return i, err
			}
		}
		return len(msgs), nil
	}
	return newWindow(p, msgs, nil).run(ctx)
}
