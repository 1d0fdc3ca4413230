package callonce_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eoskit/eos"
	"github.com/eoskit/eos/callonce"
	"github.com/eoskit/eos/inbox"
	"github.com/eoskit/eos/inbox/inboxtest"
)

// closingSource hands out one batch, then nothing; it counts its Closes.
type closingSource struct {
	batch  []inbox.Delivery
	closed atomic.Int64
}

func (s *closingSource) Fetch(ctx context.Context, max int, maxWait time.Duration) ([]inbox.Delivery, error) {
	b := s.batch
	s.batch = nil
	return b, nil
}

func (s *closingSource) Close() error { s.closed.Add(1); return nil }

// TestStageSource: a staged source calls for the messages its plan names,
// once per id even when a batch holds an id twice, keeps the results for
// the handler, and closes the source it wraps.
func TestStageSource(t *testing.T) {
	forEachStore(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		var calls atomic.Int64
		plan := func(m eos.Message) (callonce.Call, bool) {
			if m.Key == "skip" {
				return callonce.Call{}, false
			}
			return callonce.Call{Scope: "stage", Key: m.ID, Fingerprint: m.Payload, Func: func(ctx context.Context, key string) callonce.Outcome {
				calls.Add(1)
				return callonce.Done([]byte("done " + key))
			}}, true
		}
		stage := callonce.NewStage(e.caller(t, callonce.Config{}), plan)
		a := eos.Message{ID: "a", Key: "k", Payload: []byte("1")}
		b := eos.Message{ID: "b", Key: "k", Payload: []byte("2")}
		skip := eos.Message{ID: "c", Key: "skip", Payload: []byte("3")}
		src := &closingSource{batch: inboxtest.NewDeliveries(a, b, a, skip).Inbox()}
		staged := stage.Source(src)
		ds, err := staged.Fetch(ctx, 10, time.Millisecond)
		if err != nil || len(ds) != 4 {
			t.Fatalf("Fetch: %d, %v", len(ds), err)
		}
		if calls.Load() != 2 {
			t.Fatalf("%d calls, want 2 (a once, b once)", calls.Load())
		}
		for _, m := range []eos.Message{a, b} {
			if r, err := stage.Result(m); err != nil || string(r.Value) != "done "+m.ID {
				t.Fatalf("Result(%s): %+v, %v", m.ID, r, err)
			}
		}
		if _, err := stage.Result(skip); !errors.Is(err, callonce.ErrNotStaged) {
			t.Fatalf("Result of an unplanned message: %v, want ErrNotStaged", err)
		}
		if err := staged.(interface{ Close() error }).Close(); err != nil || src.closed.Load() != 1 {
			t.Fatalf("Close: %v, wrapped source closed %d times", err, src.closed.Load())
		}
		if _, err := stage.Result(a); !errors.Is(err, callonce.ErrNotStaged) {
			t.Fatalf("Result after Close: %v, want ErrNotStaged", err)
		}
		// Prepared again: the recorded result, no call.
		stage.Prepare(ctx, inboxtest.NewDeliveries(a).Inbox())
		if r, err := stage.Result(a); err != nil || !r.Replayed || calls.Load() != 2 {
			t.Fatalf("Prepare again: %+v, %v, %d calls", r, err, calls.Load())
		}
	})
}
