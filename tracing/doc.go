// Package tracing carries OpenTelemetry traces through eos: a message's
// W3C trace context (the traceparent and tracestate headers of
// eos.Message.Headers) travels from the producer through the outbox and the
// relay to the inbox, and each step records spans in that trace.
//
// It uses the OpenTelemetry API only; the SDK, the sampler and the exporter
// are the program's choice. A [Tracing] is made from the
// trace.TracerProvider the program passes to [New], never from
// OpenTelemetry's global one; with a nil provider it records nothing and
// its hooks return at once, so a program can wire it unconditionally.
//
// Wiring, each part optional:
//
//   - a producer publishes through [Tracing.Publisher] (a span "send
//     <subject>" per message, under the caller's span), or writes its
//     context into a message itself with [Inject];
//   - [Tracing.OutboxHook] in outbox.Config.Hooks: an enqueued message gets
//     a span "create <topic>" under its own trace context or the caller's
//     span, and the row stores that span's context;
//   - the relay's Publisher wrapped with [Tracing.Publisher]: a span "send
//     <topic>" per row, under the context the row stored, published in
//     the message's headers;
//   - [Tracing.InboxHook] in inbox.Config.Hooks: per batch a span with the
//     claim, handle and commit phases as children, and per delivery a
//     consumer span "process <subject>" under the message's trace context,
//     linked to the batch span, with the inbox's decision as the
//     attribute eos.decision (applied, duplicate, quarantined,
//     dead_lettered, retry); a store failure that stalls the inbox is a
//     span of its own;
//   - [Tracing.RelayHook] in outbox.RelayConfig.Hooks: the relay's failures
//     and parked rows as spans.
//
// The inbox's spans are recorded when the batch has committed, with the
// times the inbox measured (inbox.BatchResult), so tracing adds nothing to
// the transaction. A handler's own work therefore cannot be a child of the
// consumer span; a handler continues the message's trace with
// [ContextFor] — its spans become siblings of the consumer span, under the
// producer's — and carries it into what it enqueues with [Inject]:
//
//	func (h *Handler) Handle(ctx context.Context, tx *sql.Tx, m eos.Message) error {
//		ctx = tracing.ContextFor(ctx, m)
//		…
//		out := eos.Message{Payload: p, Headers: tracing.Inject(ctx, nil)}
//		return h.outbox.Enqueue(ctx, tx, "charges", out)
//	}
//
// A batch handler does the same per message, as it has one ctx for all:
// tracing.Inject(tracing.ContextFor(ctx, m), out.Headers).
//
// Headers do not count towards a message's fingerprint, so a re-publish
// with another traceparent is still a duplicate to the inbox.
package tracing
