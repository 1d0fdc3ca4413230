package serve

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/eoskit/eos"
	"github.com/eoskit/eos/inbox"
	"github.com/eoskit/eos/internal/config"
)

// Defaults of Config.
const (
	DefaultCheckTimeout = 5 * time.Second
	DefaultRefresh      = 5 * time.Second
	DefaultRecent       = 10
	// MaxRecent bounds Config.Recent: the page lists at most this many
	// dead letters and quarantined messages per consumer.
	MaxRecent    = 100
	DefaultTitle = "eos"
	// DefaultMaxConcurrent is the default of Config.MaxConcurrent.
	DefaultMaxConcurrent = 4
	// MaxMaxConcurrent bounds Config.MaxConcurrent.
	MaxMaxConcurrent = 1024
)

// CheckFunc is one readiness check: nil when what it checks is ready. It
// must return once ctx ends.
type CheckFunc func(ctx context.Context) error

// Check is a named readiness check.
type Check struct {
	Name string
	Func CheckFunc
}

// Admin is what the status page reads of an inbox: *inbox.Processor
// implements it, whatever its transaction type.
type Admin interface {
	Stats(ctx context.Context) (inbox.Stats, error)
	DeadLetters(ctx context.Context, afterID string, limit int) ([]inbox.DeadLetter, error)
	Quarantine(ctx context.Context, afterSeq int64, limit int) ([]inbox.QuarantinedMessage, error)
}

// Consumer names an inbox whose dead letters and quarantined messages the
// status page lists.
type Consumer struct {
	Name  string
	Admin Admin
}

// Config configures a Handler. [Config.WithDefaults] applies the defaults
// (New does).
type Config struct {
	// Gatherer is what /metrics serves and the status page reads: the
	// registry eos's metrics.Metrics was made on, or several
	// (prometheus.Gatherers). Required.
	Gatherer prometheus.Gatherer
	// Checks are the readiness checks of /readyz, each run within
	// CheckTimeout; ready when every one returns nil. None: always ready.
	Checks []Check
	// Consumers are the inboxes whose dead letters and quarantined
	// messages the status page lists.
	Consumers []Consumer
	// Token, when set, is the bearer token every route but /healthz asks
	// for. It is never logged.
	Token string
	// CheckTimeout bounds each readiness check and each read of an
	// inbox's admin API. Default DefaultCheckTimeout.
	CheckTimeout time.Duration
	// Refresh is how often the status page reloads itself. Default
	// DefaultRefresh.
	Refresh time.Duration
	// Recent is how many dead letters and quarantined messages the page
	// lists per consumer (the oldest first). Default DefaultRecent, at
	// most MaxRecent.
	Recent int
	// MaxConcurrent bounds the requests that read the store and the
	// broker at once (/, /status.json, /metrics, /readyz): a reloading
	// page open in many tabs, or a flood, waits its turn instead of piling
	// reads on the database. Default DefaultMaxConcurrent.
	MaxConcurrent int
	// Title heads the status page. Default DefaultTitle.
	Title string
	// Logger receives what the handler could not read. Default
	// slog.Default().
	Logger *slog.Logger
	// Test holds the clock of the page's timestamp.
	Test eos.TestConfig
}

// WithDefaults returns a copy of c with the defaults applied, or a
// *eos.ConfigError naming the first invalid field.
func (c Config) WithDefaults() (Config, error) {
	if c.Gatherer == nil {
		return c, &eos.ConfigError{Field: "serve.Config.Gatherer", Reason: "nil"}
	}
	names := map[string]bool{}
	for i, ch := range c.Checks {
		switch {
		case ch.Name == "":
			return c, &eos.ConfigError{Field: fmt.Sprintf("serve.Config.Checks[%d].Name", i), Reason: "empty"}
		case ch.Func == nil:
			return c, &eos.ConfigError{Field: fmt.Sprintf("serve.Config.Checks[%d].Func", i), Reason: "nil"}
		case names[ch.Name]:
			return c, &eos.ConfigError{Field: fmt.Sprintf("serve.Config.Checks[%d].Name", i), Reason: fmt.Sprintf("%q twice", ch.Name)}
		}
		names[ch.Name] = true
	}
	clear(names)
	for i, co := range c.Consumers {
		switch {
		case co.Name == "":
			return c, &eos.ConfigError{Field: fmt.Sprintf("serve.Config.Consumers[%d].Name", i), Reason: "empty"}
		case co.Admin == nil:
			return c, &eos.ConfigError{Field: fmt.Sprintf("serve.Config.Consumers[%d].Admin", i), Reason: "nil"}
		case names[co.Name]:
			return c, &eos.ConfigError{Field: fmt.Sprintf("serve.Config.Consumers[%d].Name", i), Reason: fmt.Sprintf("%q twice", co.Name)}
		}
		names[co.Name] = true
	}
	if err := config.Durations("serve.Config.",
		config.DurationField{Name: "CheckTimeout", P: &c.CheckTimeout, Default: DefaultCheckTimeout},
		config.DurationField{Name: "Refresh", P: &c.Refresh, Default: DefaultRefresh}); err != nil {
		return c, err
	}
	if err := config.Int("serve.Config.Recent", &c.Recent, DefaultRecent, MaxRecent); err != nil {
		return c, err
	}
	if err := config.Int("serve.Config.MaxConcurrent", &c.MaxConcurrent, DefaultMaxConcurrent, MaxMaxConcurrent); err != nil {
		return c, err
	}
	if c.Title == "" {
		c.Title = DefaultTitle
	}
	c.Logger = config.Logger(c.Logger)
	c.Test = c.Test.WithDefaults()
	return c, nil
}
