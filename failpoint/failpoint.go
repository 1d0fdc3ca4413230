package failpoint

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"
)

// Action runs when an armed point is reached. A non-nil error is returned to
// the code at the point, which treats it as a crash at that step: it abandons
// its work without acknowledging anything.
type Action func(name string) error

// ErrInjected is wrapped by every error an [Error] action returns.
var ErrInjected = errors.New("failpoint: injected failure")

// Set is a set of armed points. The zero value has nothing armed.
type Set struct {
	mu     sync.RWMutex
	points map[string]Action
}

// Arm makes the point name run a when reached, replacing any earlier action.
func (s *Set) Arm(name string, a Action) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.points == nil {
		s.points = map[string]Action{}
	}
	s.points[name] = a
}

// Disarm removes the action of name.
func (s *Set) Disarm(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.points, name)
}

// Eval runs the action armed at name, if any, and returns its error.
func (s *Set) Eval(name string) error {
	if s == nil {
		return nil
	}
	s.mu.RLock()
	a := s.points[name]
	s.mu.RUnlock()
	if a == nil {
		return nil
	}
	return a(name)
}

// Error is an action that fails with an error wrapping ErrInjected.
func Error() Action {
	return func(name string) error { return fmt.Errorf("%w at %s", ErrInjected, name) }
}

// Times runs a on the first n evaluations only.
func Times(n int, a Action) Action {
	var mu sync.Mutex
	return func(name string) error {
		mu.Lock()
		run := n > 0
		n--
		mu.Unlock()
		if !run {
			return nil
		}
		return a(name)
	}
}

// Probability runs a with probability p, drawing from r (which must not be
// shared with other goroutines unless it is safe for that).
func Probability(p float64, r *rand.Rand, a Action) Action {
	return lockedProbability(p, r, &sync.Mutex{}, a)
}

// Delay is an action that sleeps for d and does not fail.
func Delay(d time.Duration) Action {
	return func(string) error { time.Sleep(d); return nil }
}

// Notify is an action that sends name on ch (blocking) and does not fail;
// tests use it to learn that a point was reached.
func Notify(ch chan<- string) Action {
	return func(name string) error { ch <- name; return nil }
}
