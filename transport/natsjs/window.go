package natsjs

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

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

// sendState is where one message of a Publish call is.
type sendState uint8

const (
	unsent sendState = iota
	inFlight
	acked
	failed
)

// window is one Publish call's messages on their way to the broker. A
// message is sent only once the previous message with its key was
// acknowledged: whatever the broker refuses, loses or answers late, a later
// message of the key cannot be stored before an earlier one (a copy still
// in flight, in the connection's reconnect buffer say, travels on the same
// connection ahead of anything sent after it). Messages without a key, and
// the first message of each key, go as soon as the window has room, so
// many distinct keys still fill the window.
type window struct {
	p       *Publisher
	msgs    []outbox.Envelope
	state   []sendState
	futures []jetstream.PubAckFuture
	errs    []error
	// next[i] is the next message after i with the same key, -1 if none.
	next []int
	// ready holds the unsent messages whose key is free, ascending.
	ready []int
	// gates holds the messages in flight whose next message waits for
	// their ack, in send order.
	gates   []int
	pending int // messages in flight
	sendErr error
}

func newWindow(p *Publisher, msgs []outbox.Envelope) *window {
	w := &window{
		p: p, msgs: msgs, state: make([]sendState, len(msgs)), futures: make([]jetstream.PubAckFuture, len(msgs)),
		errs: make([]error, len(msgs)), next: make([]int, len(msgs)),
	}
	last := make(map[string]int)
	for i, m := range msgs {
		w.next[i] = -1
		if m.Key == "" {
			w.ready = append(w.ready, i)
			continue
		}
		if j, ok := last[m.Key]; ok {
			w.next[j] = i
		} else {
			w.ready = append(w.ready, i)
		}
		last[m.Key] = i
	}
	return w
}

// run sends the messages and returns how many from the first were
// acknowledged, with the error of the first one that was not.
func (w *window) run(ctx context.Context) (int, error) {
	timer := time.NewTimer(w.p.cfg.AckTimeout)
	defer timer.Stop()
	for c := range w.msgs {
		w.fill(ctx)
		if w.state[c] == unsent {
			// Every message before c is acknowledged, so c is ready and the
			// lowest ready message: fill sends it first whenever the window
			// has room, and it had room when c's key was freed.
			if w.sendErr == nil {
				w.sendErr = errors.New("natsjs: internal error: a ready message was not sent")
			}
			return c, w.sendErr
		}
		if w.state[c] == inFlight {
			if err := w.wait(ctx, c, timer); err != nil {
				return c, err
			}
		}
		if w.state[c] == failed {
			return c, w.errs[c]
		}
	}
	return len(w.msgs), nil
}

// fill frees the keys whose message was acknowledged and sends ready
// messages, lowest first, while the window has room.
func (w *window) fill(ctx context.Context) {
	for len(w.gates) > 0 {
		// Acks come in send order: past the first gate still waiting, the
		// others are most likely waiting too.
		if i := w.gates[0]; w.state[i] == inFlight && !w.poll(i) {
			break
		}
		w.gates = w.gates[1:]
	}
	for w.sendErr == nil && len(w.ready) > 0 && w.pending < w.p.cfg.Window {
		if w.sendErr = ctx.Err(); w.sendErr != nil {
			return
		}
		i := w.ready[0]
		m := w.msgs[i]
		f, err := w.p.js.PublishMsgAsync(toNATS(m.Topic, m.Message), noRetry)
		if err != nil {
			w.sendErr = publishErr(m.Topic, m.ID, err)
			return
		}
		w.ready = w.ready[1:]
		w.futures[i], w.state[i] = f, inFlight
		w.pending++
		if w.next[i] >= 0 {
			w.gates = append(w.gates, i)
		}
	}
}

// poll settles message i if its answer has arrived, without waiting.
func (w *window) poll(i int) bool {
	select {
	case ack := <-w.futures[i].Ok():
		w.settle(i, ack, nil)
	case err := <-w.futures[i].Err():
		w.settle(i, nil, err)
	default:
		return false
	}
	return true
}

// wait settles message i when its answer arrives. It returns an error,
// leaving i in flight, if none comes within AckTimeout or ctx ends.
func (w *window) wait(ctx context.Context, i int, timer *time.Timer) error {
	timer.Reset(w.p.cfg.AckTimeout)
	m := w.msgs[i]
	select {
	case ack := <-w.futures[i].Ok():
		w.settle(i, ack, nil)
	case err := <-w.futures[i].Err():
		w.settle(i, nil, err)
	case <-timer.C:
		return publishErr(m.Topic, m.ID, fmt.Errorf("no ack within %v", w.p.cfg.AckTimeout))
	case <-ctx.Done():
		return ctx.Err()
	}
	return nil
}

// settle records the broker's answer to message i; an ack frees its key for
// the next message.
func (w *window) settle(i int, ack *jetstream.PubAck, err error) {
	w.pending--
	m := w.msgs[i]
	if err == nil {
		err = w.p.cfg.Test.Failpoints.Eval(FailPublishAckLost)
	}
	if err != nil {
		w.state[i], w.errs[i] = failed, publishErr(m.Topic, m.ID, err)
		return
	}
	w.state[i] = acked
	w.p.result(m.Topic, m.ID, ack)
	if j := w.next[i]; j >= 0 {
		pos, _ := slices.BinarySearch(w.ready, j)
		w.ready = slices.Insert(w.ready, pos, j)
	}
}
