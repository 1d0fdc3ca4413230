package reconcile

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/eoskit/eos"
)

// DefaultInterval is the default of RunnerConfig.Interval.
const DefaultInterval = 5 * time.Minute

// RunFunc is one reconciliation pass: a Reconciler's Run, whatever its
// transaction type.
type RunFunc func(ctx context.Context) (*Report, error)

// RunnerConfig tunes a Runner.
type RunnerConfig struct {
	// Interval is the time from the start of one run to the start of the
	// next (a run longer than it is followed at once by the next).
	// Default DefaultInterval.
	Interval time.Duration
	// Timeout bounds each run. Default: Interval.
	Timeout time.Duration
	// Test holds the clock and the timer.
	Test RunnerTest
}

// RunnerTest is the test knobs of a Runner.
type RunnerTest struct {
	eos.TestConfig
	// After replaces time.After for the wait between runs.
	After func(d time.Duration) <-chan time.Time
}

// WithDefaults returns a copy of c with the defaults applied, or a
// *eos.ConfigError.
func (c RunnerConfig) WithDefaults() (RunnerConfig, error) {
	switch {
	case c.Interval < 0:
		return c, &eos.ConfigError{Field: "reconcile.RunnerConfig.Interval", Reason: fmt.Sprintf("negative: %v", c.Interval)}
	case c.Timeout < 0:
		return c, &eos.ConfigError{Field: "reconcile.RunnerConfig.Timeout", Reason: fmt.Sprintf("negative: %v", c.Timeout)}
	}
	if c.Interval == 0 {
		c.Interval = DefaultInterval
	}
	if c.Timeout == 0 {
		c.Timeout = c.Interval
	}
	c.Test.TestConfig = c.Test.TestConfig.WithDefaults()
	if c.Test.After == nil {
		c.Test.After = time.After
	}
	return c, nil
}

// Runner runs a reconciliation on a schedule, as eos serve does: the
// Reconciler's hooks (package metrics's among them) see each report. A
// failed run is reported to the hooks and logged by the Reconciler; the
// next one runs on schedule.
type Runner struct {
	run RunFunc
	cfg RunnerConfig

	mu      sync.Mutex
	last    *Report
	lastErr error
}

// Last returns the report and error of the last run that ended (nil, nil
// before the first), for a status page. The report is shared: read it,
// do not change it.
func (r *Runner) Last() (*Report, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.last, r.lastErr
}

// NewRunner returns a Runner of run (a Reconciler's Run method), or a
// *eos.ConfigError.
func NewRunner(run RunFunc, cfg RunnerConfig) (*Runner, error) {
	if run == nil {
		return nil, &eos.ConfigError{Field: "reconcile.NewRunner run", Reason: "nil"}
	}
	cfg, err := cfg.WithDefaults()
	if err != nil {
		return nil, err
	}
	return &Runner{run: run, cfg: cfg}, nil
}

// Run runs at once, then every Interval, until ctx ends; it returns
// ctx's error.
func (r *Runner) Run(ctx context.Context) error {
	for {
		start := r.cfg.Test.Now()
		rctx, cancel := context.WithTimeout(ctx, r.cfg.Timeout)
		rep, err := r.run(rctx) // the Reconciler's hooks and logger take the outcome
		cancel()
		r.mu.Lock()
		r.last, r.lastErr = rep, err
		r.mu.Unlock()
		wait := r.cfg.Interval - r.cfg.Test.Now().Sub(start)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if wait <= 0 {
			continue
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-r.cfg.Test.After(wait):
		}
	}
}
