package callonce_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eoskit/eos"
	"github.com/eoskit/eos/callonce"
	"github.com/eoskit/eos/dedupe"
	"github.com/eoskit/eos/driver/sqlite"
	"github.com/eoskit/eos/failpoint"
	"github.com/eoskit/eos/inbox/inboxtest"
	"github.com/eoskit/eos/internal/testdb"
)

// recorder is a hook of both kinds that keeps what it is told.
type recorder struct {
	mu   sync.Mutex
	ends []callonce.End
	ops  []string // the ops of the store errors
}

func (r *recorder) OnEnd(_ context.Context, e callonce.End) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ends = append(r.ends, e)
}

func (r *recorder) OnStoreError(_ context.Context, op string, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err == nil {
		op += " (nil error)"
	}
	r.ops = append(r.ops, op)
}

// take returns what r was told and forgets it.
func (r *recorder) take() (ends []callonce.End, ops []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	ends, ops, r.ends, r.ops = r.ends, r.ops, nil, nil
	return ends, ops
}

// endings are the Endings of ends, by key.
func endings(ends []callonce.End) map[string]callonce.Ending {
	out := map[string]callonce.Ending{}
	for _, e := range ends {
		if _, dup := out[e.Key]; dup {
			out[e.Key] = "told twice"
			continue
		}
		out[e.Key] = e.Ending
	}
	return out
}

// TestHooksTellEachEnding: every way a Do ends is told once, with its
// scope, key, result and error, on every store; a crash (a failpoint) is
// not, and none of it is a store error.
func TestHooksTellEachEnding(t *testing.T) {
	forEachStore(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		rec := &recorder{}
		fps := &failpoint.Set{}
		c := e.caller(t, callonce.Config{MaxAttempts: 1, Hooks: []callonce.Hook{rec}, Test: eos.TestConfig{Failpoints: fps}})
		done := func(_ context.Context, key string) callonce.Outcome { return callonce.Done([]byte("v-" + key)) }
		if _, err := e.store.Claim(ctx, "s", "held", fp, time.Hour); err != nil {
			t.Fatal(err)
		}
		cancelled, cancel := context.WithCancel(ctx)
		cancel()
		steps := []struct {
			ctx  context.Context
			key  string
			fp   string
			call callonce.Func
			want callonce.Ending
		}{
			{ctx, "new", "a", done, callonce.EndCalled},
			{ctx, "new", "a", done, callonce.EndReplayed},
			{ctx, "new", "b", done, callonce.EndMismatch},
			{ctx, "declined", "a", func(context.Context, string) callonce.Outcome { return callonce.Failed(nil, "no") }, callonce.EndFailed},
			{ctx, "held", "request-digest", done, callonce.EndInProgress},
			{ctx, "flaky", "a", func(context.Context, string) callonce.Outcome { return callonce.Unknown(errors.New("reset")) }, callonce.EndUnknown},
			{ctx, "flaky", "a", done, callonce.EndResumed},
			{ctx, "bad key", "a", done, callonce.EndInvalid},
			{cancelled, "late", "a", done, callonce.EndCanceled},
		}
		for _, s := range steps {
			r, err := c.Do(s.ctx, "s", s.key, []byte(s.fp), s.call)
			ends, ops := rec.take()
			if len(ends) != 1 || len(ops) != 0 {
				t.Fatalf("Do(%s) = %+v, %v: told %+v and store errors %q; want one end, no store error", s.key, r, err, ends, ops)
			}
			got := ends[0]
			if got.Ending != s.want || got.Scope != "s" || got.Key != s.key || got.Err != err || !slices.Equal(got.Result.Value, r.Value) || got.Result.Replayed != r.Replayed {
				t.Errorf("Do(%s) = %+v, %v: told %+v; want ending %s with Do's result and error", s.key, r, err, got, s.want)
			}
		}
		fps.Arm(callonce.FailAfterCall, failpoint.Times(1, failpoint.Error()))
		if _, err := c.Do(ctx, "s", "crash", fp, done); !errors.Is(err, failpoint.ErrInjected) {
			t.Fatalf("crashing Do: %v", err)
		}
		if ends, ops := rec.take(); len(ends)+len(ops) != 0 {
			t.Errorf("a crash told %+v, %q; want nothing", ends, ops)
		}
	})
}

// TestHooksStage: a Stage's batch tells one end per call, batched store or
// not, as Do would.
func TestHooksStage(t *testing.T) {
	forEachStore(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		rec := &recorder{}
		c := e.caller(t, callonce.Config{MaxAttempts: 1, Hooks: []callonce.Hook{rec}})
		if _, err := c.Do(ctx, "stage", "recorded", []byte("p"), func(context.Context, string) callonce.Outcome { return callonce.Done(nil) }); err != nil {
			t.Fatal(err)
		}
		if _, err := e.store.Claim(ctx, "stage", "held", []byte("p"), time.Hour); err != nil {
			t.Fatal(err)
		}
		rec.take()
		outcome := map[string]callonce.Outcome{"new": callonce.Done(nil), "declined": callonce.Failed(nil, "no"),
			"flaky": callonce.Unknown(errors.New("timeout")), "recorded": callonce.Done(nil), "held": callonce.Done(nil)}
		plan := func(m eos.Message) (callonce.Call, bool) {
			scope := "stage"
			if m.ID == "long-scope" { // a good key, a scope the store refuses
				scope = strings.Repeat("s", dedupe.MaxScopeLen+1)
			}
			return callonce.Call{Scope: scope, Key: m.ID, Fingerprint: m.Payload, Func: func(context.Context, string) callonce.Outcome { return outcome[m.ID] }}, true
		}
		var msgs []eos.Message
		for _, id := range []string{"new", "declined", "flaky", "recorded", "held", "bad key", "long-scope"} {
			msgs = append(msgs, eos.Message{ID: id, Key: "k", Payload: []byte("p")})
		}
		callonce.NewStage(c, plan).Prepare(ctx, inboxtest.NewDeliveries(msgs...).Inbox())
		ends, ops := rec.take()
		want := map[string]callonce.Ending{"new": callonce.EndCalled, "declined": callonce.EndFailed, "flaky": callonce.EndUnknown,
			"recorded": callonce.EndReplayed, "held": callonce.EndInProgress, "bad key": callonce.EndInvalid, "long-scope": callonce.EndInvalid}
		if got := endings(ends); len(got) != len(want) || len(ends) != len(want) || len(ops) != 0 {
			t.Fatalf("told %v (%d ends), store errors %q; want %v", got, len(ends), ops, want)
		}
		for k, w := range want {
			if got := endings(ends)[k]; got != w {
				t.Errorf("%s: told %s, want %s", k, got, w)
			}
		}
	})
}

// TestHooksStoreErrors: a store that fails, on the claim or on the
// completion after the call, ends the Do as store_error and is told to
// the StoreErrorHooks with the step; on a real SQLite database closed
// under the caller, and a real Redis client closed.
func TestHooksStoreErrors(t *testing.T) {
	type failing struct {
		store dedupe.Store
		fail  func() // closes the store's connection
	}
	sqliteFailing := func(t *testing.T, batched bool) failing {
		d := testdb.NewSQLite(t, sqlite.Config{})
		testdb.Migrate(t, d.Migrator())
		s, err := dedupe.NewSQL(d, dedupe.Config{})
		if err != nil {
			t.Fatal(err)
		}
		if batched {
			return failing{callonce.Batched(d, s), func() { d.Close() }}
		}
		return failing{s, func() { d.Close() }}
	}
	for _, tc := range []struct {
		name string
		new  func(t *testing.T) failing
		// the ops told for a failed claim and a failed completion
		claimOp, completeOp string
	}{
		{"sqlite", func(t *testing.T) failing { return sqliteFailing(t, false) }, "callonce.claim", "callonce.complete"},
		{"sqlite-batched", func(t *testing.T) failing { return sqliteFailing(t, true) }, "callonce.claim_many", "callonce.complete_many"},
		{"redis", func(t *testing.T) failing {
			s, rc := redisStoreClient(t, dedupe.Config{})
			return failing{s, func() { rc.Close() }}
		}, "callonce.claim", "callonce.complete"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			for _, at := range []string{"complete", "claim"} {
				f := tc.new(t)
				rec := &recorder{}
				c, err := callonce.New(f.store, callonce.Config{Hooks: []callonce.Hook{rec}})
				if err != nil {
					t.Fatal(err)
				}
				call := func(context.Context, string) callonce.Outcome {
					f.fail() // after the claim, before the completion
					return callonce.Done([]byte("charged"))
				}
				wantOp := tc.completeOp
				if at == "claim" {
					f.fail()
					wantOp = tc.claimOp
				}
				// Through a Stage, so that a BatchStore's batch path runs.
				stage := callonce.NewStage(c, func(m eos.Message) (callonce.Call, bool) {
					return callonce.Call{Scope: "s", Key: m.ID, Fingerprint: fp, Func: call}, true
				})
				m := eos.Message{ID: "k-" + at, Key: "k", Payload: []byte("p")}
				stage.Prepare(ctx, inboxtest.NewDeliveries(m).Inbox())
				_, err = stage.Result(m)
				ends, ops := rec.take()
				if err == nil || len(ends) != 1 || ends[0].Ending != callonce.EndStoreError || ends[0].Err != err {
					t.Errorf("store failing at %s: %v, told %+v; want one store_error end with the error", at, err, ends)
				}
				if !slices.Equal(ops, []string{wantOp}) {
					t.Errorf("store failing at %s: store errors at %q, want [%s]", at, ops, wantOp)
				}
			}
		})
	}
}

// A value implementing no hook interface is refused by New.
func TestHooksRefused(t *testing.T) {
	_, err := callonce.New(sqliteStore(t), callonce.Config{Hooks: []callonce.Hook{callonce.EndFunc(nil), struct{}{}}})
	var ce *eos.ConfigError
	if !errors.As(err, &ce) || ce.Field != "callonce.Config.Hooks[1]" {
		t.Fatalf("New with a hook of no kind: %v, want a *eos.ConfigError on Hooks[1]", err)
	}
}
