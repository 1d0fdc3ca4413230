package natsjs

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/eoskit/eos/outbox"
)

// noRetry turns off nats.go's own retry of an asynchronous publish answered
// by "no responders" (a stream restarting or electing a leader). That retry
// runs on a timer per message, after the Publisher has moved on or
// returned: retries land in any order, behind messages published after
// them, and each still brings its ack. Retrying is the caller's job (the
// relay's), from the first unacknowledged message.
var noRetry = jetstream.WithRetryAttempts(0)

// sendState is where one publish of a Publish call is.
type sendState uint8

const (
	unsent sendState = iota
	inFlight
	settled
)

// unit is one publish: a message, or an atomic batch of messages bound for
// one stream (batch.go), with one ack.
type unit struct {
	msgs   []int  // indexes into window.msgs, ascending
	stream string // the stream of an atomic batch; "" for a message alone
	state  sendState
	// The broker's answer comes on ok or errc (a message alone: its
	// PubAckFuture's), or on reply (the commit of an atomic batch).
	ok    <-chan *jetstream.PubAck
	errc  <-chan error
	reply chan *nats.Msg
	sub   *nats.Subscription // the subscription reply is fed by
	batch string             // the atomic batch's id
	// waits counts the messages of the unit whose key's previous message,
	// in another unit, is not acknowledged yet; the unit is sent at zero.
	waits int
	// gate is set when a later unit waits for a message of this one.
	gate  bool
	acked int   // how many of msgs, from the first, were acknowledged once settled
	err   error // why msgs[acked] was not
}

// isBatch reports whether u is an atomic batch.
func (u *unit) isBatch() bool { return u.stream != "" }

// window is one Publish call's messages on their way to the broker. A
// message is sent only once the previous message with its key was
// acknowledged: whatever the broker refuses, loses or answers late, a later
// message of the key cannot be stored before an earlier one (a copy still
// in flight, in the connection's reconnect buffer say, travels on the same
// connection ahead of anything sent after it). Messages without a key, and
// the first message of each key, go as soon as the window has room, so
// many distinct keys still fill the window. An atomic batch is stored all
// or none, so it holds several messages of a key, and goes once the
// messages before it of each of its keys are acknowledged.
type window struct {
	p      *Publisher
	msgs   []outbox.Envelope
	units  []unit
	unitOf []int // the unit of each message
	// next[i] is the next message after i with the same key, -1 if none.
	next []int
	// ready holds the unsent units that wait for nothing, ascending.
	ready []int
	// gates holds the units in flight with a message a later unit waits
	// for, in send order.
	gates   []int
	pending int // units in flight
	sendErr error
}

// newWindow plans the publishes of msgs: streams[i] is the stream whose
// atomic batches may take msgs[i], "" to send it alone; nil sends each
// message alone.
func newWindow(p *Publisher, msgs []outbox.Envelope, streams []string) *window {
	w := &window{p: p, msgs: msgs, unitOf: make([]int, len(msgs)), next: make([]int, len(msgs))}
	b := newBatcher(p.cfg.BatchSize)
	last := make(map[string]int)
	for i, m := range msgs {
		w.next[i] = -1
		prev, hasPrev := last[m.Key]
		hasPrev = hasPrev && m.Key != ""
		stream, u := "", -1
		if streams != nil {
			stream = streams[i]
		}
		if stream != "" {
			u = b.join(w, stream, prev, hasPrev)
		}
		if u < 0 {
			u = len(w.units)
			w.units = append(w.units, unit{})
			if stream != "" {
				b.open(stream, u)
			}
		}
		w.units[u].msgs = append(w.units[u].msgs, i)
		w.unitOf[i] = u
		if hasPrev {
			w.next[prev] = i
			if pu := w.unitOf[prev]; pu != u {
				w.units[u].waits++
				w.units[pu].gate = true
			}
		}
		if m.Key != "" {
			last[m.Key] = i
		}
	}
	for i := range w.units {
		u := &w.units[i]
		if len(u.msgs) > 1 {
			u.stream = streams[u.msgs[0]]
		}
		if u.waits == 0 {
			w.ready = append(w.ready, i)
		}
	}
	return w
}

// run sends the messages and returns how many from the first were
// acknowledged, with the error of the first one that was not.
func (w *window) run(ctx context.Context) (int, error) {
	defer w.close()
	timer := time.NewTimer(w.p.cfg.AckTimeout)
	defer timer.Stop()
	for c := range w.msgs {
		w.fill(ctx)
		u := &w.units[w.unitOf[c]]
		if u.state == unsent {
			// Every message before c is acknowledged. Those before it of
			// its unit's keys are too (a unit only waits for messages
			// before its first), so its unit is ready and the lowest ready
			// unit: fill sends it first whenever the window has room, and
			// it had room when the unit became ready.
			if w.sendErr == nil {
				w.sendErr = errors.New("natsjs: internal error: a ready message was not sent")
			}
			return c, w.sendErr
		}
		if u.state == inFlight {
			if err := w.wait(ctx, w.unitOf[c], timer); err != nil {
				return c, err
			}
		}
		if !u.ackedMsg(c) {
			return c, u.err
		}
	}
	return len(w.msgs), nil
}

// ackedMsg reports whether message c of the settled unit u was
// acknowledged.
func (u *unit) ackedMsg(c int) bool { return u.acked == len(u.msgs) || c < u.msgs[u.acked] }

// fill frees the keys whose message was acknowledged and sends ready
// units, lowest first, while the window has room.
func (w *window) fill(ctx context.Context) {
	for len(w.gates) > 0 {
		// Acks come in send order: past the first gate still waiting, the
		// others are most likely waiting too.
		if i := w.gates[0]; w.units[i].state == inFlight && !w.poll(ctx, i) {
			break
		}
		w.gates = w.gates[1:]
	}
	for w.sendErr == nil && len(w.ready) > 0 && w.pending < w.p.cfg.Window {
		if w.sendErr = ctx.Err(); w.sendErr != nil {
			return
		}
		i := w.ready[0]
		u := &w.units[i]
		if u.isBatch() {
			w.ready = w.ready[1:]
			if err := w.sendBatch(u); err != nil {
				w.fallback(ctx, i, err)
				continue
			}
		} else {
			m := w.msgs[u.msgs[0]]
			f, err := w.p.js.PublishMsgAsync(toNATS(m.Topic, m.Message), noRetry)
			if err != nil {
				w.sendErr = publishErr(m.Topic, m.ID, err)
				return
			}
			w.ready = w.ready[1:]
			u.ok, u.errc = f.Ok(), f.Err()
		}
		u.state = inFlight
		w.pending++
		if u.gate {
			w.gates = append(w.gates, i)
		}
	}
}

// answer is the broker's answer to a unit: the PubAck or error of a
// message alone, or the reply to an atomic batch's commit.
type answer struct {
	ack   *jetstream.PubAck
	reply *nats.Msg
	err   error
}

// poll settles unit i if its answer has arrived, without waiting.
func (w *window) poll(ctx context.Context, i int) bool {
	u := &w.units[i]
	var a answer
	select {
	case a.ack = <-u.ok:
	case a.err = <-u.errc:
	case a.reply = <-u.reply:
	default:
		return false
	}
	w.settle(ctx, i, a)
	return true
}

// wait settles unit i when its answer arrives. It returns an error,
// leaving i in flight, if none comes within AckTimeout or ctx ends.
func (w *window) wait(ctx context.Context, i int, timer *time.Timer) error {
	timer.Reset(w.p.cfg.AckTimeout)
	u := &w.units[i]
	var a answer
	select {
	case a.ack = <-u.ok:
	case a.err = <-u.errc:
	case a.reply = <-u.reply:
	case <-timer.C:
		m := w.msgs[u.msgs[0]]
		return publishErr(m.Topic, m.ID, fmt.Errorf("no ack within %v", w.p.cfg.AckTimeout))
	case <-ctx.Done():
		return ctx.Err()
	}
	w.settle(ctx, i, a)
	return nil
}

// settle records the broker's answer to unit i. An atomic batch that was
// not stored whole is published again message by message.
func (w *window) settle(ctx context.Context, i int, a answer) {
	w.pending--
	u := &w.units[i]
	err := a.err
	if a.reply != nil {
		if err = w.committed(u, a.reply); err != nil {
			w.fallback(ctx, i, err)
			return
		}
	}
	if err == nil {
		err = w.p.cfg.Test.Failpoints.Eval(FailPublishAckLost)
	}
	m := w.msgs[u.msgs[0]]
	if err != nil {
		w.done(i, 0, publishErr(m.Topic, m.ID, err))
		return
	}
	if a.ack != nil {
		w.p.result(m.Topic, m.ID, a.ack)
	}
	w.done(i, len(u.msgs), nil)
}

// done settles unit i with its first acked messages acknowledged and err
// about the next, and frees the keys of the acknowledged ones.
func (w *window) done(i, acked int, err error) {
	u := &w.units[i]
	u.state, u.acked, u.err = settled, acked, err
	for _, c := range u.msgs[:acked] {
		j := w.next[c]
		if j < 0 || w.unitOf[j] == i {
			continue
		}
		v := w.unitOf[j]
		if w.units[v].waits--; w.units[v].waits == 0 {
			pos, _ := slices.BinarySearch(w.ready, v)
			w.ready = slices.Insert(w.ready, pos, v)
		}
	}
}

// close ends the subscriptions of the atomic batches still in flight.
func (w *window) close() {
	for i := range w.units {
		if u := &w.units[i]; u.sub != nil && u.state == inFlight {
			u.sub.Unsubscribe()
		}
	}
}
