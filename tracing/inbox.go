package tracing

import (
	"context"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/eoskit/eos/inbox"
)

// Names of the inbox's spans. A message's span is named "process" and its
// subject ("process orders.created"), or "process" alone when the
// transport named none.
const (
	SpanInboxBatch  = "eos.inbox.batch"
	SpanInboxClaim  = "eos.inbox.claim"
	SpanInboxHandle = "eos.inbox.handle"
	SpanInboxCommit = "eos.inbox.commit"
	spanProcess     = "process"
)

// InboxHook returns the hook that traces an inbox: add it to
// inbox.Config.Hooks. It implements inbox.BatchDoneHook and does not
// block.
//
// For each committed batch it records, after the fact and with the times
// the inbox measured, a batch span (SpanInboxBatch, from BatchResult.Started
// to CommittedAt) with three children laid end to end from Started for
// the phases (SpanInboxClaim, SpanInboxHandle, SpanInboxCommit: each the
// phase's total over the batch's rounds, so with more than one round, see
// AttrRounds, they are sums, not the moments the phases ran); and for each
// delivery a consumer span "process <subject>" over the batch's time,
// whose parent is the trace context the message carried (none: a new
// trace), linked to the batch span, with its decision (AttrDecision) and
// the messaging attributes. A delivery to retry or dead-letter carries its
// error; a quarantined one an error status too. A batch that did not commit
// (the store failed) makes no spans: the inbox retries it, and its spans
// come with the commit.
func (t *Tracing) InboxHook() inbox.Hook { return inboxHook{t} }

type inboxHook struct{ t *Tracing }

var _ inbox.BatchDoneHook = inboxHook{}

func (h inboxHook) OnBatchDone(ctx context.Context, r *inbox.BatchResult) {
	t := h.t
	if !t.on() || len(r.Results) == 0 {
		return
	}
	consumer := attribute.String(attrConsumerGroup, r.Consumer)
	bctx, batch := t.tracer.Start(ctx, SpanInboxBatch, trace.WithTimestamp(r.Started),
		trace.WithAttributes(t.system, consumer, attribute.String(attrOperationType, "process"),
			attribute.Int(attrBatchCount, len(r.Results)), attribute.Int(AttrRounds, r.Rounds)))
	at := r.Started
	for _, ph := range [...]struct {
		name string
		d    time.Duration
	}{{SpanInboxClaim, r.Phases.Claim}, {SpanInboxHandle, r.Phases.Handle}, {SpanInboxCommit, r.Phases.Commit}} {
		_, sp := t.tracer.Start(bctx, ph.name, trace.WithTimestamp(at))
		at = at.Add(ph.d)
		sp.End(trace.WithTimestamp(at))
	}
	link := trace.WithLinks(trace.Link{SpanContext: batch.SpanContext()})
	for i := range r.Results {
		t.processSpan(ctx, r, &r.Results[i], consumer, link)
	}
	batch.End(trace.WithTimestamp(r.CommittedAt))
}

// processSpan records res's consumer span.
func (t *Tracing) processSpan(ctx context.Context, r *inbox.BatchResult, res *inbox.Result, consumer attribute.KeyValue, link trace.SpanStartOption) {
	if sc := spanContext(res.Headers); sc.IsValid() {
		ctx = trace.ContextWithRemoteSpanContext(ctx, sc)
	}
	name := spanProcess
	attrs := make([]attribute.KeyValue, 0, 9)
	attrs = append(attrs, t.system, consumer, attribute.String(attrOperationType, "process"),
		attribute.String(attrMessageID, res.ID), attribute.String(AttrDecision, res.Outcome.String()))
	if res.Subject != "" {
		name = spanProcess + " " + res.Subject
		attrs = append(attrs, attribute.String(attrDestination, res.Subject))
	}
	if res.Attempts > 0 {
		attrs = append(attrs, attribute.Int(AttrAttempts, res.Attempts))
	}
	if res.DeliveryCount > 0 {
		attrs = append(attrs, attribute.Int(AttrDeliveryCount, res.DeliveryCount))
	}
	_, sp := t.tracer.Start(ctx, name, trace.WithSpanKind(trace.SpanKindConsumer), trace.WithTimestamp(r.Started),
		link, trace.WithAttributes(attrs...))
	switch res.Outcome {
	case inbox.Retry, inbox.DeadLettered:
		fail(sp, res.Err)
	case inbox.Quarantined:
		sp.SetStatus(codes.Error, "quarantined: the id was applied before with another payload")
	}
	sp.End(trace.WithTimestamp(r.CommittedAt))
}
