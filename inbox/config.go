package inbox

import (
	"fmt"
	"log/slog"
	"strings"
	"time"
	"unicode"

	"github.com/eoskit/eos"
	"github.com/eoskit/eos/internal/backoff"
	"github.com/eoskit/eos/internal/config"
	"github.com/eoskit/eos/internal/storable"
)

// Isolation selects how a failing handler is kept from affecting the rest of
// its batch.
type Isolation int

const (
	// IsolateAuto, the default, runs a batch without savepoints and, after
	// a handler error, redoes it with a savepoint around each handler: the
	// happy path costs no extra statements, and a batch with many failures
	// takes two transactions, not one per failure. A batch handler
	// (NewBatch) that failed in the last batch starts the next one under
	// a savepoint, until a batch passes without a failure: where most
	// batches hold a failing message, the call without one would only be
	// rolled back.
	IsolateAuto Isolation = iota
	// IsolateRedo rolls the batch back on a handler error and redoes it
	// without the failed message, as many times as messages fail. (A batch
	// whose transaction a handler left aborted is redone with savepoints,
	// see ErrHandlerTxAborted.)
	IsolateRedo
	// IsolateSavepoint runs each handler inside a savepoint and rolls back
	// only that savepoint on error. Two extra statements per message.
	IsolateSavepoint
)

func (i Isolation) String() string {
	switch i {
	case IsolateAuto:
		return "auto"
	case IsolateRedo:
		return "redo"
	case IsolateSavepoint:
		return "savepoint"
	}
	return fmt.Sprintf("Isolation(%d)", int(i))
}

// Failpoint names evaluated by the Processor.
const (
	FailAfterClaim           = "inbox.after_claim"
	FailAfterHandler         = "inbox.after_handler"
	FailBeforeCommit         = "inbox.before_commit"
	FailAfterCommitBeforeAck = "inbox.after_commit_before_ack"
)

// FailpointNames returns the names of the failpoints the Processor
// evaluates, for failpoint.Parse.
func FailpointNames() []string {
	return []string{FailAfterClaim, FailAfterHandler, FailBeforeCommit, FailAfterCommitBeforeAck}
}

// Defaults of [Config].
const (
	DefaultMaxBatch        = 256
	DefaultMaxWait         = 5 * time.Millisecond
	DefaultMaxAttempts     = 5
	DefaultRetryDelay      = time.Second
	DefaultMaxRetryDelay   = time.Minute
	DefaultStoreBackoff    = 50 * time.Millisecond
	DefaultMaxStoreBackoff = 5 * time.Second
)

// Config configures a Processor. [Config.WithDefaults] applies the defaults
// (New does); the comment of each field gives its default.
type Config struct {
	// Consumer names this consumer; dedupe records are per consumer.
	// Required, 1–255 bytes of UTF-8 text without control characters.
	Consumer string
	// MaxBatch is the most messages committed in one transaction. Default
	// 256, at most 8000.
	MaxBatch int
	// MaxWait is how long Run waits for a batch to fill after its first
	// message. Default 5ms.
	MaxWait time.Duration
	// MaxAttempts is how many handler failures a message gets before it is
	// dead-lettered. Default 5.
	MaxAttempts int
	// Isolation is how a failing handler is isolated. Default IsolateAuto.
	Isolation Isolation
	// NoPrefetch turns off fetching the next batch while the current one
	// is processed (see Processor.Run). Default false: prefetch on.
	NoPrefetch bool
	// OrderByKey runs the handlers of a batch in key order (stable: in
	// delivery order within a key) instead of delivery order. Handlers that
	// lock rows by key (an account, a stock item) then take them in one
	// order in every batch, so concurrent batches on PostgreSQL wait for
	// each other instead of deadlocking. Results stay in delivery order.
	// Default false.
	OrderByKey bool
	// Limits bound accepted messages. Default eos.Limits{} (1 MiB payloads).
	// A message that fails validation is dead-lettered at once.
	Limits eos.Limits
	// RetryDelay bounds the nack delay after the first failure of a
	// message; the bound doubles per attempt up to MaxRetryDelay, and each
	// delay is drawn from [0, bound] (full jitter), so that messages that
	// failed together are not redelivered together. Defaults 1s and 1m.
	RetryDelay, MaxRetryDelay time.Duration
	// StoreBackoff bounds the first wait after a store failure; the bound
	// doubles up to MaxStoreBackoff while the store stays down, and each
	// wait is drawn from [0, bound] (full jitter), so that processors
	// stalled by one outage do not retry in lockstep. Defaults 50ms and 5s.
	StoreBackoff, MaxStoreBackoff time.Duration
	// Logger receives the processor's logs. Default slog.Default().
	Logger *slog.Logger
	// Hooks are told about every batch and store failure; see [Hook].
	Hooks []Hook
	// Test holds the clock and the failpoints (FailAfterClaim, …), for
	// tests and fault injection.
	Test eos.TestConfig
}

// maxBatchLimit bounds MaxBatch so that one claim statement stays within
// every engine's parameter limits.
const maxBatchLimit = 8000

// WithDefaults returns a copy of c with the defaults applied, or a
// *eos.ConfigError naming the first invalid field.
func (c Config) WithDefaults() (Config, error) {
	err := c.applyDefaults()
	return c, err
}

func (c *Config) applyDefaults() error {
	if c.Consumer == "" {
		return &eos.ConfigError{Field: "inbox.Config.Consumer", Reason: "empty"}
	}
	if len(c.Consumer) > 255 {
		return &eos.ConfigError{Field: "inbox.Config.Consumer", Reason: "longer than 255 bytes"}
	}
	if storable.Text(c.Consumer, len(c.Consumer)) != c.Consumer || strings.ContainsFunc(c.Consumer, unicode.IsControl) {
		return &eos.ConfigError{Field: "inbox.Config.Consumer", Reason: "not valid UTF-8 text without control characters"}
	}
	if err := config.Int("inbox.Config.MaxBatch", &c.MaxBatch, DefaultMaxBatch, maxBatchLimit); err != nil {
		return err
	}
	if err := config.Int("inbox.Config.MaxAttempts", &c.MaxAttempts, DefaultMaxAttempts, 1_000_000); err != nil {
		return err
	}
	if c.Isolation < IsolateAuto || c.Isolation > IsolateSavepoint {
		return &eos.ConfigError{Field: "inbox.Config.Isolation", Reason: "unknown " + c.Isolation.String()}
	}
	if err := config.Durations("inbox.Config.",
		config.DurationField{Name: "MaxWait", P: &c.MaxWait, Default: DefaultMaxWait},
		config.DurationField{Name: "RetryDelay", P: &c.RetryDelay, Default: DefaultRetryDelay},
		config.DurationField{Name: "MaxRetryDelay", P: &c.MaxRetryDelay, Default: DefaultMaxRetryDelay},
		config.DurationField{Name: "StoreBackoff", P: &c.StoreBackoff, Default: DefaultStoreBackoff},
		config.DurationField{Name: "MaxStoreBackoff", P: &c.MaxStoreBackoff, Default: DefaultMaxStoreBackoff},
	); err != nil {
		return err
	}
	if err := c.Limits.Check(); err != nil {
		return err
	}
	if _, err := newHooks("inbox.Config.Hooks", c.Hooks); err != nil {
		return err
	}
	c.Test = c.Test.WithDefaults()
	c.Logger = config.Logger(c.Logger)
	return nil
}

// retryPolicy and storePolicy are the backoffs of nacks and store stalls.
func (c *Config) retryPolicy() backoff.Policy {
	return backoff.Policy{Initial: c.RetryDelay, Max: c.MaxRetryDelay}
}

func (c *Config) storePolicy() backoff.Policy {
	return backoff.Policy{Initial: c.StoreBackoff, Max: c.MaxStoreBackoff}
}
