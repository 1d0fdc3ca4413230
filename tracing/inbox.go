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
// inbox.Config.Hooks. It implements inbox.BatchDoneHook and
// inbox.ErrorHook, and does not block.
//
// For each committed batch it records, after the fact and with the times
// the inbox measured, a batch span (SpanInboxBatch, over the batch's
// BatchResult.Timeline) with a child for each phase of each round
// (SpanInboxClaim, SpanInboxHandle, SpanInboxCommit; AttrRound says which
// round); and for each delivery a consumer span "process <subject>" over
// the batch's time, whose parent is the trace context the message carried
// (none: a new trace), linked to the batch span, with its decision
// (AttrDecision) and the messaging attributes. A delivery to retry or
// dead-letter carries its error; a quarantined one an error status too. A
// batch that did not commit (the store failed) makes no spans: the inbox
// retries it, and its spans come with the commit; each such failure is a
// span SpanInboxError of its own, with the step (AttrOp) and the error.
func (t *Tracing) InboxHook() inbox.Hook { return inboxHook{t} }

type inboxHook struct{ t *Tracing }

var _ inbox.BatchDoneHook = inboxHook{}

func (h inboxHook) OnBatchDone(ctx context.Context, r *inbox.BatchResult) {
	t := h.t
	if !t.on() || len(r.Results) == 0 {
		return
	}
	consumer := attribute.String(attrConsumerGroup, r.Consumer)
	start, end := r.Started, r.CommittedAt
	if n := len(r.Timeline); n > 0 {
		start, end = r.Timeline[0].Start, r.Timeline[n-1].End
	}
	bctx, batch := t.tracer.Start(ctx, SpanInboxBatch, trace.WithTimestamp(start),
		trace.WithAttributes(t.system, consumer, attribute.String(attrOperationType, "process"),
			attribute.Int(attrBatchCount, len(r.Results)), attribute.Int(AttrRounds, r.Rounds)))
	t.phaseSpans(bctx, r)
	// The options all consumer spans share, made once.
	p := processOpts{consumer: consumer, end: trace.WithTimestamp(end), start: []trace.SpanStartOption{
		trace.WithSpanKind(trace.SpanKindConsumer), trace.WithTimestamp(start),
		trace.WithLinks(trace.Link{SpanContext: batch.SpanContext()}), nil}}
	var names spanNames
	for i := range r.Results {
		t.processSpan(ctx, &r.Results[i], names.process(r.Results[i].Subject), &p)
	}
	batch.End(p.end)
}

// phaseSpans records a span for each phase of each round of r, as the
// inbox timed them; without a timeline, one per phase with the phase's
// total, laid end to end from r.Started.
func (t *Tracing) phaseSpans(ctx context.Context, r *inbox.BatchResult) {
	timeline := r.Timeline
	if len(timeline) == 0 {
		at := r.Started
		for _, ph := range [...]struct {
			p inbox.Phase
			d time.Duration
		}{{inbox.PhaseClaim, r.Phases.Claim}, {inbox.PhaseHandle, r.Phases.Handle}, {inbox.PhaseCommit, r.Phases.Commit}} {
			timeline = append(timeline, inbox.PhaseTime{Phase: ph.p, Start: at, End: at.Add(ph.d)})
			at = at.Add(ph.d)
		}
	}
	for _, pt := range timeline {
		name := phaseSpanName(pt.Phase)
		if name == "" {
			continue
		}
		opts := []trace.SpanStartOption{trace.WithTimestamp(pt.Start)}
		if pt.Round > 0 {
			opts = append(opts, trace.WithAttributes(attribute.Int(AttrRound, pt.Round)))
		}
		_, sp := t.tracer.Start(ctx, name, opts...)
		sp.End(trace.WithTimestamp(pt.End))
	}
}

func phaseSpanName(p inbox.Phase) string {
	switch p {
	case inbox.PhaseClaim:
		return SpanInboxClaim
	case inbox.PhaseHandle:
		return SpanInboxHandle
	case inbox.PhaseCommit:
		return SpanInboxCommit
	}
	return ""
}

// spanNames remembers the last consumer span name made: the deliveries of
// a batch mostly share a subject.
type spanNames struct{ subject, name string }

func (n *spanNames) process(subject string) string {
	if subject == "" {
		return spanProcess
	}
	if subject != n.subject || n.name == "" {
		n.subject, n.name = subject, spanProcess+" "+subject
	}
	return n.name
}

// processOpts are the options of a batch's consumer spans; the last of
// start is each span's attributes.
type processOpts struct {
	consumer attribute.KeyValue
	start    []trace.SpanStartOption
	end      trace.SpanEndOption
}

// processSpan records res's consumer span.
func (t *Tracing) processSpan(ctx context.Context, res *inbox.Result, name string, p *processOpts) {
	ctx = remoteContext(ctx, res.Headers)
	attrs := make([]attribute.KeyValue, 0, 9)
	attrs = append(attrs, t.system, p.consumer, attribute.String(attrOperationType, "process"),
		attribute.String(attrMessageID, res.ID), attribute.String(AttrDecision, res.Outcome.String()))
	if res.Subject != "" {
		attrs = append(attrs, attribute.String(attrDestination, res.Subject))
	}
	if res.Attempts > 0 {
		attrs = append(attrs, attribute.Int(AttrAttempts, res.Attempts))
	}
	if res.DeliveryCount > 0 {
		attrs = append(attrs, attribute.Int(AttrDeliveryCount, res.DeliveryCount))
	}
	p.start[len(p.start)-1] = trace.WithAttributes(attrs...)
	_, sp := t.tracer.Start(ctx, name, p.start...)
	switch res.Outcome {
	case inbox.Retry, inbox.DeadLettered:
		fail(sp, res.Err)
	case inbox.Quarantined:
		sp.SetStatus(codes.Error, "quarantined: the id was applied before with another payload")
	}
	sp.End(p.end)
}
