package eos

import (
	"time"

	"github.com/eoskit/eos/failpoint"
)

// TestConfig groups the knobs that exist for tests and fault injection.
// Every eos configuration that has such knobs holds one as its Test field;
// production code leaves it zero.
type TestConfig struct {
	// Now replaces the clock. Default time.Now.
	Now func() time.Time
	// Failpoints arms fault-injection points (tests, eos torture). Default
	// nil: none armed, one pointer check each.
	Failpoints *failpoint.Set
}

// WithDefaults returns a copy of t with its defaults applied.
func (t TestConfig) WithDefaults() TestConfig {
	if t.Now == nil {
		t.Now = time.Now
	}
	return t
}
