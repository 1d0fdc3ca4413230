package dedupe

import (
	"fmt"
	"time"

	"github.com/eoskit/eos"
)

// Defaults of Config.
const (
	// DefaultRetention is how long a record is kept after it was last
	// written: the IETF Idempotency-Key draft's suggested 24 hours.
	DefaultRetention = 24 * time.Hour
	// DefaultMaxResultSize bounds a stored result (1 MiB).
	DefaultMaxResultSize = 1 << 20
)

// Config is what every Store backend takes. WithDefaults applies the
// defaults.
type Config struct {
	// Retention is how long a record (claimed, completed or released) is
	// kept after its last write; then it may be removed and its key claimed
	// afresh. Default DefaultRetention.
	Retention time.Duration
	// MaxResultSize bounds Complete's result, in bytes. Default
	// DefaultMaxResultSize; at most 64 MiB.
	MaxResultSize int
	// Test holds the clock (leases, expiry and retention are by it) for
	// tests.
	Test eos.TestConfig
}

// WithDefaults returns a copy of c with the defaults applied, or a
// *eos.ConfigError naming the first invalid field.
func (c Config) WithDefaults() (Config, error) {
	switch {
	case c.Retention < 0:
		return c, &eos.ConfigError{Field: "dedupe.Config.Retention", Reason: fmt.Sprintf("negative (%v)", c.Retention)}
	case c.Retention == 0:
		c.Retention = DefaultRetention
	}
	switch {
	case c.MaxResultSize < 0 || c.MaxResultSize > 64<<20:
		return c, &eos.ConfigError{Field: "dedupe.Config.MaxResultSize", Reason: fmt.Sprintf("want 0..%d, got %d", 64<<20, c.MaxResultSize)}
	case c.MaxResultSize == 0:
		c.MaxResultSize = DefaultMaxResultSize
	}
	c.Test = c.Test.WithDefaults()
	return c, nil
}
