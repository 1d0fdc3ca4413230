package compact

import (
	"context"
	"fmt"
	"time"

	"github.com/eoskit/eos"
)

// Hook is a value the Compactor tells what it does: anything implementing
// one or more of the hook interfaces of this package ([PassHook]). New
// checks each hook once and refuses one that implements none. Hooks are
// called from the compacting goroutine and must not block.
//
// New kinds of hook come as new interfaces, so a hook written today keeps
// compiling and working when they are added.
type Hook any

// Pass is what one compaction pass did.
type Pass struct {
	// Deleted counts the rows the pass deleted, failed or not.
	Deleted Stats
	// Err is why the pass stopped early (a *eos.StoreError), or nil.
	Err error
	// Started and Ended bound the pass, by Config.Test's clock.
	Started, Ended time.Time
	// ClaimsBefore is the pass's horizon for dedupe records: claims made
	// before it are deleted, so a redelivery of their messages is no longer
	// recognised, and a reconciliation cannot tell whether they were applied.
	ClaimsBefore time.Time
}

// PassHook is told about each pass of Compact (and so of Run), whether it
// failed or not.
type PassHook interface {
	OnPass(ctx context.Context, p Pass)
}

// PassFunc adapts a function to a PassHook.
type PassFunc func(ctx context.Context, p Pass)

// OnPass calls f.
func (f PassFunc) OnPass(ctx context.Context, p Pass) { f(ctx, p) }

// hooks are a compactor's hooks sorted by kind, once, at New.
type hooks struct {
	pass []PassHook
}

func newHooks(field string, hs []Hook) (hooks, error) {
	var out hooks
	for i, h := range hs {
		p, ok := h.(PassHook)
		if !ok {
			return hooks{}, &eos.ConfigError{Field: fmt.Sprintf("%s[%d]", field, i), Reason: fmt.Sprintf("%T implements no hook interface (PassHook)", h)}
		}
		out.pass = append(out.pass, p)
	}
	return out, nil
}

func (h *hooks) onPass(ctx context.Context, p Pass) {
	for _, ph := range h.pass {
		ph.OnPass(ctx, p)
	}
}
