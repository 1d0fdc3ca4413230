package reconcile

import (
	"fmt"

	"github.com/eoskit/eos"
)

// Hook is a value a Reconciler tells what it finds: anything implementing
// one or more of [FindingHook] and [DoneHook]. New refuses a hook that
// implements neither. Hooks are called from the run's goroutine and must
// not block.
type Hook any

// Finding is one finding, as a FindingHook sees it.
type Finding struct {
	Kind     Kind
	Consumer string
	Outbox   string // for a Partial finding: Config.Outbox
	ID       string
}

// FindingHook is told about every finding of a run, not only the sampled
// ones: a run finding the same id again tells it again (package metrics
// remembers what it counted).
type FindingHook interface {
	ReconcileFinding(f Finding)
}

// DoneHook is told about the end of each run: its report, or the error
// that stopped it (then the report holds what was found before it).
type DoneHook interface {
	ReconcileDone(r *Report, err error)
}

// DoneFunc adapts a function to a DoneHook.
type DoneFunc func(r *Report, err error)

// ReconcileDone calls f.
func (f DoneFunc) ReconcileDone(r *Report, err error) { f(r, err) }

type hooks struct {
	finding []FindingHook
	done    []DoneHook
}

func newHooks(hs []Hook) (hooks, error) {
	var h hooks
	for i, x := range hs {
		f, okF := x.(FindingHook)
		d, okD := x.(DoneHook)
		if okF {
			h.finding = append(h.finding, f)
		}
		if okD {
			h.done = append(h.done, d)
		}
		if !okF && !okD {
			return h, &eos.ConfigError{Field: fmt.Sprintf("reconcile.Config.Hooks[%d]", i),
				Reason: fmt.Sprintf("%T implements no hook interface (FindingHook, DoneHook)", x)}
		}
	}
	return h, nil
}
