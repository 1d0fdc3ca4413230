package tracing_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/eoskit/eos"
	"github.com/eoskit/eos/inbox"
	"github.com/eoskit/eos/inbox/inboxtest"
	"github.com/eoskit/eos/internal/testdb"
	"github.com/eoskit/eos/outbox"
	"github.com/eoskit/eos/outbox/outboxtest"
	"github.com/eoskit/eos/tracing"
)

// recorder is a Tracing whose spans land, as they end, in an in-memory
// exporter, and the provider it makes them from (for spans of the test's
// own).
type recorder struct {
	*tracing.Tracing
	exp *tracetest.InMemoryExporter
	tp  *sdktrace.TracerProvider
}

func newRecorder(t testing.TB, system string) recorder {
	t.Helper()
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp), sdktrace.WithSampler(sdktrace.AlwaysSample()))
	t.Cleanup(func() { tp.Shutdown(context.Background()) })
	tr, err := tracing.New(tp, tracing.Config{System: system})
	if err != nil {
		t.Fatal(err)
	}
	return recorder{tr, exp, tp}
}

// start starts a span of the test's own.
func (r recorder) start(ctx context.Context, name string) (context.Context, trace.Span) {
	return r.tp.Tracer("test").Start(ctx, name)
}

// spans returns the ended spans named name (or whose name starts with
// name and a space).
func (r recorder) spans(name string) []tracetest.SpanStub {
	var out []tracetest.SpanStub
	for _, s := range r.exp.GetSpans() {
		if s.Name == name || strings.HasPrefix(s.Name, name+" ") {
			out = append(out, s)
		}
	}
	return out
}

func attr(s tracetest.SpanStub, key string) string {
	for _, a := range s.Attributes {
		if string(a.Key) == key {
			return a.Value.Emit()
		}
	}
	return ""
}

// traceparent returns headers carrying sc.
func traceparent(sc trace.SpanContext) map[string]string {
	return tracing.Inject(trace.ContextWithSpanContext(context.Background(), sc), nil)
}

func TestInjectAndContextFor(t *testing.T) {
	r := newRecorder(t, "test")
	ctx, sp := r.start(context.Background(), "producer")
	defer sp.End()

	orig := map[string]string{"X-Other": "1", "Traceparent": "00-00000000000000000000000000000001-0000000000000001-01"}
	h := tracing.Inject(ctx, orig)
	if len(orig) != 2 || orig["Traceparent"] != "00-00000000000000000000000000000001-0000000000000001-01" {
		t.Fatalf("Inject changed the headers it was given: %v", orig)
	}
	if h["X-Other"] != "1" || h["Traceparent"] != "" || h[tracing.HeaderTraceparent] == "" {
		t.Fatalf("Inject: %v, want X-Other kept and the old traceparent replaced by one in lower case", h)
	}
	got := trace.SpanContextFromContext(tracing.ContextFor(context.Background(), eos.Message{Headers: h}))
	if got.TraceID() != sp.SpanContext().TraceID() || got.SpanID() != sp.SpanContext().SpanID() || !got.IsRemote() {
		t.Fatalf("ContextFor: %v, want the remote context of %v", got, sp.SpanContext())
	}
	// A header name in another case is still read.
	mixed := map[string]string{"TraceParent": h[tracing.HeaderTraceparent]}
	if sc := trace.SpanContextFromContext(tracing.ContextFor(context.Background(), eos.Message{Headers: mixed})); sc.SpanID() != sp.SpanContext().SpanID() {
		t.Fatalf("ContextFor with header TraceParent: %v", sc)
	}

	// A tracestate travels with it.
	ts, err := trace.ParseTraceState("vendor=abc,other=1")
	if err != nil {
		t.Fatal(err)
	}
	withState := trace.ContextWithSpanContext(context.Background(), sp.SpanContext().WithTraceState(ts))
	h = tracing.Inject(withState, nil)
	if h[tracing.HeaderTracestate] != "vendor=abc,other=1" {
		t.Errorf("Inject wrote tracestate %q", h[tracing.HeaderTracestate])
	}
	if got := trace.SpanContextFromContext(tracing.ContextFor(context.Background(), eos.Message{Headers: h})); got.TraceState().Get("vendor") != "abc" {
		t.Errorf("ContextFor read tracestate %q", got.TraceState())
	}

	for _, bad := range []string{"", "garbage", "00-00000000000000000000000000000000-0000000000000001-01", strings.Repeat("x", 9000)} {
		base := context.Background()
		if got := tracing.ContextFor(base, eos.Message{Headers: map[string]string{"traceparent": bad}}); got != base {
			t.Errorf("ContextFor(traceparent %.20q) = a new context, want ctx itself", bad)
		}
	}
	if h := tracing.Inject(context.Background(), orig); fmt.Sprint(h) != fmt.Sprint(orig) {
		t.Errorf("Inject without a span: %v, want the headers unchanged", h)
	}

	full := map[string]string{}
	for i := range eos.MaxHeaders {
		full[fmt.Sprintf("H%d", i)] = "v"
	}
	if h := tracing.Inject(ctx, full); len(h) != eos.MaxHeaders || h[tracing.HeaderTraceparent] != "" {
		t.Errorf("Inject into %d headers: %d headers, want them unchanged (no room)", eos.MaxHeaders, len(h))
	}
}

// TestOff: without a TracerProvider (or without a Tracing) nothing is
// recorded and nothing is changed.
func TestOff(t *testing.T) {
	off, err := tracing.New(nil, tracing.Config{})
	if err != nil {
		t.Fatal(err)
	}
	for _, tr := range []*tracing.Tracing{off, nil} {
		pub := outboxtest.NewPublisher()
		if got := tr.Publisher(pub); got != outbox.Publisher(pub) {
			t.Errorf("Publisher with tracing off: %T, want the publisher itself", got)
		}
		msgs := []eos.Message{{ID: "a"}}
		tr.OutboxHook().(outbox.EnqueueHook).OnEnqueue(context.Background(), "t", msgs)
		if msgs[0].Headers != nil {
			t.Errorf("OnEnqueue with tracing off set headers %v", msgs[0].Headers)
		}
		res := &inbox.BatchResult{Results: []inbox.Result{{ID: "a", Headers: map[string]string{tracing.HeaderTraceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}}}}
		inboxHook, outboxHook := tr.InboxHook().(inbox.BatchDoneHook), tr.OutboxHook().(outbox.EnqueueHook)
		ctx := context.Background()
		if n := testing.AllocsPerRun(100, func() {
			inboxHook.OnBatchDone(ctx, res)
			outboxHook.OnEnqueue(ctx, "t", msgs)
		}); n != 0 {
			t.Errorf("the hooks with tracing off allocate %v times a call", n)
		}
	}
}

func TestConfig(t *testing.T) {
	c, err := tracing.Config{}.WithDefaults()
	if err != nil || c.System != tracing.DefaultSystem {
		t.Errorf("defaults: %+v, %v", c, err)
	}
	var ce *eos.ConfigError
	if _, err := tracing.New(nil, tracing.Config{System: strings.Repeat("n", tracing.MaxSystemLen+1)}); !errors.As(err, &ce) || ce.Field != "tracing.Config.System" {
		t.Errorf("System too long: %v, want a config error on it", err)
	}
}

// TestInboxSpans processes a batch on SQLite — a traced message applied,
// an untraced one, one that fails permanently — then the same messages
// again (duplicates, one with another payload: quarantined), and checks
// each span, its parent, its link to its batch and its times.
func TestInboxSpans(t *testing.T) {
	ctx := context.Background()
	r := newRecorder(t, "test")
	e := testdb.SQLite(t)
	secret := "postgres://app:hunter2@db.example/pay " + strings.Repeat("é", 2*tracing.MaxErrorLen)
	p, err := inbox.New(e.Driver, func(ctx context.Context, tx *sql.Tx, m eos.Message) error {
		if m.ID == "poison" {
			return inbox.Permanent(errors.New("cannot connect to " + secret))
		}
		return nil
	}, inbox.Config{Consumer: "orders", Hooks: []inbox.Hook{r.InboxHook()}})
	if err != nil {
		t.Fatal(err)
	}
	_, producer := r.start(ctx, "producer")
	producer.End()
	msgs := []eos.Message{
		{ID: "traced", Payload: []byte("1"), Subject: "orders.created", Headers: traceparent(producer.SpanContext())},
		{ID: "plain", Payload: []byte("2"), Subject: "orders.created"},
		{ID: "poison", Payload: []byte("3"), Subject: "orders.created", Headers: traceparent(producer.SpanContext())},
	}
	first, _ := inboxtest.Process(ctx, t, p, msgs...)
	msgs[1].Payload = []byte("changed")
	inboxtest.Process(ctx, t, p, msgs...)

	batches := r.spans(tracing.SpanInboxBatch)
	if len(batches) != 2 {
		t.Fatalf("%d batch spans, want 2", len(batches))
	}
	b := batches[0]
	tl := first.Timeline
	if first.Rounds != 2 {
		t.Fatalf("the first batch took %d rounds, want 2 (the poison message's failure redoes it)", first.Rounds)
	}
	if len(tl) < 3 || !b.StartTime.Equal(tl[0].Start) || !b.EndTime.Equal(tl[len(tl)-1].End) {
		t.Fatalf("batch span %v–%v, want its timeline's %v", b.StartTime, b.EndTime, tl)
	}
	if attr(b, "messaging.batch.message_count") != "3" || attr(b, "messaging.consumer.group.name") != "orders" || attr(b, tracing.AttrRounds) != fmt.Sprint(first.Rounds) {
		t.Errorf("batch span attributes %v", b.Attributes)
	}
	var children []string
	for _, s := range r.exp.GetSpans() {
		if s.Parent.SpanID() == b.SpanContext.SpanID() {
			children = append(children, fmt.Sprintf("%s round %s %v+%v", s.Name, attr(s, tracing.AttrRound), s.StartTime, s.EndTime.Sub(s.StartTime)))
		}
	}
	var want []string
	for _, pt := range tl {
		want = append(want, fmt.Sprintf("eos.inbox.%v round %d %v+%v", pt.Phase, pt.Round, pt.Start, pt.End.Sub(pt.Start)))
	}
	if fmt.Sprint(children) != fmt.Sprint(want) {
		t.Errorf("batch span's children:\n%s\nwant the timeline:\n%s", strings.Join(children, "\n"), strings.Join(want, "\n"))
	}

	type key struct{ id, decision string }
	got := map[key]tracetest.SpanStub{}
	for _, s := range r.spans("process") {
		got[key{attr(s, "messaging.message.id"), attr(s, tracing.AttrDecision)}] = s
	}
	for _, want := range []struct {
		key
		batch  int
		traced bool
	}{
		{key{"traced", "applied"}, 0, true}, {key{"plain", "applied"}, 0, false}, {key{"poison", "dead_lettered"}, 0, true},
		{key{"traced", "duplicate"}, 1, true}, {key{"plain", "quarantined"}, 1, false}, {key{"poison", "duplicate"}, 1, true},
	} {
		s, ok := got[want.key]
		if !ok {
			t.Errorf("no process span for %v; have %v", want.key, got)
			continue
		}
		if s.Name != "process orders.created" || s.SpanKind != trace.SpanKindConsumer || attr(s, "messaging.destination.name") != "orders.created" ||
			attr(s, "messaging.system") != "test" || attr(s, "messaging.consumer.group.name") != "orders" {
			t.Errorf("%v: span %q kind %v attributes %v", want.key, s.Name, s.SpanKind, s.Attributes)
		}
		if want.traced != (s.Parent.SpanID() == producer.SpanContext().SpanID() && s.SpanContext.TraceID() == producer.SpanContext().TraceID()) {
			t.Errorf("%v: parent %v, producer %v (traced %v)", want.key, s.Parent, producer.SpanContext(), want.traced)
		}
		bs := batches[want.batch]
		if len(s.Links) != 1 || s.Links[0].SpanContext.SpanID() != bs.SpanContext.SpanID() {
			t.Errorf("%v: links %v, want the batch span %v", want.key, s.Links, bs.SpanContext.SpanID())
		}
		if !s.StartTime.Equal(bs.StartTime) || !s.EndTime.Equal(bs.EndTime) {
			t.Errorf("%v: %v–%v, want its batch's %v–%v", want.key, s.StartTime, s.EndTime, bs.StartTime, bs.EndTime)
		}
	}
	dl := got[key{"poison", "dead_lettered"}]
	if dl.Status.Code.String() != "Error" || len(dl.Status.Description) > tracing.MaxErrorLen || strings.Contains(dl.Status.Description, "hunter2") ||
		!strings.Contains(dl.Status.Description, "cannot connect") {
		t.Errorf("dead letter status %q (%d bytes): want the error, redacted, within %d bytes", dl.Status.Description[:min(80, len(dl.Status.Description))], len(dl.Status.Description), tracing.MaxErrorLen)
	}
	if len(dl.Events) != 1 || dl.Events[0].Name != "exception" {
		t.Errorf("dead letter events %v, want one exception", dl.Events)
	}
	if q := got[key{"plain", "quarantined"}]; q.Status.Code.String() != "Error" {
		t.Errorf("quarantined status %v, want an error", q.Status)
	}
	if a := got[key{"traced", "applied"}]; a.Status.Code.String() != "Unset" {
		t.Errorf("applied status %v, want unset", a.Status)
	}
}

// TestOutboxHook enqueues on SQLite under a span of the caller's: rows
// without a trace get a create span under the caller's, a row with one a
// create span under its own, and a message enqueued without either stays
// as it was.
func TestOutboxHook(t *testing.T) {
	ctx := context.Background()
	r := newRecorder(t, "test")
	e := testdb.SQLite(t)
	ob, err := outbox.New(e.Driver, outbox.Config{Hooks: []outbox.Hook{r.OutboxHook()}})
	if err != nil {
		t.Fatal(err)
	}
	_, other := r.start(ctx, "other")
	other.End()
	own := traceparent(other.SpanContext())
	own["X-Kept"] = "yes"
	caller, sp := r.start(ctx, "handler")
	tx, err := e.Driver.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Driver.Rollback(ctx, tx)
	msgs := []eos.Message{{ID: "a", Payload: []byte("a")}, {ID: "b", Payload: []byte("b"), Headers: own}}
	if err := ob.Enqueue(caller, tx, "charges", msgs...); err != nil {
		t.Fatal(err)
	}
	if err := ob.Enqueue(ctx, tx, "charges", eos.Message{ID: "c", Payload: []byte("c")}); err != nil {
		t.Fatal(err)
	}
	sp.End()
	if msgs[0].Headers != nil || len(own) != 2 {
		t.Fatalf("Enqueue changed the caller's messages: %v, %v", msgs[0].Headers, own)
	}
	rows := outboxtest.EnqueuedTx(ctx, t, e.Driver, tx, "charges")
	creates := map[string]tracetest.SpanStub{}
	for _, s := range r.spans("create") {
		creates[attr(s, "messaging.message.id")] = s
	}
	if len(rows) != 3 || len(creates) != 2 {
		t.Fatalf("%d rows, %d create spans (%v), want 3 and 2", len(rows), len(creates), creates)
	}
	for i, parent := range []trace.SpanContext{sp.SpanContext(), other.SpanContext()} {
		row := rows[i]
		s := creates[row.ID]
		if s.Name != "create charges" || s.SpanKind != trace.SpanKindProducer || s.Parent.SpanID() != parent.SpanID() || s.SpanContext.TraceID() != parent.TraceID() {
			t.Errorf("row %s: create span %q kind %v parent %v, want under %v", row.ID, s.Name, s.SpanKind, s.Parent.SpanID(), parent.SpanID())
		}
		if sc := trace.SpanContextFromContext(tracing.ContextFor(ctx, row)); sc.SpanID() != s.SpanContext.SpanID() {
			t.Errorf("row %s stored %v, want its create span %v", row.ID, sc.SpanID(), s.SpanContext.SpanID())
		}
	}
	if rows[1].Headers["X-Kept"] != "yes" {
		t.Errorf("row b lost its other headers: %v", rows[1].Headers)
	}
	if rows[2].Headers != nil {
		t.Errorf("row c, enqueued without a trace: headers %v", rows[2].Headers)
	}
}

func TestOutboxHookIsChecked(t *testing.T) {
	e := testdb.SQLite(t)
	var ce *eos.ConfigError
	if _, err := outbox.New(e.Driver, outbox.Config{Hooks: []outbox.Hook{outbox.ErrorFunc(func(context.Context, string, error) {})}}); !errors.As(err, &ce) {
		t.Errorf("outbox.New with a relay hook: %v, want a config error", err)
	}
}

// TestPublisher: each message gets a send span under the trace it carries
// (or the caller's), is published with that span's context, and a message
// the broker did not acknowledge has an error status.
func TestPublisher(t *testing.T) {
	ctx := context.Background()
	r := newRecorder(t, "test")
	_, stored := r.start(ctx, "stored")
	stored.End()
	caller, sp := r.start(ctx, "producer")
	defer sp.End()
	inner := outboxtest.NewPublisher()
	pub := r.Publisher(inner)
	envs := []outbox.Envelope{
		{Topic: "pay", Message: eos.Message{ID: "1", Headers: traceparent(stored.SpanContext())}},
		{Topic: "pay", Message: eos.Message{ID: "2"}},
		{Topic: "pay", Message: eos.Message{ID: "3"}},
	}
	inner.FailNext(1, errors.New("broker said no to nats://u:hunter2@host"))
	if acked, err := pub.Publish(caller, envs); acked != 1 || err == nil {
		t.Fatalf("Publish: %d, %v; want 1 and the error", acked, err)
	}
	if envs[0].Headers[tracing.HeaderTraceparent] != traceparent(stored.SpanContext())[tracing.HeaderTraceparent] || envs[1].Headers != nil {
		t.Fatalf("Publish changed the caller's envelopes: %v", envs)
	}
	sends := map[string]tracetest.SpanStub{}
	for _, s := range r.spans("send") {
		sends[attr(s, "messaging.message.id")] = s
	}
	for id, want := range map[string]struct {
		parent trace.SpanContext
		status string
	}{"1": {stored.SpanContext(), "Unset"}, "2": {sp.SpanContext(), "Error"}, "3": {sp.SpanContext(), "Error"}} {
		s := sends[id]
		if s.Name != "send pay" || s.SpanKind != trace.SpanKindProducer || s.Parent.SpanID() != want.parent.SpanID() || s.Status.Code.String() != want.status {
			t.Errorf("message %s: span %q kind %v parent %v status %v, want parent %v status %s", id, s.Name, s.SpanKind, s.Parent.SpanID(), s.Status, want.parent.SpanID(), want.status)
		}
		if strings.Contains(s.Status.Description, "hunter2") {
			t.Errorf("message %s: status %q shows the password", id, s.Status.Description)
		}
	}
	published := inner.Published()
	if len(published) != 1 {
		t.Fatalf("published %d, want 1", len(published))
	}
	if sc := trace.SpanContextFromContext(tracing.ContextFor(ctx, published[0].Message)); sc.SpanID() != sends["1"].SpanContext.SpanID() {
		t.Errorf("published with %v, want its send span %v", sc.SpanID(), sends["1"].SpanContext.SpanID())
	}
}

// TestErrorSpans: a store failure the inbox reports, and a row the relay
// parks (on SQLite, its publisher refusing the row for good), are spans
// with the step and the error, redacted.
func TestErrorSpans(t *testing.T) {
	ctx := context.Background()
	r := newRecorder(t, "test")
	r.InboxHook().(inbox.ErrorHook).OnError(ctx, "orders", "inbox.claim", errors.New("dial postgres://app:hunter2@db/x: refused"))

	e := testdb.SQLite(t)
	testdb.Enqueue(t, e, nil, "charges", true, eos.Message{ID: "too-big", Payload: []byte("x")})
	pub := outboxtest.NewPublisher()
	pub.FailNext(0, fmt.Errorf("%w: larger than the broker takes", outbox.ErrUnpublishable))
	relay, err := outbox.NewRelay(e.Driver, r.Publisher(pub), outbox.RelayConfig{Hooks: []outbox.Hook{r.RelayHook()}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := relay.Forward(ctx); err != nil {
		t.Fatal(err)
	}

	in := r.spans(tracing.SpanInboxError)
	if len(in) != 1 || attr(in[0], tracing.AttrOp) != "inbox.claim" || attr(in[0], "messaging.consumer.group.name") != "orders" ||
		in[0].Status.Code.String() != "Error" || strings.Contains(in[0].Status.Description, "hunter2") {
		t.Errorf("inbox error spans %+v", in)
	}
	var parked []tracetest.SpanStub
	for _, s := range r.spans(tracing.SpanRelayError) {
		if attr(s, tracing.AttrOp) == "outbox.park" {
			parked = append(parked, s)
		}
	}
	if len(parked) != 1 || attr(parked[0], "messaging.message.id") != "too-big" || attr(parked[0], "messaging.destination.name") != "charges" ||
		!strings.Contains(parked[0].Status.Description, "larger than the broker takes") {
		t.Errorf("parked row spans %+v", parked)
	}
	if send := r.spans("send charges"); len(send) != 1 || send[0].Status.Code.String() != "Error" {
		t.Errorf("send spans %+v, want one failed", send)
	}
}
