package outbox

import (
	"context"
	"fmt"
	"time"

	"github.com/eoskit/eos"
	"github.com/eoskit/eos/driver"
)

// Hook is a value the Relay or the Outbox tells what it does: anything
// implementing one or more of the hook interfaces of this package. A
// Relay's hooks ([RelayConfig.Hooks]) implement [ForwardedHook] or
// [ErrorHook], an Outbox's ([Config.Hooks]) [EnqueueHook]; NewRelay and New
// check each hook once and refuse one that implements none of theirs.
// Hooks must not block.
//
// New kinds of hook come as new interfaces, so a hook written today keeps
// compiling and working when they are added.
type Hook any

// ForwardedHook is told about rows after they were published and marked
// sent.
type ForwardedHook interface {
	OnForwarded(ctx context.Context, rows []driver.OutboxRow, sentAt time.Time)
}

// ErrorHook is told about each failed step of the relay (op names it: a
// store failure, a publish failure), and with op "outbox.park" about each
// row parked (the error wraps ErrUnpublishable). Errors about one row (every
// park, and a publish failure about a row) are a *RowError naming it and its
// topic.
type ErrorHook interface {
	OnError(ctx context.Context, op string, err error)
}

// EnqueueHook is shown the messages of each Enqueue before they are
// validated and stored, with their ID and CreatedAt filled in, and may
// change them: tracing stamps the caller's trace context into their
// Headers. msgs is Enqueue's own copy of the caller's slice, but a
// message's Headers map is still the caller's: a hook that changes headers
// must set a new map, not write into the old one. What the hook leaves is
// validated like the rest, so a header it adds must keep the message within
// the limits.
type EnqueueHook interface {
	OnEnqueue(ctx context.Context, topic string, msgs []eos.Message)
}

// ForwardedFunc adapts a function to a ForwardedHook.
type ForwardedFunc func(ctx context.Context, rows []driver.OutboxRow, sentAt time.Time)

// OnForwarded calls f.
func (f ForwardedFunc) OnForwarded(ctx context.Context, rows []driver.OutboxRow, sentAt time.Time) {
	f(ctx, rows, sentAt)
}

// ErrorFunc adapts a function to an ErrorHook.
type ErrorFunc func(ctx context.Context, op string, err error)

// OnError calls f.
func (f ErrorFunc) OnError(ctx context.Context, op string, err error) { f(ctx, op, err) }

// hooks are a relay's hooks sorted by kind, once, at NewRelay.
type hooks struct {
	forwarded []ForwardedHook
	errs      []ErrorHook
}

func newHooks(field string, hs []Hook) (hooks, error) {
	var out hooks
	for i, h := range hs {
		known := false
		if f, ok := h.(ForwardedHook); ok {
			out.forwarded, known = append(out.forwarded, f), true
		}
		if e, ok := h.(ErrorHook); ok {
			out.errs, known = append(out.errs, e), true
		}
		if !known {
			return hooks{}, &eos.ConfigError{Field: fmt.Sprintf("%s[%d]", field, i), Reason: fmt.Sprintf("%T implements no hook interface (ForwardedHook, ErrorHook)", h)}
		}
	}
	return out, nil
}

// enqueueHooks returns the EnqueueHooks of hs, or a *eos.ConfigError
// naming the first hook that is not one.
func enqueueHooks(field string, hs []Hook) ([]EnqueueHook, error) {
	var out []EnqueueHook
	for i, h := range hs {
		e, ok := h.(EnqueueHook)
		if !ok {
			return nil, &eos.ConfigError{Field: fmt.Sprintf("%s[%d]", field, i), Reason: fmt.Sprintf("%T is not an EnqueueHook", h)}
		}
		out = append(out, e)
	}
	return out, nil
}

func (h *hooks) onForwarded(ctx context.Context, rows []driver.OutboxRow, sentAt time.Time) {
	for _, f := range h.forwarded {
		f.OnForwarded(ctx, rows, sentAt)
	}
}

func (h *hooks) onError(ctx context.Context, op string, err error) {
	for _, e := range h.errs {
		e.OnError(ctx, op, err)
	}
}
