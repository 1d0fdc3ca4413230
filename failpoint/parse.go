package failpoint

import (
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// SpecError reports a malformed part of a failpoint spec.
type SpecError struct {
	Part   string // the comma-separated part at fault
	Reason string
}

func (e *SpecError) Error() string {
	return fmt.Sprintf("failpoint: bad spec part %q: %s", e.Part, e.Reason)
}

// Parse builds a Set from a spec: comma-separated parts
// "point=action[@probability]", where action is one of
//
//	crash     SIGKILL this process at once (no deferred cleanup runs)
//	error     return an error wrapping ErrInjected
//	delay:D   sleep for the duration D (time.ParseDuration), then go on
//
// and probability is in (0, 1] (default 1). For example
//
//	inbox.after_claim=crash@0.01,inbox.before_commit=error@0.05,inbox.after_handler=delay:50ms@0.1
//
// The probabilities are drawn from r, which the Set guards with a lock;
// r may be nil when no part has a probability below 1. An empty spec
// returns a nil Set, which is inert and costs nothing. Errors are
// *SpecError values naming the part at fault.
//
// points are the names the spec may arm: each package declares its own
// (inbox.FailpointNames, outbox.FailpointNames, natsjs.FailpointNames, …),
// and the caller passes those of the packages it runs, so a typo in a spec
// is an error rather than a point that never fires.
func Parse(spec string, r *rand.Rand, points ...string) (*Set, error) {
	spec = strings.TrimSpace(spec)
	if spec == "" {
		return nil, nil
	}
	var mu sync.Mutex // shared by every Probability over r
	s := &Set{}
	seen := map[string]bool{}
	for _, part := range strings.Split(spec, ",") {
		part = strings.TrimSpace(part)
		name, rest, ok := strings.Cut(part, "=")
		if !ok || name == "" || rest == "" {
			return nil, &SpecError{Part: part, Reason: "want point=action[@probability]"}
		}
		if !slices.Contains(points, name) {
			return nil, &SpecError{Part: part, Reason: fmt.Sprintf("unknown point %q (known: %s)", name, strings.Join(points, ", "))}
		}
		if seen[name] {
			return nil, &SpecError{Part: part, Reason: fmt.Sprintf("point %q armed twice", name)}
		}
		seen[name] = true
		act, prob, hasProb := strings.Cut(rest, "@")
		p := 1.0
		if hasProb {
			var err error
			p, err = strconv.ParseFloat(prob, 64)
			if err != nil || !(p > 0 && p <= 1) {
				return nil, &SpecError{Part: part, Reason: fmt.Sprintf("probability %q: want a number in (0, 1]", prob)}
			}
		}
		a, err := parseAction(act)
		if err != nil {
			return nil, &SpecError{Part: part, Reason: err.Error()}
		}
		if p < 1 {
			if r == nil {
				return nil, &SpecError{Part: part, Reason: "a probability needs a random source"}
			}
			a = lockedProbability(p, r, &mu, a)
		}
		s.Arm(name, a)
	}
	return s, nil
}

func parseAction(act string) (Action, error) {
	switch {
	case act == "crash":
		return Crash(), nil
	case act == "error":
		return Error(), nil
	case strings.HasPrefix(act, "delay:"):
		d, err := time.ParseDuration(strings.TrimPrefix(act, "delay:"))
		if err != nil || d <= 0 {
			return nil, fmt.Errorf("delay %q: want a positive duration like 50ms", strings.TrimPrefix(act, "delay:"))
		}
		return Delay(d), nil
	}
	return nil, fmt.Errorf("unknown action %q (want crash, error or delay:D)", act)
}

// lockedProbability is Probability with a lock shared by every point drawn
// from one source.
func lockedProbability(p float64, r *rand.Rand, mu *sync.Mutex, a Action) Action {
	return func(name string) error {
		mu.Lock()
		hit := r.Float64() < p
		mu.Unlock()
		if !hit {
			return nil
		}
		return a(name)
	}
}

// Crash is an action that kills the process at once with SIGKILL, as a
// power cut or the OOM killer would: no deferred function, no buffered
// write, no acknowledgement runs after it.
func Crash() Action {
	return func(name string) error {
		if proc, err := os.FindProcess(os.Getpid()); err == nil {
			proc.Kill() // SIGKILL on Unix
		}
		select {} // the signal is on its way
	}
}
