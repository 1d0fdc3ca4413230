package compact

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/eoskit/eos"
	"github.com/eoskit/eos/driver"
	"github.com/eoskit/eos/internal/config"
)

// Defaults of [Config].
const (
	DefaultRetention           = 7 * 24 * time.Hour
	DefaultOutboxRetention     = 24 * time.Hour
	DefaultQuarantineRetention = 30 * 24 * time.Hour
	DefaultBatchSize           = 1000
	DefaultInterval            = time.Minute
)

// Config configures a Compactor. [Config.WithDefaults] applies the defaults
// (New does).
type Config struct {
	// Retention is how long dedupe records (and attempt counters) are kept.
	// Default 7 days; at least RedeliveryHorizon.
	Retention time.Duration
	// RedeliveryHorizon is the longest a transport may take to bring a
	// message back after the inbox claimed it: its own redeliveries, and a
	// producer's re-publish that comes after the broker's dedupe window and
	// so arrives as a new message (e.g. natsjs.RedeliveryHorizon, given the
	// producers' re-publish horizon; for Kafka, the topic's retention).
	// Required: eos will not guess it.
	RedeliveryHorizon time.Duration
	// OutboxRetention is how long sent outbox rows are kept. Default 24h.
	OutboxRetention time.Duration
	// QuarantineRetention is how long quarantined deliveries (same id,
	// different content) are kept for inspection. Default 30 days.
	QuarantineRetention time.Duration
	// DeadLetterRetention, when positive, is how long dead letters are
	// kept. Default 0: a dead letter stays until it is resolved, by
	// inbox.Processor.Requeue or Discard; their claims are compacted with
	// the other dedupe records either way.
	DeadLetterRetention time.Duration
	// BatchSize is the most rows deleted per transaction. Default 1000.
	BatchSize int
	// Interval is the pause between compaction passes in Run. Default 1m.
	Interval time.Duration
	// Logger receives the compactor's logs. Default slog.Default().
	Logger *slog.Logger
	// Hooks are told about each pass; see [Hook].
	Hooks []Hook
	// Test holds the clock, for tests.
	Test eos.TestConfig
}

// WithDefaults returns a copy of c with the defaults applied, or a
// *eos.ConfigError naming the first invalid field.
func (c Config) WithDefaults() (Config, error) {
	err := c.applyDefaults()
	return c, err
}

func (c *Config) applyDefaults() error {
	if err := config.Durations("compact.Config.",
		config.DurationField{Name: "Retention", P: &c.Retention, Default: DefaultRetention},
		config.DurationField{Name: "OutboxRetention", P: &c.OutboxRetention, Default: DefaultOutboxRetention},
		config.DurationField{Name: "QuarantineRetention", P: &c.QuarantineRetention, Default: DefaultQuarantineRetention},
		config.DurationField{Name: "Interval", P: &c.Interval, Default: DefaultInterval},
	); err != nil {
		return err
	}
	if c.DeadLetterRetention < 0 {
		return &eos.ConfigError{Field: "compact.Config.DeadLetterRetention", Reason: fmt.Sprintf("negative (%v)", c.DeadLetterRetention)}
	}
	if err := config.Int("compact.Config.BatchSize", &c.BatchSize, DefaultBatchSize, 100000); err != nil {
		return err
	}
	switch {
	case c.RedeliveryHorizon <= 0:
		return &eos.ConfigError{Field: "compact.Config.RedeliveryHorizon", Reason: "required: set it to the transport's redelivery horizon"}
	case c.Retention < c.RedeliveryHorizon:
		return &eos.ConfigError{Field: "compact.Config.Retention", Reason: fmt.Sprintf(
			"%v is shorter than the transport's redelivery horizon %v: a late redelivery would be applied twice", c.Retention, c.RedeliveryHorizon)}
	}
	if _, err := newHooks("compact.Config.Hooks", c.Hooks); err != nil {
		return err
	}
	c.Test = c.Test.WithDefaults()
	c.Logger = config.Logger(c.Logger)
	return nil
}

// Compactor deletes expired rows.
type Compactor[TTx any] struct {
	drv   driver.Driver[TTx]
	cfg   Config
	hooks hooks
}

// New returns a Compactor over drv.
func New[TTx any](drv driver.Driver[TTx], cfg Config) (*Compactor[TTx], error) {
	if drv == nil {
		return nil, &eos.ConfigError{Field: "compact.New driver", Reason: "nil"}
	}
	cfg, err := cfg.WithDefaults()
	if err != nil {
		return nil, err
	}
	hs, _ := newHooks("", cfg.Hooks) // checked by WithDefaults
	return &Compactor[TTx]{drv: drv, cfg: cfg, hooks: hs}, nil
}

// Stats counts the rows one pass deleted.
type Stats struct {
	Inbox, Failures, Outbox, Quarantine, DeadLetters int64
	// Dedupe counts records of package dedupe's SQL store past their
	// expiry (each carries the retention of the dedupe.Config it was
	// written with: Retention does not apply to them).
	Dedupe int64
}

// Compact runs one pass: it deletes expired rows batch by batch until none
// is left, and reports how many it deleted. The hooks are told of the pass.
func (c *Compactor[TTx]) Compact(ctx context.Context) (Stats, error) {
	now := c.cfg.Test.Now()
	st, err := c.compact(ctx, now)
	c.hooks.onPass(ctx, Pass{Deleted: st, Err: err, Started: now, Ended: c.cfg.Test.Now(), ClaimsBefore: now.Add(-c.cfg.Retention)})
	return st, err
}

func (c *Compactor[TTx]) compact(ctx context.Context, now time.Time) (Stats, error) {
	var st Stats
	type job struct {
		what   driver.Compactable
		before time.Time
		n      *int64
	}
	jobs := []job{
		{driver.CompactInbox, now.Add(-c.cfg.Retention), &st.Inbox},
		{driver.CompactFailures, now.Add(-c.cfg.Retention), &st.Failures},
		{driver.CompactOutbox, now.Add(-c.cfg.OutboxRetention), &st.Outbox},
		{driver.CompactQuarantine, now.Add(-c.cfg.QuarantineRetention), &st.Quarantine},
		{driver.CompactDedupe, now, &st.Dedupe},
	}
	if c.cfg.DeadLetterRetention > 0 {
		jobs = append(jobs, job{driver.CompactDeadLetters, now.Add(-c.cfg.DeadLetterRetention), &st.DeadLetters})
	}
	for _, job := range jobs {
		for {
			n, err := c.batch(ctx, job.what, job.before)
			*job.n += n
			if err != nil {
				return st, &eos.StoreError{Op: "compact." + string(job.what), Err: err}
			}
			if n == 0 {
				break
			}
		}
	}
	return st, nil
}

func (c *Compactor[TTx]) batch(ctx context.Context, what driver.Compactable, before time.Time) (int64, error) {
	tx, err := c.drv.Begin(ctx)
	if err != nil {
		return 0, err
	}
	defer c.drv.Rollback(context.WithoutCancel(ctx), tx)
	n, err := c.drv.Executor(tx).Compact(ctx, what, before, c.cfg.BatchSize)
	if err != nil {
		return 0, err
	}
	return n, c.drv.Commit(ctx, tx)
}

// Run compacts every Interval until ctx ends. Failures are logged and
// retried at the next interval; Run returns only ctx's error.
func (c *Compactor[TTx]) Run(ctx context.Context) error {
	t := time.NewTicker(c.cfg.Interval)
	defer t.Stop()
	for {
		st, err := c.Compact(ctx)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err != nil {
			c.cfg.Logger.ErrorContext(ctx, "eos compact: pass failed", "error", err)
		} else if st != (Stats{}) {
			c.cfg.Logger.InfoContext(ctx, "eos compact: pass done", "inbox", st.Inbox, "failures", st.Failures, "outbox", st.Outbox,
				"quarantine", st.Quarantine, "dead_letters", st.DeadLetters, "dedupe", st.Dedupe)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}
