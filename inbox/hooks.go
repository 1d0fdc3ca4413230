package inbox

import (
	"context"
	"fmt"

	"github.com/eoskit/eos"
)

// Hook is a value the Processor tells what it does: anything implementing
// one or more of the hook interfaces of this package ([BatchDoneHook],
// [ErrorHook]). New checks each hook once and refuses one that implements
// none. Hooks are called from the processing goroutine and must not block.
//
// New kinds of hook come as new interfaces, so a hook written today keeps
// compiling and working when they are added.
type Hook any

// BatchDoneHook is told about each batch after it committed and was
// settled: per-delivery outcomes, creation times (for end-to-end latency)
// and the commit time.
type BatchDoneHook interface {
	OnBatchDone(ctx context.Context, r *BatchResult)
}

// ErrorHook is told about each failure of the store on the inbox's own path
// (op names the step, e.g. "inbox.claim"); processing stalls until the
// store is back.
type ErrorHook interface {
	OnError(ctx context.Context, consumer, op string, err error)
}

// BatchDoneFunc adapts a function to a BatchDoneHook.
type BatchDoneFunc func(ctx context.Context, r *BatchResult)

// OnBatchDone calls f.
func (f BatchDoneFunc) OnBatchDone(ctx context.Context, r *BatchResult) { f(ctx, r) }

// ErrorFunc adapts a function to an ErrorHook.
type ErrorFunc func(ctx context.Context, consumer, op string, err error)

// OnError calls f.
func (f ErrorFunc) OnError(ctx context.Context, consumer, op string, err error) {
	f(ctx, consumer, op, err)
}

// hooks are a processor's hooks sorted by kind, once, at New.
type hooks struct {
	batchDone []BatchDoneHook
	errs      []ErrorHook
}

func newHooks(field string, hs []Hook) (hooks, error) {
	var out hooks
	for i, h := range hs {
		known := false
		if b, ok := h.(BatchDoneHook); ok {
			out.batchDone, known = append(out.batchDone, b), true
		}
		if e, ok := h.(ErrorHook); ok {
			out.errs, known = append(out.errs, e), true
		}
		if !known {
			return hooks{}, &eos.ConfigError{Field: fmt.Sprintf("%s[%d]", field, i), Reason: fmt.Sprintf("%T implements no hook interface (BatchDoneHook, ErrorHook)", h)}
		}
	}
	return out, nil
}

func (h *hooks) onBatchDone(ctx context.Context, r *BatchResult) {
	for _, b := range h.batchDone {
		b.OnBatchDone(ctx, r)
	}
}

func (h *hooks) onError(ctx context.Context, consumer, op string, err error) {
	for _, e := range h.errs {
		e.OnError(ctx, consumer, op, err)
	}
}
