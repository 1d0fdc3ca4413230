package tracing

import (
	"context"
	"strings"

	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/eoskit/eos"
)

// The W3C Trace Context headers eos reads and writes in eos.Message.Headers.
const (
	HeaderTraceparent = "traceparent"
	HeaderTracestate  = "tracestate"
)

// ContextFor returns ctx with m's trace context (its traceparent and
// tracestate headers) as the remote parent of the spans started from it,
// or ctx itself when m carries none or a malformed one. A handler calls it
// to continue the message's trace for its own work; [Inject] then carries
// that trace into the messages it enqueues.
func ContextFor(ctx context.Context, m eos.Message) context.Context {
	return remoteContext(ctx, m.Headers)
}

// Inject returns headers with ctx's span context written as traceparent
// (and tracestate, when it has one), replacing any trace headers they had.
// It returns a new map and leaves headers as they are: a message's headers
// may be shared. When ctx has no valid span context, or when the two
// headers would not fit in eos's limits (eos.MaxHeaders,
// eos.MaxHeaderBytes), it returns headers unchanged.
//
// A producer calls it on each message it publishes (or publishes through
// [Tracing.Publisher], which does it with a span of its own), and a handler
// on each message it enqueues:
//
//	out.Headers = tracing.Inject(tracing.ContextFor(ctx, in), out.Headers)
func Inject(ctx context.Context, headers map[string]string) map[string]string {
	sc := trace.SpanContextFromContext(ctx)
	if !sc.IsValid() {
		return headers
	}
	return withSpanContext(headers, sc)
}

// remoteContext returns ctx with the span context of headers as its
// remote parent, or ctx itself when they carry none or a malformed one.
func remoteContext(ctx context.Context, h map[string]string) context.Context {
	if len(h) == 0 {
		return ctx
	}
	return propagation.TraceContext{}.Extract(ctx, carrier(h))
}

// withSpanContext returns a copy of h carrying sc, or h when sc is not
// valid or the copy would break eos's header limits.
func withSpanContext(h map[string]string, sc trace.SpanContext) map[string]string {
	if !sc.IsValid() {
		return h
	}
	out := make(map[string]string, len(h)+2)
	total := 0
	for k, v := range h {
		if !isTraceHeader(k) {
			out[k] = v
			total += len(k) + len(v)
		}
	}
	propagation.TraceContext{}.Inject(trace.ContextWithSpanContext(context.Background(), sc), carrier(out))
	for _, k := range [...]string{HeaderTraceparent, HeaderTracestate} {
		if v, ok := out[k]; ok {
			total += len(k) + len(v)
		}
	}
	if len(out) > eos.MaxHeaders || total > eos.MaxHeaderBytes {
		return h
	}
	return out
}

func isTraceHeader(name string) bool {
	return strings.EqualFold(name, HeaderTraceparent) || strings.EqualFold(name, HeaderTracestate)
}

// carrier lets the W3C propagator read and write an eos.Message's headers.
// Header names are matched exactly first (eos writes them in lower case),
// then without regard to case, as a transport may have changed it.
type carrier map[string]string

func (c carrier) Get(key string) string {
	if v, ok := c[key]; ok {
		return v
	}
	for k, v := range c {
		if strings.EqualFold(k, key) {
			return v
		}
	}
	return ""
}

func (c carrier) Set(key, value string) { c[key] = value }

func (c carrier) Keys() []string {
	keys := make([]string, 0, len(c))
	for k := range c {
		keys = append(keys, k)
	}
	return keys
}
