package tracing

import (
	"context"
	"errors"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/eoskit/eos/inbox"
	"github.com/eoskit/eos/outbox"
)

// Names of the spans of failures the inbox and the relay report through
// their ErrorHooks, and the attribute naming the failed step (the hook's
// op, such as "inbox.claim" or "outbox.park").
const (
	SpanInboxError = "eos.inbox.error"
	SpanRelayError = "eos.relay.error"
	AttrOp         = "eos.op"
)

var (
	_ inbox.ErrorHook  = inboxHook{}
	_ outbox.ErrorHook = relayHook{}
)

// OnError records a span SpanInboxError for a failure of the store on the
// inbox's path: the batch stalls, acknowledges nothing and is retried, and
// its spans come only with its commit, so this span is what a trace shows
// of a stall.
func (h inboxHook) OnError(ctx context.Context, consumer, op string, err error) {
	if !h.t.on() {
		return
	}
	h.t.errorSpan(ctx, SpanInboxError, op, err, attribute.String(attrConsumerGroup, consumer))
}

// RelayHook returns the hook that records the relay's failures as spans:
// add it to outbox.RelayConfig.Hooks. It implements outbox.ErrorHook: each
// failed step (claim, publish, mark sent) and each parked row is a span
// SpanRelayError with the step (AttrOp), the error and, for a failure about
// one row, its id and topic. The relay's publishes themselves are traced by
// wrapping its Publisher ([Tracing.Publisher]).
func (t *Tracing) RelayHook() outbox.Hook { return relayHook{t} }

type relayHook struct{ t *Tracing }

func (h relayHook) OnError(ctx context.Context, op string, err error) {
	if !h.t.on() {
		return
	}
	var re *outbox.RowError
	if errors.As(err, &re) {
		h.t.errorSpan(ctx, SpanRelayError, op, err,
			attribute.String(attrMessageID, re.ID), attribute.String(attrDestination, re.Topic))
		return
	}
	h.t.errorSpan(ctx, SpanRelayError, op, err)
}

// errorSpan records a span named name for a failure of step op.
func (t *Tracing) errorSpan(ctx context.Context, name, op string, err error, attrs ...attribute.KeyValue) {
	attrs = append(attrs, t.system, attribute.String(AttrOp, op))
	_, sp := t.tracer.Start(ctx, name, trace.WithAttributes(attrs...))
	fail(sp, err)
	sp.End()
}
