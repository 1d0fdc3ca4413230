package outbox

import (
	"context"
	"slices"
	"strconv"
	"time"

	"github.com/eoskit/eos"
	"github.com/eoskit/eos/driver"
)

// Config configures an Outbox. The zero value is valid; [Config.WithDefaults]
// applies the defaults (New does).
type Config struct {
	// Limits bound enqueued messages. Default eos.Limits{}.
	Limits eos.Limits
	// Hooks are shown each Enqueue's messages before they are stored; see
	// [EnqueueHook]. Default none.
	Hooks []Hook
	// Test holds the clock, for tests.
	Test eos.TestConfig
}

// WithDefaults returns a copy of c with the defaults applied, or a
// *eos.ConfigError naming the first invalid field.
func (c Config) WithDefaults() (Config, error) {
	if err := c.Limits.Check(); err != nil {
		return c, err
	}
	if _, err := enqueueHooks("outbox.Config.Hooks", c.Hooks); err != nil {
		return c, err
	}
	c.Test = c.Test.WithDefaults()
	return c, nil
}

// Outbox enqueues messages in the caller's transaction.
type Outbox[TTx any] struct {
	drv   driver.Driver[TTx]
	cfg   Config
	hooks []EnqueueHook
}

// New returns an Outbox writing through drv.
func New[TTx any](drv driver.Driver[TTx], cfg Config) (*Outbox[TTx], error) {
	if drv == nil {
		return nil, &eos.ConfigError{Field: "outbox.New driver", Reason: "nil"}
	}
	cfg, err := cfg.WithDefaults()
	if err != nil {
		return nil, err
	}
	hs, _ := enqueueHooks("", cfg.Hooks) // checked by WithDefaults
	return &Outbox[TTx]{drv: drv, cfg: cfg, hooks: hs}, nil
}

// MaxTopicLen is the longest topic accepted.
const MaxTopicLen = 255

// CheckTopic reports a *eos.ValidationError unless topic is a literal
// destination name: 1 to 255 bytes of tokens separated by '.', no token
// empty, no wildcard character ('*' or '>'), no space or control character.
// Topics are published as they are (as NATS subjects, for one): a wildcard
// or an empty token is refused by the broker on every attempt, so it is
// refused here, where the caller can still act on it.
func CheckTopic(topic string) error {
	invalid := func(reason string) error { return &eos.ValidationError{Field: eos.FieldTopic, Reason: reason} }
	if topic == "" {
		return invalid("empty")
	}
	if len(topic) > MaxTopicLen {
		return invalid("longer than " + strconv.Itoa(MaxTopicLen) + " bytes")
	}
	for i := 0; i < len(topic); i++ {
		switch c := topic[i]; {
		case c <= ' ' || c == 0x7f:
			return invalid("space or control character at byte " + strconv.Itoa(i))
		case c == '*' || c == '>':
			return invalid("wildcard " + strconv.QuoteRune(rune(c)) + " at byte " + strconv.Itoa(i))
		case c == '.' && (i == 0 || i == len(topic)-1 || topic[i+1] == '.'):
			return invalid("empty token at byte " + strconv.Itoa(i))
		}
	}
	return nil
}

// Enqueue adds msgs, to be published on topic, inside tx: they are sent if
// and only if tx commits. A message without an ID gets a new UUIDv7; one
// without CreatedAt gets the current time. A message's Subject is not
// stored: topic says where it goes, and the relay hands it to the Publisher
// with Subject set to topic. All messages are validated before anything is
// written; the first invalid one is reported as a *eos.ValidationError.
// The Config's hooks see the messages before they are validated.
func (o *Outbox[TTx]) Enqueue(ctx context.Context, tx TTx, topic string, msgs ...eos.Message) error {
	if err := CheckTopic(topic); err != nil {
		return err
	}
	if len(msgs) == 0 {
		return nil
	}
	now := o.cfg.Test.Now()
	if len(o.hooks) > 0 {
		msgs = slices.Clone(msgs)
		for i := range msgs {
			fillIn(&msgs[i], now)
		}
		for _, h := range o.hooks {
			h.OnEnqueue(ctx, topic, msgs)
		}
	}
	rows := make([]driver.OutboxRow, len(msgs))
	for i, m := range msgs {
		fillIn(&m, now)
		if err := o.cfg.Limits.Validate(m); err != nil {
			return err
		}
		rows[i] = driver.OutboxRow{ID: m.ID, Topic: topic, Key: m.Key, Payload: m.Payload, Headers: m.Headers,
			CreatedAt: m.CreatedAt, EnqueuedAt: now}
	}
	if err := o.drv.Executor(tx).OutboxInsert(ctx, rows); err != nil {
		return &eos.StoreError{Op: "outbox.enqueue", Err: err}
	}
	return nil
}

// fillIn gives m an ID and a CreatedAt if it has none.
func fillIn(m *eos.Message, now time.Time) {
	if m.ID == "" {
		m.ID = eos.NewIDAt(now)
	}
	if m.CreatedAt.IsZero() {
		m.CreatedAt = now
	}
}

// Stats describes the rows waiting in the outbox.
type Stats struct {
	// Unsent counts the rows not sent yet, parked rows and the rows waiting
	// behind them included.
	Unsent int64
	// OldestUnsent is when the oldest unsent row was enqueued (zero when
	// none); its age is the SLI eos_outbox_oldest_unsent_seconds.
	OldestUnsent time.Time
	// Parked counts the rows the relay parked (see ParkedRows), and
	// OldestParked is when the oldest was parked (zero when none).
	Parked       int64
	OldestParked time.Time
}

// Stats reports the unsent and the parked rows.
func (o *Outbox[TTx]) Stats(ctx context.Context) (Stats, error) {
	var st Stats
	err := o.read(ctx, "outbox.stats", func(ex driver.Executor) (err error) {
		if st.Unsent, st.OldestUnsent, err = ex.OutboxStats(ctx); err != nil {
			return err
		}
		st.Parked, st.OldestParked, err = ex.OutboxParkedStats(ctx)
		return err
	})
	return st, err
}
