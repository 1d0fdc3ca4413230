package backoff_test

import (
	"context"
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/eoskit/eos/internal/backoff"
)

func TestCeiling(t *testing.T) {
	p := backoff.Policy{Initial: 100 * time.Millisecond, Max: time.Second}
	for n, want := range map[int]time.Duration{1: 100 * time.Millisecond, 2: 200 * time.Millisecond, 4: 800 * time.Millisecond, 5: time.Second, 1000: time.Second} {
		if got := p.Ceiling(n); got != want {
			t.Errorf("Ceiling(%d) = %v, want %v", n, got, want)
		}
	}
}

// Waits stay within [0, ceiling] and spread over it: two workers retrying
// after the same outage do not wait the same time.
func TestWaitJitter(t *testing.T) {
	p := backoff.Policy{Initial: time.Second, Max: 8 * time.Second, Rand: rand.New(rand.NewPCG(1, 2))}
	for n := 1; n <= 6; n++ {
		c := p.Ceiling(n)
		var lo, hi int
		seen := map[time.Duration]bool{}
		for range 1000 {
			w := p.Wait(n)
			if w < 0 || w > c {
				t.Fatalf("Wait(%d) = %v outside [0, %v]", n, w, c)
			}
			seen[w] = true
			if w < c/4 {
				lo++
			}
			if w > 3*c/4 {
				hi++
			}
		}
		// Uniform: about 250 of 1000 in each outer quarter.
		if lo < 150 || hi < 150 || len(seen) < 900 {
			t.Errorf("Wait(%d) not spread over [0, %v]: %d low, %d high, %d distinct", n, c, lo, hi, len(seen))
		}
	}
	if w := (backoff.Policy{}).Wait(3); w != 0 {
		t.Errorf("zero policy waits %v", w)
	}
}

func TestSleepEndsWithContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if (backoff.Policy{Initial: time.Hour, Max: time.Hour}).Sleep(ctx, 1) {
		t.Fatal("Sleep returned true on an ended context")
	}
}

// A Max meant as "no cap" (math.MaxInt64) neither overflows the doubling
// into a zero wait (a stalled processor retrying in a hot loop) nor makes
// the draw panic.
func TestHugeMax(t *testing.T) {
	for _, p := range []backoff.Policy{
		{Initial: 50 * time.Millisecond, Max: math.MaxInt64},
		{Initial: math.MaxInt64, Max: math.MaxInt64},
		{Initial: time.Second, Max: math.MaxInt64 / 3 * 2},
	} {
		prev := time.Duration(0)
		for n := 1; n <= 200; n++ {
			c := p.Ceiling(n)
			if c < prev || c <= 0 || c > p.Max {
				t.Fatalf("%+v: Ceiling(%d) = %v after %v", p, n, c, prev)
			}
			prev = c
			if w := p.Wait(n); w < 0 || w > c {
				t.Fatalf("%+v: Wait(%d) = %v outside [0, %v]", p, n, w, c)
			}
		}
	}
}
