package tracing

import (
	"context"
	"errors"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/eoskit/eos"
	"github.com/eoskit/eos/outbox"
)

// Span name prefixes of the outbox: "create <topic>" for an enqueued
// message, "send <topic>" for a published one.
const (
	spanCreate = "create"
	spanSend   = "send"
)

// OutboxHook returns the hook that carries traces into the outbox: add it
// to outbox.Config.Hooks. It implements outbox.EnqueueHook.
//
// For each enqueued message that has a trace to continue — its own
// traceparent header, else the span of Enqueue's ctx — it records a
// producer span "create <topic>" under that trace and writes the span's
// context into the message's headers, so the row stores it and the relay's
// publish continues it. A message with neither is left as it is. The span
// is ended before the row is written: it says the message was created, and
// stays in the trace even if the transaction rolls back.
func (t *Tracing) OutboxHook() outbox.Hook { return outboxHook{t} }

type outboxHook struct{ t *Tracing }

var _ outbox.EnqueueHook = outboxHook{}

func (h outboxHook) OnEnqueue(ctx context.Context, topic string, msgs []eos.Message) {
	t := h.t
	if !t.on() {
		return
	}
	caller := trace.SpanContextFromContext(ctx).IsValid()
	for i := range msgs {
		m := &msgs[i]
		pctx := remoteContext(ctx, m.Headers)
		if pctx == ctx && !caller {
			continue // no trace to continue
		}
		sp := t.startProducer(pctx, spanCreate, "create", topic, m.ID)
		m.Headers = withSpanContext(m.Headers, sp.SpanContext())
		sp.End()
	}
}

// startProducer starts a producer span named op and topic.
func (t *Tracing) startProducer(ctx context.Context, op, opType, topic, id string) trace.Span {
	_, sp := t.tracer.Start(ctx, op+" "+topic, trace.WithSpanKind(trace.SpanKindProducer),
		trace.WithAttributes(t.system, attribute.String(attrOperationType, opType),
			attribute.String(attrDestination, topic), attribute.String(attrMessageID, id)))
	return sp
}

// Publisher returns pub with a producer span "send <topic>" around each
// message it publishes: its parent is the trace context the message
// carries (for the relay, the one its row stored), else the span of
// Publish's ctx (for a producer), else none (a new trace); the message is
// published with the send span's context in its headers, so the consumer's
// span is its child. A message the broker did not acknowledge has an error
// status. With tracing off it returns pub itself.
//
// Wrap the Publisher given to outbox.NewRelay to trace the relay, and the
// one a producer publishes with to trace the producer.
func (t *Tracing) Publisher(pub outbox.Publisher) outbox.Publisher {
	if !t.on() {
		return pub
	}
	return &publisher{t: t, pub: pub}
}

type publisher struct {
	t   *Tracing
	pub outbox.Publisher
}

func (p *publisher) Publish(ctx context.Context, msgs []outbox.Envelope) (int, error) {
	spans := make([]trace.Span, len(msgs))
	out := make([]outbox.Envelope, len(msgs))
	for i, env := range msgs {
		pctx := remoteContext(ctx, env.Headers)
		spans[i] = p.t.startProducer(pctx, spanSend, "send", env.Topic, env.ID)
		env.Headers = withSpanContext(env.Headers, spans[i].SpanContext())
		out[i] = env
	}
	acked, err := p.pub.Publish(ctx, out)
	var also map[int]bool
	if pe := (*outbox.PublishError)(nil); errors.As(err, &pe) {
		also = make(map[int]bool, len(pe.AlsoAcked))
		for _, j := range pe.AlsoAcked {
			also[j] = true
		}
	}
	for i, sp := range spans {
		switch {
		case i < acked || also[i]:
		case i == acked && err != nil:
			fail(sp, err)
		default:
			sp.SetStatus(codes.Error, "not acknowledged: an earlier message of the call failed")
		}
		sp.End()
	}
	return acked, err
}
