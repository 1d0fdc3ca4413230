package faults

import (
	"context"
	"math/rand/v2"
	"time"

	"github.com/eoskit/eos/internal/ctxtime"
)

// Span is a duration drawn uniformly from [Min, Min+Spread).
type Span struct{ Min, Spread time.Duration }

func (s Span) draw(rnd *rand.Rand) time.Duration {
	if s.Spread <= 0 {
		return s.Min
	}
	return s.Min + time.Duration(rnd.Int64N(int64(s.Spread)))
}

// Schedule says when a fault strikes: First after the schedule starts,
// then Gap after the last strike ended. Hold is how long a fault that
// lasts (latency, a blackhole) lasts.
type Schedule struct {
	First, Gap, Hold Span
}

// every strikes on s's schedule until ctx ends or strike returns false.
func (s Schedule) every(ctx context.Context, rnd *rand.Rand, strike func() bool) {
	wait := s.First.draw(rnd)
	for ctxtime.Sleep(ctx, wait) && strike() {
		wait = s.Gap.draw(rnd)
	}
}

// KillSchedule is the default of Kills: a kill every 0.2–1.2 s.
func KillSchedule() Schedule {
	every := Span{200 * time.Millisecond, time.Second}
	return Schedule{First: every, Gap: every}
}

// Kills calls kill (a supervisor's KillOne) on s's schedule until ctx
// ends.
func Kills(ctx context.Context, rnd *rand.Rand, s Schedule, kill func(*rand.Rand) bool) {
	s.every(ctx, rnd, func() bool {
		kill(rnd)
		return true
	})
}
