package callonce_test

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/eoskit/eos"
	"github.com/eoskit/eos/callonce"
	"github.com/eoskit/eos/dedupe"
	"github.com/eoskit/eos/dedupe/dedupetest"
	"github.com/eoskit/eos/dedupe/redisstore"
	"github.com/eoskit/eos/driver"
	"github.com/eoskit/eos/examples/payments"
	"github.com/eoskit/eos/failpoint"
	"github.com/eoskit/eos/internal/testdb"
	"github.com/eoskit/eos/internal/testdb/engines"
	"github.com/eoskit/eos/internal/testenv"
)

type env struct {
	clock *dedupetest.Clock
	store dedupe.Store
}

// forEachStore runs test on each backend, each with its own clock.
func forEachStore(t *testing.T, test func(t *testing.T, e *env)) {
	for _, backend := range backends() {
		t.Run(backend.name, func(t *testing.T) {
			c := dedupetest.NewClock()
			test(t, &env{clock: c, store: backend.new(t, dedupe.Config{Test: eos.TestConfig{Now: c.Now}})})
		})
	}
}

type backend struct {
	name string
	new  func(testing.TB, dedupe.Config) dedupe.Store
}

// backends are the dedupe stores: SQL over SQLite and over PostgreSQL,
// each also batched (callonce.Batched: a Stage claims and completes its
// batches in one transaction each), and Redis.
func backends() []backend {
	return []backend{
		{"sqlite", sqlStore(func(t testing.TB) driver.Driver[*sql.Tx] { return testdb.SQLite(t).Driver })},
		{"postgres", sqlStore(func(t testing.TB) driver.Driver[*sql.Tx] { return engines.PostgresStdlib(t).Driver })},
		{"sqlite-batched", sqlBatched(func(t testing.TB) driver.Driver[*sql.Tx] { return testdb.SQLite(t).Driver })},
		{"postgres-batched", sqlBatched(func(t testing.TB) driver.Driver[*sql.Tx] { return engines.PostgresStdlib(t).Driver })},
		{"redis", redisStore},
	}
}

// sqlBatched is the SQL store as a callonce.BatchStore.
func sqlBatched(drv func(t testing.TB) driver.Driver[*sql.Tx]) func(testing.TB, dedupe.Config) dedupe.Store {
	return func(t testing.TB, cfg dedupe.Config) dedupe.Store {
		d := drv(t)
		s, err := dedupe.NewSQL(d, cfg)
		if err != nil {
			t.Fatal(err)
		}
		return callonce.Batched(d, s)
	}
}

func sqlStore(drv func(t testing.TB) driver.Driver[*sql.Tx]) func(testing.TB, dedupe.Config) dedupe.Store {
	return func(t testing.TB, cfg dedupe.Config) dedupe.Store {
		s, err := dedupe.NewSQL(drv(t), cfg)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
}

// redisStore is a store on EOS_TEST_REDIS_URL under a key prefix of t's
// own, whose keys are deleted when t ends.
func redisStore(t testing.TB, cfg dedupe.Config) dedupe.Store {
	s, _ := redisStoreClient(t, cfg)
	return s
}

// redisStoreClient is redisStore with its client, which t may close: the
// keys are deleted through a client of their own.
func redisStoreClient(t testing.TB, cfg dedupe.Config) (dedupe.Store, *redis.Client) {
	t.Helper()
	opt, err := redis.ParseURL(testenv.RedisURL(t))
	if err != nil {
		t.Fatal(err)
	}
	rc := redis.NewClient(opt)
	prefix := testenv.Name("eos:callonce:") + ":"
	t.Cleanup(func() {
		ctx := context.Background()
		cc := redis.NewClient(opt)
		defer cc.Close()
		it := cc.Scan(ctx, 0, prefix+"*", 100).Iterator()
		for it.Next(ctx) {
			cc.Del(ctx, it.Val())
		}
		rc.Close()
	})
	s, err := redisstore.New(context.Background(), rc, redisstore.Config{Dedupe: cfg, Prefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	return s, rc
}

func sqliteStore(t *testing.T) dedupe.Store {
	s, err := dedupe.NewSQL(testdb.SQLite(t).Driver, dedupe.Config{})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func (e *env) caller(t *testing.T, cfg callonce.Config) *callonce.Caller {
	t.Helper()
	if cfg.RetryDelay == 0 {
		cfg.RetryDelay, cfg.MaxRetryDelay = time.Nanosecond, time.Nanosecond
	}
	cfg.Test.Now = e.clock.Now
	c, err := callonce.New(e.store, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

var fp = []byte("request-digest")

// TestOnceAcrossWorkers: while one worker calls, every other worker gets
// ErrInProgress and makes no call; afterwards every Do replays the result.
func TestOnceAcrossWorkers(t *testing.T) {
	forEachStore(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		const workers = 16
		var calls atomic.Int64
		release := make(chan struct{})
		call := func(ctx context.Context, key string) callonce.Outcome {
			calls.Add(1)
			<-release
			return callonce.Done([]byte("charged " + key))
		}
		type res struct {
			r   callonce.Result
			err error
		}
		out := make(chan res, workers)
		for range workers {
			c := e.caller(t, callonce.Config{})
			go func() {
				r, err := c.Do(ctx, "payments", "ord-1", fp, call)
				out <- res{r, err}
			}()
		}
		for range workers - 1 { // all but the one calling, which waits for release
			got := <-out
			var ip *callonce.InProgressError
			if !errors.As(got.err, &ip) || !errors.Is(got.err, callonce.ErrInProgress) || ip.RetryAfter <= 0 {
				t.Fatalf("a concurrent Do: %+v, %v; want *InProgressError", got.r, got.err)
			}
		}
		close(release)
		got := <-out
		if got.err != nil || got.r.Status != callonce.Succeeded || string(got.r.Value) != "charged ord-1" || got.r.Replayed || got.r.Attempts != 1 {
			t.Fatalf("the calling Do: %+v, %v", got.r, got.err)
		}
		for range 3 {
			r, err := e.caller(t, callonce.Config{}).Do(ctx, "payments", "ord-1", fp, call)
			if err != nil || !r.Replayed || r.Attempts != 0 || string(r.Value) != "charged ord-1" {
				t.Fatalf("a later Do: %+v, %v; want the recorded result", r, err)
			}
		}
		if n := calls.Load(); n != 1 {
			t.Fatalf("%d calls, want 1", n)
		}
	})
}

// provider is the payments example's provider simulator, which replays the
// first answer for a known Idempotency-Key and records each charge.
func provider(t *testing.T) (*payments.Provider, *payments.ProviderClient) {
	t.Helper()
	ctx := context.Background()
	p, err := payments.OpenProvider(ctx, filepath.Join(t.TempDir(), "provider.db"), payments.ProviderConfig{})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(p)
	t.Cleanup(func() { srv.Close(); p.Close() })
	pc, err := payments.NewProviderClient(srv.URL, srv.Client())
	if err != nil {
		t.Fatal(err)
	}
	return p, pc
}

// TestCrashAfterCallResumesWithSameKey: a worker dies after the provider
// charged and before the result was recorded; once its lease expired,
// another worker claims the key and calls again with the same idempotency
// key, and the provider replays the first charge.
func TestCrashAfterCallResumesWithSameKey(t *testing.T) {
	forEachStore(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		p, pc := provider(t)
		charge := payments.Charge{OrderID: "ord-7", Account: "acct-1", Amount: 250}
		var keys []string
		var sent atomic.Int64
		call := func(ctx context.Context, key string) callonce.Outcome {
			keys = append(keys, key)
			sent.Add(1)
			res, err := pc.ChargeWithKey(ctx, key, charge)
			if err != nil {
				return callonce.Unknown(err)
			}
			return callonce.Done([]byte(res.ChargeID))
		}
		fps := &failpoint.Set{}
		fps.Arm(callonce.FailAfterCall, failpoint.Times(1, failpoint.Error()))
		crashing := e.caller(t, callonce.Config{Lease: time.Minute, Test: eos.TestConfig{Failpoints: fps}})
		if _, err := crashing.Do(ctx, "payments", "charge-ord-7", fp, call); !errors.Is(err, failpoint.ErrInjected) {
			t.Fatalf("the crashing Do: %v", err)
		}

		next := e.caller(t, callonce.Config{Lease: time.Minute})
		if _, err := next.Do(ctx, "payments", "charge-ord-7", fp, call); !errors.Is(err, callonce.ErrInProgress) {
			t.Fatalf("before the lease expired: %v; want ErrInProgress", err)
		}
		e.clock.Advance(time.Minute + time.Second)
		r, err := next.Do(ctx, "payments", "charge-ord-7", fp, call)
		if err != nil || r.Status != callonce.Succeeded || !r.Resumed || r.Replayed || r.Attempts != 1 {
			t.Fatalf("after the lease expired: %+v, %v", r, err)
		}
		if sent.Load() != 2 || keys[0] != keys[1] || keys[0] != "charge-ord-7" {
			t.Fatalf("idempotency keys sent: %q", keys)
		}
		charges, err := p.Charges(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(charges) != 1 || charges[0].ChargeID != string(r.Value) {
			t.Fatalf("provider charges %+v, result %q: want one charge, the recorded one", charges, r.Value)
		}
		if st, err := p.Stats(ctx); err != nil || st.Replays != 1 {
			t.Fatalf("provider stats %+v, %v; want 1 replay", st, err)
		}
		// Recorded: no third call.
		if r, err := next.Do(ctx, "payments", "charge-ord-7", fp, call); err != nil || !r.Replayed || sent.Load() != 2 {
			t.Fatalf("after completion: %+v, %v, %d calls", r, err, sent.Load())
		}
	})
}

// TestUnknownRetriedWithSameKey: Unknown outcomes are retried with the same
// key until a definitive one; past MaxAttempts, Do gives up with
// ErrUnknownOutcome and releases the key, and the next Do resumes it, with
// the same key again.
func TestUnknownRetriedWithSameKey(t *testing.T) {
	forEachStore(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		timeout := errors.New("read: connection reset by peer")
		var keys []string
		unknowns := 5
		call := func(ctx context.Context, key string) callonce.Outcome {
			keys = append(keys, key)
			if len(keys) <= unknowns {
				return callonce.Unknown(timeout)
			}
			return callonce.Done([]byte("ok"))
		}
		c := e.caller(t, callonce.Config{MaxAttempts: 3})
		_, err := c.Do(ctx, "email", "welcome-42", fp, call)
		var ue *callonce.UnknownOutcomeError
		if !errors.As(err, &ue) || !errors.Is(err, callonce.ErrUnknownOutcome) || !errors.Is(err, timeout) || ue.Attempts != 3 {
			t.Fatalf("first Do: %v; want *UnknownOutcomeError after 3 attempts wrapping the cause", err)
		}
		// Released: the next Do claims at once (no lease to wait out).
		r, err := c.Do(ctx, "email", "welcome-42", fp, call)
		if err != nil || r.Status != callonce.Succeeded || r.Attempts != 3 || !r.Resumed {
			t.Fatalf("second Do: %+v, %v", r, err)
		}
		if len(keys) != 6 {
			t.Fatalf("%d calls, want 6", len(keys))
		}
		for _, k := range keys {
			if k != "welcome-42" {
				t.Fatalf("keys sent %q: want the same key every time", keys)
			}
		}
	})
}

// TestFailedRecordedNotRetried: a permanent failure is recorded as the
// key's result and never called again.
func TestFailedRecordedNotRetried(t *testing.T) {
	forEachStore(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		var calls atomic.Int64
		call := func(ctx context.Context, key string) callonce.Outcome {
			calls.Add(1)
			return callonce.Failed([]byte(`{"error":"card declined"}`), "402 card declined")
		}
		c := e.caller(t, callonce.Config{})
		for i := range 3 {
			r, err := c.Do(ctx, "payments", "ord-9", fp, call)
			if err != nil || r.Status != callonce.StatusFailed || r.Reason != "402 card declined" || !bytes.Equal(r.Value, []byte(`{"error":"card declined"}`)) || r.Replayed != (i > 0) {
				t.Fatalf("Do %d: %+v, %v", i, r, err)
			}
			var fe *callonce.FailedError
			if err := r.Err(); !errors.Is(err, callonce.ErrFailed) || !errors.As(err, &fe) || fe.Reason != r.Reason {
				t.Fatalf("Result.Err: %v", err)
			}
		}
		if calls.Load() != 1 {
			t.Fatalf("%d calls, want 1", calls.Load())
		}
	})
}

// TestMismatch: the key reused for another request is refused, uncalled.
func TestMismatch(t *testing.T) {
	forEachStore(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		c := e.caller(t, callonce.Config{})
		done := func(context.Context, string) callonce.Outcome { return callonce.Done(nil) }
		if _, err := c.Do(ctx, "s", "k", []byte("a"), done); err != nil {
			t.Fatal(err)
		}
		_, err := c.Do(ctx, "s", "k", []byte("b"), func(context.Context, string) callonce.Outcome {
			t.Error("called for a mismatched key")
			return callonce.Done(nil)
		})
		var me *callonce.MismatchError
		if !errors.Is(err, callonce.ErrMismatch) || !errors.As(err, &me) {
			t.Fatalf("got %v, want ErrMismatch", err)
		}
	})
}

// TestLeaseLostCancelsCall: a worker whose lease expired and was taken over
// learns it at its next renewal: its call's context ends, and its answer
// is not recorded over the new owner's.
func TestLeaseLostCancelsCall(t *testing.T) {
	forEachStore(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		const lease = 30 * time.Millisecond // renewals every 10ms, in real time
		entered := make(chan struct{})
		rec := &recorder{}
		slow := e.caller(t, callonce.Config{Lease: lease, Hooks: []callonce.Hook{rec}})
		errc := make(chan error, 1)
		go func() {
			_, err := slow.Do(ctx, "s", "k", fp, func(ctx context.Context, key string) callonce.Outcome {
				close(entered)
				<-ctx.Done() // cancelled when the lease is lost
				return callonce.Done([]byte("stale"))
			})
			errc <- err
		}()
		<-entered
		e.clock.Advance(time.Hour) // the store's clock: slow's lease has expired
		r, err := e.caller(t, callonce.Config{Lease: lease}).Do(ctx, "s", "k", fp, func(context.Context, string) callonce.Outcome {
			return callonce.Done([]byte("fresh"))
		})
		if err != nil || string(r.Value) != "fresh" || !r.Resumed {
			t.Fatalf("takeover: %+v, %v", r, err)
		}
		if err := <-errc; !errors.Is(err, callonce.ErrLeaseLost) || !errors.Is(err, dedupe.ErrFenced) {
			t.Fatalf("stale worker: %v; want ErrLeaseLost", err)
		}
		if ends, ops := rec.take(); len(ends) != 1 || ends[0].Ending != callonce.EndLeaseLost || len(ops) != 0 {
			t.Fatalf("stale worker's hook told %+v, store errors %q; want lease_lost alone", ends, ops)
		}
		if r, err := e.caller(t, callonce.Config{}).Do(ctx, "s", "k", fp, nil); err != nil || string(r.Value) != "fresh" {
			t.Fatalf("recorded: %+v, %v; want the new owner's", r, err)
		}
	})
}

func TestCheckKey(t *testing.T) {
	for key, ok := range map[string]bool{
		"ord-1": true, "charge-0190a3b2-7c1e-7d4e-9f00-000000000001": true, string(bytes.Repeat([]byte("k"), 255)): true,
		"": false, string(bytes.Repeat([]byte("k"), 256)): false, "a b": false, "a\nb": false, "é": false,
	} {
		err := callonce.CheckKey(key)
		var ke *callonce.KeyError
		if (err == nil) != ok || (err != nil && !errors.As(err, &ke)) {
			t.Errorf("CheckKey(%q) = %v, want ok=%v", key, err, ok)
		}
	}
	if _, err := callonce.New(sqliteStore(t), callonce.Config{}); err != nil {
		t.Fatal(err)
	}
}

func TestSetHeader(t *testing.T) {
	req := httptest.NewRequest(http.MethodPost, "/v1/charges", nil)
	callonce.SetHeader(req, `a"b\c`)
	if got := req.Header.Get("Idempotency-Key"); got != `"a\"b\\c"` {
		t.Fatalf("header %s", got)
	}
}

func TestConfigRefused(t *testing.T) {
	for _, cfg := range []callonce.Config{{Lease: -1}, {MaxAttempts: -1}, {Concurrency: 5000}} {
		if _, err := callonce.New(sqliteStore(t), cfg); !errors.Is(err, eos.ErrInvalidConfig) {
			t.Errorf("New(%+v) = %v, want ErrInvalidConfig", cfg, err)
		}
	}
}

// TestResultTooLarge: an answer over the store's bound is an error, and the
// key is released at once (retrying would get the same answer).
func TestResultTooLarge(t *testing.T) {
	ctx := context.Background()
	store, err := dedupe.NewSQL(testdb.SQLite(t).Driver, dedupe.Config{MaxResultSize: 64})
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{}
	c, err := callonce.New(store, callonce.Config{Hooks: []callonce.Hook{rec}})
	if err != nil {
		t.Fatal(err)
	}
	calls := 0
	big := func(context.Context, string) callonce.Outcome {
		calls++
		return callonce.Done(bytes.Repeat([]byte("x"), 100))
	}
	for i := range 2 {
		if _, err := c.Do(ctx, "s", "k", fp, big); !errors.Is(err, dedupe.ErrResultTooLarge) {
			t.Fatalf("Do %d: %v, want ErrResultTooLarge", i, err)
		}
	}
	if calls != 2 {
		t.Fatalf("%d calls, want 2: the key is released, not held for the lease", calls)
	}
	if ends, ops := rec.take(); len(ends) != 2 || ends[0].Ending != callonce.EndTooLarge || ends[1].Ending != callonce.EndTooLarge || len(ops) != 0 {
		t.Fatalf("told %+v, store errors %q; want too_large twice, no store error", ends, ops)
	}
}
