package callonce_test

import (
	"context"
	"errors"
	"sync"
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

// TestStageMixedBatch: one batch holding every case (a new key, one
// recorded already, one held by another worker, one reused with another
// request, a refusal, an unknown outcome) gets the answers Do would give,
// batched store or not.
func TestStageMixedBatch(t *testing.T) {
	forEachStore(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		outcome := map[string]callonce.Outcome{
			"new": callonce.Done([]byte("new")), "failed": callonce.Failed(nil, "declined"),
			"unknown": callonce.Unknown(errors.New("timeout")), "recorded": callonce.Done([]byte("second")),
			"held": callonce.Done(nil), "reused": callonce.Done(nil),
		}
		var calls sync.Map
		plan := func(m eos.Message) (callonce.Call, bool) {
			return callonce.Call{Scope: "mixed", Key: m.ID, Fingerprint: m.Payload, Func: func(ctx context.Context, key string) callonce.Outcome {
				n, _ := calls.LoadOrStore(key, new(atomic.Int64))
				n.(*atomic.Int64).Add(1)
				return outcome[key]
			}}, true
		}
		c := e.caller(t, callonce.Config{MaxAttempts: 2})
		// Before the batch: "recorded" done, "reused" done with another
		// fingerprint, "held" claimed by a worker still calling.
		first := func(context.Context, string) callonce.Outcome { return callonce.Done([]byte("first")) }
		for _, k := range []string{"recorded", "reused"} {
			if _, err := c.Do(ctx, "mixed", k, []byte("other-"+k), first); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := e.store.Claim(ctx, "mixed", "held", []byte("p"), time.Hour); err != nil {
			t.Fatal(err)
		}
		stage := callonce.NewStage(c, plan)
		var msgs []eos.Message
		for _, k := range []string{"unknown", "new", "reused", "held", "failed", "recorded"} {
			fp := "p"
			if k == "recorded" {
				fp = "other-recorded"
			}
			msgs = append(msgs, eos.Message{ID: k, Key: "k", Payload: []byte(fp)})
		}
		stage.Prepare(ctx, inboxtest.NewDeliveries(msgs...).Inbox())
		result := func(id string) (callonce.Result, error) { return stage.Result(eos.Message{ID: id}) }
		if r, err := result("new"); err != nil || string(r.Value) != "new" || r.Replayed {
			t.Errorf("new: %+v, %v", r, err)
		}
		if r, err := result("failed"); err != nil || r.Status != callonce.StatusFailed || r.Reason != "declined" {
			t.Errorf("failed: %+v, %v", r, err)
		}
		if _, err := result("unknown"); !errors.Is(err, callonce.ErrUnknownOutcome) {
			t.Errorf("unknown: %v", err)
		}
		if r, err := result("recorded"); err != nil || string(r.Value) != "first" || !r.Replayed {
			t.Errorf("recorded: %+v, %v", r, err)
		}
		if _, err := result("held"); !errors.Is(err, callonce.ErrInProgress) {
			t.Errorf("held: %v", err)
		}
		if _, err := result("reused"); !errors.Is(err, callonce.ErrMismatch) {
			t.Errorf("reused: %v", err)
		}
		for k, want := range map[string]int64{"new": 1, "failed": 1, "unknown": 2, "recorded": 0, "held": 0, "reused": 0} {
			var got int64
			if n, ok := calls.Load(k); ok {
				got = n.(*atomic.Int64).Load()
			}
			if got != want {
				t.Errorf("%s called %d times, want %d", k, got, want)
			}
		}
		// Recorded by the batch: Do replays them.
		for _, k := range []string{"new", "failed"} {
			if r, err := c.Do(ctx, "mixed", k, []byte("p"), nil); err != nil || !r.Replayed {
				t.Errorf("%s after the batch: %+v, %v", k, r, err)
			}
		}
	})
}
