package callonce

import (
	"log/slog"
	"time"

	"github.com/eoskit/eos"
	"github.com/eoskit/eos/internal/config"
)

// Defaults of Config.
const (
	// DefaultLease is the claim's lease. The lease is renewed while the call
	// runs, so it bounds how long a key stays blocked after its worker died,
	// not how long a call may take.
	DefaultLease = 30 * time.Second
	// DefaultMaxAttempts bounds the calls of one Do whose outcomes are
	// Unknown; the inbox's redelivery makes the next ones.
	DefaultMaxAttempts = 4
	// DefaultRetryDelay and DefaultMaxRetryDelay shape the backoff between
	// those calls.
	DefaultRetryDelay    = 100 * time.Millisecond
	DefaultMaxRetryDelay = 2 * time.Second
	// DefaultConcurrency bounds the calls a Stage runs at once.
	DefaultConcurrency = 16
	// MaxReasonLen bounds a Failed reason as stored.
	MaxReasonLen = 1024
)

// Failpoints a Caller evaluates (Config.Test.Failpoints). An error at
// either ends Do as a crash would: the lease is neither completed nor
// released, and it expires.
const (
	FailBeforeCall = "callonce.before_call"
	FailAfterCall  = "callonce.after_call"
)

// FailpointNames returns the failpoints a Caller evaluates, for
// failpoint.Parse.
func FailpointNames() []string { return []string{FailBeforeCall, FailAfterCall} }

// Config configures a Caller. WithDefaults applies the defaults.
type Config struct {
	// Lease is the claim's lease, renewed every Lease/3 while a call runs.
	// Default DefaultLease.
	Lease time.Duration
	// MaxAttempts bounds the calls one Do makes while their outcome is
	// Unknown. Default DefaultMaxAttempts.
	MaxAttempts int
	// RetryDelay and MaxRetryDelay bound the backoff (full jitter) between
	// those calls. Defaults DefaultRetryDelay and DefaultMaxRetryDelay.
	RetryDelay, MaxRetryDelay time.Duration
	// Concurrency bounds the calls a Stage runs at once. Default
	// DefaultConcurrency.
	Concurrency int
	// Logger logs lost leases and failed releases. Default slog.Default().
	Logger *slog.Logger
	// Hooks are told how each Do ended and of each failure of the store
	// (see Hook); metrics.CallOnceHook is one. Checked by New.
	Hooks []Hook
	// Test holds the clock (the local estimate of the lease's expiry) and
	// the failpoints.
	Test eos.TestConfig
}

// WithDefaults returns a copy of c with the defaults applied, or a
// *eos.ConfigError naming the first invalid field.
func (c Config) WithDefaults() (Config, error) {
	if err := config.Durations("callonce.Config.",
		config.DurationField{Name: "Lease", P: &c.Lease, Default: DefaultLease},
		config.DurationField{Name: "RetryDelay", P: &c.RetryDelay, Default: DefaultRetryDelay},
		config.DurationField{Name: "MaxRetryDelay", P: &c.MaxRetryDelay, Default: DefaultMaxRetryDelay},
	); err != nil {
		return c, err
	}
	if err := config.Int("callonce.Config.MaxAttempts", &c.MaxAttempts, DefaultMaxAttempts, 1000); err != nil {
		return c, err
	}
	if err := config.Int("callonce.Config.Concurrency", &c.Concurrency, DefaultConcurrency, 4096); err != nil {
		return c, err
	}
	c.Logger = config.Logger(c.Logger)
	c.Test = c.Test.WithDefaults()
	return c, nil
}
