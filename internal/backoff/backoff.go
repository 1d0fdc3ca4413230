// Package backoff computes the waits between retries: exponential growth
// with full jitter, the one policy every retry loop in eos uses (the inbox's
// store stall and nack delays, the relay, the PostgreSQL listener, the demo's
// producer and supervisor).
//
// Full jitter draws each wait uniformly from [0, min(Max, Initial·2^(n-1))].
// Without jitter, every worker stalled by one outage retries at the same
// moments, in lockstep, and the store that just came back meets all of them
// at once; with it, their retries spread over the whole window.
package backoff

import (
	"context"
	"math/rand/v2"
	"time"

	"github.com/eoskit/eos/internal/ctxtime"
)

// Policy is an exponential backoff with full jitter. The zero value never
// waits.
type Policy struct {
	// Initial is the ceiling of the first wait; it doubles per retry.
	Initial time.Duration
	// Max caps the ceiling.
	Max time.Duration
	// Rand draws the jitter; nil uses math/rand/v2's top-level source.
	// Tests set it to a seeded source.
	Rand *rand.Rand
}

// Ceiling is the upper bound of the wait before retry n (n >= 1):
// min(Max, Initial·2^(n-1)).
func (p Policy) Ceiling(n int) time.Duration {
	c := p.Initial
	for i := 1; i < n && c < p.Max; i++ {
		if c > p.Max/2 { // doubling passes Max (or overflows when Max is near the largest Duration)
			return p.Max
		}
		c *= 2
	}
	return min(c, p.Max)
}

// Wait returns the wait before retry n (n >= 1), drawn uniformly from
// [0, Ceiling(n)].
func (p Policy) Wait(n int) time.Duration {
	c := p.Ceiling(n)
	if c <= 0 {
		return 0
	}
	// Unsigned: c+1 does not overflow when c is the largest Duration.
	if p.Rand != nil {
		return time.Duration(p.Rand.Uint64N(uint64(c) + 1))
	}
	return time.Duration(rand.Uint64N(uint64(c) + 1))
}

// Sleep waits Wait(n) and reports true, or returns false as soon as ctx
// ends.
func (p Policy) Sleep(ctx context.Context, n int) bool { return ctxtime.Sleep(ctx, p.Wait(n)) }
