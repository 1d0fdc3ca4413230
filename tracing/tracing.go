package tracing

import (
	"fmt"
	"unicode/utf8"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/eoskit/eos"
	"github.com/eoskit/eos/internal/redact"
	"github.com/eoskit/eos/internal/storable"
)

// InstrumentationName is the name of the tracer eos takes from the
// TracerProvider it is given: an exporter or a sampler can tell eos's
// spans by it.
const InstrumentationName = "github.com/eoskit/eos/tracing"

// DefaultSystem is the default of Config.System.
const DefaultSystem = "eos"

// MaxSystemLen bounds Config.System, in bytes.
const MaxSystemLen = 64

// MaxErrorLen bounds the error text put on a span (its status description
// and its exception event), in bytes: errors can carry what a message or a
// broker said, which eos bounds before it leaves the process.
const MaxErrorLen = 1024

// Attribute names eos sets besides OpenTelemetry's messaging ones.
const (
	// AttrDecision is what the inbox decided for a delivery: an
	// inbox.Outcome's String (applied, duplicate, quarantined,
	// dead_lettered, retry).
	AttrDecision = "eos.decision"
	// AttrAttempts is how many times the handler failed on the message so
	// far (on retry and dead_lettered).
	AttrAttempts = "eos.attempts"
	// AttrDeliveryCount is which delivery of the message it was, when the
	// transport says (1 for the first).
	AttrDeliveryCount = "eos.delivery_count"
	// AttrRounds is how many transactions an inbox batch took (1 plus
	// one per redo after a handler failure).
	AttrRounds = "eos.inbox.rounds"
	// AttrRound is which of them a phase's span belongs to, from 1.
	AttrRound = "eos.inbox.round"
)

// OpenTelemetry's messaging attributes (semantic conventions), written out
// here so that eos depends on no version of the semconv packages.
const (
	attrSystem        = "messaging.system"
	attrOperationType = "messaging.operation.type"
	attrOperationName = "messaging.operation.name"
	attrDestination   = "messaging.destination.name"
	attrMessageID     = "messaging.message.id"
	attrConsumerGroup = "messaging.consumer.group.name"
	attrBatchCount    = "messaging.batch.message_count"
)

// Config tunes a Tracing. The zero Config is ready to use.
type Config struct {
	// System is the messaging.system attribute of eos's spans: name the
	// broker your messages travel through ("nats", "kafka"). Default
	// DefaultSystem; at most MaxSystemLen bytes of valid UTF-8.
	System string
}

// WithDefaults returns a copy of c with the defaults applied, or a
// *eos.ConfigError naming the first invalid field.
func (c Config) WithDefaults() (Config, error) {
	if c.System == "" {
		c.System = DefaultSystem
	}
	if len(c.System) > MaxSystemLen || !utf8.ValidString(c.System) {
		return c, &eos.ConfigError{Field: "tracing.Config.System",
			Reason: fmt.Sprintf("not valid UTF-8 of at most %d bytes", MaxSystemLen)}
	}
	return c, nil
}

// Tracing makes the spans of eos's components from the TracerProvider it
// was given, through hooks ([Tracing.InboxHook], [Tracing.OutboxHook],
// [Tracing.RelayHook]) and a Publisher wrapper ([Tracing.Publisher]). Without a TracerProvider it
// makes none, and its hooks return at once; a nil *Tracing behaves the
// same.
type Tracing struct {
	tracer trace.Tracer // nil: tracing off
	system attribute.KeyValue
}

// New returns a Tracing making spans from tp; a nil tp turns tracing off.
// eos never reads OpenTelemetry's global provider: a program that wants
// spans passes its provider here.
func New(tp trace.TracerProvider, cfg Config) (*Tracing, error) {
	cfg, err := cfg.WithDefaults()
	if err != nil {
		return nil, err
	}
	t := &Tracing{system: attribute.String(attrSystem, cfg.System)}
	if tp != nil {
		t.tracer = tp.Tracer(InstrumentationName)
	}
	return t, nil
}

func (t *Tracing) on() bool { return t != nil && t.tracer != nil }

// fail marks sp failed with err's text, redacted (a connection string in
// an error loses its secrets) and bounded.
func fail(sp trace.Span, err error) {
	if err == nil {
		sp.SetStatus(codes.Error, "")
		return
	}
	text := storable.Text(redact.Text(err.Error()), MaxErrorLen)
	sp.AddEvent("exception", trace.WithAttributes(
		attribute.String("exception.type", fmt.Sprintf("%T", err)),
		attribute.String("exception.message", text)))
	sp.SetStatus(codes.Error, text)
}
