package natsjs

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/eoskit/eos"
	"github.com/eoskit/eos/failpoint"
	"github.com/eoskit/eos/inbox"
	"github.com/eoskit/eos/internal/config"
)

// SubscriberConfig configures a Subscriber. The zero value is valid;
// defaults are applied by [NewSubscriber].
type SubscriberConfig struct {
	// DoubleAck waits for the server to confirm each ack. Off by default: a
	// lost ack means a redelivery, which the inbox suppresses, and a double
	// ack costs about five times as much.
	DoubleAck bool
	// Buffer is the most messages pulled ahead of the inbox. Default: the
	// max of the first Fetch (the inbox's MaxBatch), so that a message
	// waits in the buffer about as long as one batch takes. Its ack wait
	// runs meanwhile.
	Buffer int
	// BufferBytes bounds the bytes pulled ahead: the client holds at most
	// BufferBytes of messages it has not handed out (each pull asks for at
	// most half of it; two pulls can overlap). Default 128 MiB. A message
	// larger than half of it is never delivered and the consumer stalls,
	// so keep it at least twice the largest message the stream takes
	// (NATS's max_payload: 1 MiB by default, 64 MiB at most); it is at
	// least 2 MiB.
	BufferBytes int
	// CloseTimeout bounds how long Close waits for the messages pulled
	// ahead to arrive and be handed back. Default 5s.
	CloseTimeout time.Duration
	// ID gives each delivered message its eos id. Default: the Nats-Msg-Id
	// header (HeaderID(jetstream.MsgIDHeader)), which eos's Publisher sets.
	// For messages of producers that are not eos, take the id they carry:
	// CloudEventsID for CloudEvents in binary mode, HeaderID for another
	// header. It must be stable across redeliveries and re-publishes (see
	// IDFunc), or exactly-once does not hold.
	ID IDFunc
	// Heartbeat is how often the server signals a live pull request while
	// it has nothing to deliver; two missed in a row make the client
	// forget the pull and make a new one (a slow or silent connection),
	// and Fetch waits on. 0: nats.go's default, half the pull's 30s
	// expiry (15s). Otherwise 500ms to 15s.
	Heartbeat time.Duration
	// Test holds the failpoints (FailAckLost), for tests and fault
	// injection.
	Test eos.TestConfig
}

// minHeartbeat and maxHeartbeat bound SubscriberConfig.Heartbeat: nats.go
// takes 500ms and up, and at most half of a pull's expiry (30s).
const (
	minHeartbeat = 500 * time.Millisecond
	maxHeartbeat = 15 * time.Second
)

// Defaults of [SubscriberConfig].
const (
	DefaultBufferBytes  = 128 << 20
	DefaultCloseTimeout = 5 * time.Second
)

// minBufferBytes is the least BufferBytes: half of it must hold a message
// of NATS's default max_payload (1 MiB).
const minBufferBytes = 2 << 20

// WithDefaults returns a copy of c with the defaults applied, or a
// *eos.ConfigError naming the first invalid field.
func (c SubscriberConfig) WithDefaults() (SubscriberConfig, error) {
	err := c.check()
	return c, err
}

func (c *SubscriberConfig) check() error {
	if c.Buffer < 0 {
		return &eos.ConfigError{Field: "natsjs.SubscriberConfig.Buffer", Reason: "must be positive"}
	}
	if c.BufferBytes == 0 {
		c.BufferBytes = DefaultBufferBytes
	}
	if c.ID == nil {
		c.ID = HeaderID(jetstream.MsgIDHeader)
	}
	if c.Heartbeat != 0 && (c.Heartbeat < minHeartbeat || c.Heartbeat > maxHeartbeat) {
		return &eos.ConfigError{Field: "natsjs.SubscriberConfig.Heartbeat", Reason: fmt.Sprintf("%s is outside %s..%s (or 0 for the default)",
			c.Heartbeat, minHeartbeat, maxHeartbeat)}
	}
	if c.BufferBytes < minBufferBytes {
		return &eos.ConfigError{Field: "natsjs.SubscriberConfig.BufferBytes", Reason: fmt.Sprintf(
			"%d is under %d: half of it must hold the largest message, or the consumer stalls", c.BufferBytes, minBufferBytes)}
	}
	return config.Duration("natsjs.SubscriberConfig.CloseTimeout", &c.CloseTimeout, DefaultCloseTimeout)
}

// FailAckLost is evaluated before a Delivery sends its ack. An error makes
// the ack go missing as if the network had dropped it: nothing is sent, a
// plain ack still reports success (as a real lost one would), a double ack
// reports the error; the broker redelivers the message after its AckWait.
const FailAckLost = "natsjs.ack_lost"

// FailpointNames returns the names of the failpoints the Publisher and the
// Subscriber evaluate, for failpoint.Parse.
func FailpointNames() []string { return []string{FailPublishAckLost, FailAckLost} }

// Subscriber reads a durable pull consumer. It implements inbox.Source.
// One Subscriber serves one Processor.Run at a time.
//
// The deliveries of the last two Fetches are kept alive until they are
// settled or two more Fetches have begun, whichever comes first: every
// third of the consumer's ack wait the Subscriber tells JetStream they are
// in progress, so that a long batch or a store stall holding them
// (Processor.Run retries a batch until it commits, fetching at most one
// batch ahead meanwhile) does not make JetStream deliver them again,
// counting a delivery towards MaxDeliver, while the inbox still works on
// them. A delivery still unsettled two Fetches later was given up, and
// comes back after the ack wait.
type Subscriber struct {
	cons      jetstream.Consumer
	cfg       SubscriberConfig
	keepAlive time.Duration
	stop      chan struct{} // closed by Close
	stopped   chan struct{} // closed when the keep-alive loop has ended

	mu     sync.Mutex
	iter   jetstream.MessagesContext // started by the first Fetch
	held   map[*Delivery]int         // handed out, not settled: the Fetch (gen) that handed it
	gen    int                       // Fetches begun
	closed bool
}

var _ inbox.Source = (*Subscriber)(nil)

// NewSubscriber returns a Subscriber on consumer cons (see EnsureConsumer).
// It pulls from the first Fetch on; Close stops it.
func NewSubscriber(cons jetstream.Consumer, cfg SubscriberConfig) (*Subscriber, error) {
	if cons == nil {
		return nil, &eos.ConfigError{Field: "natsjs.NewSubscriber consumer", Reason: "nil"}
	}
	cfg, err := cfg.WithDefaults()
	if err != nil {
		return nil, err
	}
	s := &Subscriber{
		cons: cons, cfg: cfg, keepAlive: keepAliveInterval(cons.CachedInfo()),
		stop: make(chan struct{}), stopped: make(chan struct{}), held: make(map[*Delivery]int),
	}
	go s.keepAliveLoop()
	return s, nil
}

// keepAliveInterval is a third of the shortest ack wait of the consumer
// (AckWait, or a BackOff step).
func keepAliveInterval(info *jetstream.ConsumerInfo) time.Duration {
	wait := 30 * time.Second // the server's default
	if info != nil {
		if info.Config.AckWait > 0 {
			wait = info.Config.AckWait
		}
		for _, b := range info.Config.BackOff {
			wait = min(wait, b)
		}
	}
	return max(wait/3, time.Millisecond)
}

func (s *Subscriber) keepAliveLoop() {
	defer close(s.stopped)
	t := time.NewTicker(s.keepAlive)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
		}
		s.mu.Lock()
		for d := range s.held {
			d.m.InProgress() // a lost one costs a redelivery, which the inbox absorbs
		}
		s.mu.Unlock()
	}
}

// begin starts a Fetch: it stops keeping alive the batch of the Fetch
// before the last (settled, or given up) and returns the pull iterator,
// started on the first call with a buffer of max messages unless Buffer is
// set.
func (s *Subscriber) begin(max int) (jetstream.MessagesContext, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, fmt.Errorf("natsjs: fetch after Close: %w", inbox.ErrSourceClosed)
	}
	s.gen++
	for d, gen := range s.held {
		if gen < s.gen-1 {
			delete(s.held, d)
		}
	}
	if s.iter != nil {
		return s.iter, nil
	}
	n := s.cfg.Buffer
	if n == 0 {
		n = max
	}
	opts := []jetstream.PullMessagesOpt{jetstream.PullMaxMessagesWithBytesLimit(n, s.cfg.BufferBytes/2)}
	if s.cfg.Heartbeat > 0 {
		opts = append(opts, jetstream.PullHeartbeat(s.cfg.Heartbeat))
	}
	iter, err := s.cons.Messages(opts...)
	if err != nil {
		return nil, fmt.Errorf("natsjs: subscribe: %w", err)
	}
	s.iter = iter
	return iter, nil
}

// Close stops pulling and hands back what was pulled ahead: it drains the
// pull subscription and naks every message it had not handed out, so that
// JetStream delivers them at once to another subscriber of the consumer
// instead of after the ack wait. Deliveries handed out stay the inbox's to
// settle; they are no longer kept alive.
func (s *Subscriber) Close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	iter := s.iter
	s.mu.Unlock()
	close(s.stop)
	<-s.stopped
	if iter == nil {
		return
	}
	iter.Drain()
	deadline := time.Now().Add(s.cfg.CloseTimeout)
	for {
		wait := time.Until(deadline)
		if wait <= 0 {
			return
		}
		m, err := iter.Next(jetstream.NextMaxWait(wait))
		if err != nil {
			return // drained (or out of time: the rest waits for the ack wait)
		}
		m.Nak()
	}
}

// Fetch implements inbox.Source: it waits for one message as long as ctx
// allows, then takes more for at most maxWait (none when maxWait is zero).
// An error after the first message ends the batch; the next Fetch reports it.
func (s *Subscriber) Fetch(ctx context.Context, max int, maxWait time.Duration) ([]inbox.Delivery, error) {
	iter, err := s.begin(max)
	if err != nil {
		return nil, err
	}
	m, err := iter.Next(jetstream.NextContext(ctx))
	// A missed heartbeat is the client's word that its pull request went
	// missing (a connection too slow to keep up dropped the server's
	// heartbeats, or the server went away): the iterator has forgotten
	// the pull and makes a new one on the next call, so wait on rather
	// than fail the inbox's Fetch, and with it the consumer.
	for errors.Is(err, jetstream.ErrNoHeartbeat) && ctx.Err() == nil {
		m, err = iter.Next(jetstream.NextContext(ctx))
	}
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, err
	}
	out := []inbox.Delivery{s.delivery(m)}
	deadline := time.Now().Add(maxWait)
	for len(out) < max {
		wait := time.Until(deadline)
		if wait <= 0 {
			break
		}
		m, err := iter.Next(jetstream.NextMaxWait(wait))
		if err != nil {
			break // a timeout, or an error the next Fetch reports: hand over what we have
		}
		out = append(out, s.delivery(m))
	}
	return out, nil
}

// delivery wraps m and holds it (keeps it alive) until it is settled.
func (s *Subscriber) delivery(m jetstream.Msg) *Delivery {
	d := &Delivery{m: m, msg: fromNATS(m.Subject(), m.Headers(), m.Data(), s.cfg.ID), double: s.cfg.DoubleAck, fps: s.cfg.Test.Failpoints, sub: s}
	s.mu.Lock()
	if !s.closed {
		s.held[d] = s.gen
	}
	s.mu.Unlock()
	return d
}

func (s *Subscriber) release(d *Delivery) {
	s.mu.Lock()
	delete(s.held, d)
	s.mu.Unlock()
}

// Delivery is one JetStream message handed to the inbox.
type Delivery struct {
	m      jetstream.Msg
	msg    eos.Message
	double bool
	fps    *failpoint.Set
	sub    *Subscriber
}

var _ inbox.Delivery = (*Delivery)(nil)

func (d *Delivery) Message() eos.Message { return d.msg }

// Ack acknowledges the message (a double ack if configured).
func (d *Delivery) Ack(ctx context.Context) error {
	d.sub.release(d)
	if err := d.fps.Eval(FailAckLost); err != nil {
		if d.double {
			return fmt.Errorf("natsjs: ack: %w", err)
		}
		return nil
	}
	if d.double {
		return d.m.DoubleAck(ctx)
	}
	return d.m.Ack()
}

// Nack asks JetStream to redeliver the message after delay.
func (d *Delivery) Nack(_ context.Context, delay time.Duration) error {
	d.sub.release(d)
	return d.m.NakWithDelay(delay)
}

// NumDelivered is how many times JetStream has delivered this message,
// this time included (0 if unknown). Above 1 it is a redelivery.
func (d *Delivery) NumDelivered() uint64 {
	md, err := d.m.Metadata()
	if err != nil {
		return 0
	}
	return md.NumDelivered
}

var _ inbox.DeliveryCounter = (*Delivery)(nil)

// DeliveryCount implements inbox.DeliveryCounter: NumDelivered, capped at
// the largest int.
func (d *Delivery) DeliveryCount() int {
	return int(min(d.NumDelivered(), uint64(math.MaxInt)))
}
