package dedupetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eoskit/eos"
	"github.com/eoskit/eos/dedupe"
)

// Backend is a Store implementation under test.
type Backend struct {
	// New returns a store on a fresh, isolated namespace (database schema,
	// key prefix) configured with cfg, whose clock the suite moves.
	New func(t *testing.T, cfg dedupe.Config) dedupe.Store
	// Down returns a store configured with cfg whose service cannot be
	// reached: its connection closed, its pool stopped.
	Down func(t *testing.T, cfg dedupe.Config) dedupe.Store
}

// Compacter is a store whose expired records stay until it is told to
// delete them (the SQL store). The suite calls Compact where retention is
// tested; a store without it must drop them on its own (Redis's expiry).
type Compacter interface {
	Compact(ctx context.Context) (int, error)
}

// Clock is the suite's clock: it moves only when told.
type Clock struct {
	mu  sync.Mutex
	now time.Time
}

// NewClock returns a clock at the current time, in whole milliseconds
// (every store keeps at least that precision).
func NewClock() *Clock { return &Clock{now: time.Now().UTC().Truncate(time.Millisecond)} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Advance moves the clock by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// Retention and MaxResultSize of the configuration the suite gives.
const (
	Retention     = time.Hour
	MaxResultSize = 1024
)

// env is one test's store and clock.
type env struct {
	t     *testing.T
	s     dedupe.Store
	clock *Clock
}

func newEnv(t *testing.T, b Backend) *env {
	clock := NewClock()
	return &env{t: t, s: b.New(t, config(clock)), clock: clock}
}

func config(clock *Clock) dedupe.Config {
	return dedupe.Config{Retention: Retention, MaxResultSize: MaxResultSize, Test: eos.TestConfig{Now: clock.Now}}
}

// Run runs the conformance suite.
func Run(t *testing.T, b Backend) {
	tests := []struct {
		name string
		fn   func(*env)
	}{
		{"CompleteThenClaim", testCompleteThenClaim},
		{"InProgress", testInProgress},
		{"TakeoverFencesStaleOwner", testTakeover},
		{"Renew", testRenew},
		{"Release", testRelease},
		{"ConcurrentClaims", testConcurrent},
		{"ResultTooLarge", testResultTooLarge},
		{"Invalid", testInvalid},
		{"Retention", testRetention},
		{"Scopes", testScopes},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(newEnv(t, b)) })
	}
	t.Run("StoreDown", func(t *testing.T) { testDown(t, b.Down(t, config(NewClock()))) })
}

var ctx = context.Background()

func (e *env) claim(scope, key, fp string, lease time.Duration) dedupe.Claim {
	e.t.Helper()
	c, err := e.s.Claim(ctx, scope, key, []byte(fp), lease)
	if err != nil {
		e.t.Fatalf("Claim(%q, %q): %v", scope, key, err)
	}
	return c
}

// mustClaim claims and fails unless the key was claimed.
func (e *env) mustClaim(scope, key, fp string, lease time.Duration) dedupe.Lease {
	e.t.Helper()
	c := e.claim(scope, key, fp, lease)
	if c.Status != dedupe.Claimed {
		e.t.Fatalf("Claim(%q, %q): %v, want claimed", scope, key, c.Status)
	}
	l := c.Lease
	if l.Scope != scope || l.Key != key || len(l.Token) < 16 || l.Generation < 1 || !l.Expires.Equal(e.clock.Now().Add(lease)) {
		e.t.Fatalf("Claim(%q, %q): lease %+v at %v for %v", scope, key, l, e.clock.Now(), lease)
	}
	return l
}

func (e *env) expect(c dedupe.Claim, want dedupe.Status) {
	e.t.Helper()
	if c.Status != want {
		e.t.Fatalf("claim: %v (%+v), want %v", c.Status, c, want)
	}
}

func (e *env) mustErr(err, want error) {
	e.t.Helper()
	if !errors.Is(err, want) {
		e.t.Fatalf("got %v, want %v", err, want)
	}
}

func (e *env) must(err error) {
	e.t.Helper()
	if err != nil {
		e.t.Fatal(err)
	}
}

// result is a result with every byte value, NUL and invalid UTF-8 among
// them.
func result(tag string) []byte {
	b := []byte(tag)
	for i := range 256 {
		b = append(b, byte(i))
	}
	return b
}

func testCompleteThenClaim(e *env) {
	l := e.mustClaim("s", "k", "fp", time.Minute)
	e.clock.Advance(time.Second)
	done := e.clock.Now()
	e.must(e.s.Complete(ctx, l, result("r")))
	e.clock.Advance(time.Second)
	c := e.claim("s", "k", "fp", time.Minute)
	e.expect(c, dedupe.Completed)
	if !bytes.Equal(c.Result, result("r")) || !c.CompletedAt.Equal(done) {
		e.t.Fatalf("completed claim: result %q at %v, want %q at %v", c.Result, c.CompletedAt, result("r"), done)
	}
	e.expect(e.claim("s", "k", "other", time.Minute), dedupe.Mismatch)
	// The lease is spent: a second Complete is fenced, the result stays.
	e.mustErr(e.s.Complete(ctx, l, []byte("again")), dedupe.ErrFenced)
	e.mustErr(e.s.Release(ctx, l), dedupe.ErrFenced)
	if c := e.claim("s", "k", "fp", time.Minute); !bytes.Equal(c.Result, result("r")) {
		e.t.Fatalf("result after a second Complete: %q", c.Result)
	}
	// An empty result is a result.
	l = e.mustClaim("s", "empty", "", time.Minute)
	e.must(e.s.Complete(ctx, l, nil))
	if c := e.claim("s", "empty", "", time.Minute); c.Status != dedupe.Completed || len(c.Result) != 0 {
		e.t.Fatalf("empty result: %+v", c)
	}
}

func testInProgress(e *env) {
	e.mustClaim("s", "k", "fp", 10*time.Second)
	e.clock.Advance(3 * time.Second)
	c := e.claim("s", "k", "fp", time.Minute)
	e.expect(c, dedupe.InProgress)
	if c.RetryAfter != 7*time.Second {
		e.t.Fatalf("RetryAfter %v, want 7s", c.RetryAfter)
	}
	e.expect(e.claim("s", "k", "other", time.Minute), dedupe.Mismatch)
	e.clock.Advance(7*time.Second - time.Millisecond)
	if c := e.claim("s", "k", "fp", time.Minute); c.Status != dedupe.InProgress || c.RetryAfter != time.Millisecond {
		e.t.Fatalf("1ms before the end: %+v", c)
	}
}

// testTakeover: a holder whose lease expired and was taken over can
// neither complete, release nor renew; the new owner's result stands.
func testTakeover(e *env) {
	a := e.mustClaim("s", "k", "fp", 10*time.Second)
	e.clock.Advance(10 * time.Second)
	// Another fingerprint cannot take an expired lease over.
	e.expect(e.claim("s", "k", "other", time.Minute), dedupe.Mismatch)
	b := e.mustClaim("s", "k", "fp", time.Minute)
	if b.Generation <= a.Generation || b.Token == a.Token {
		e.t.Fatalf("takeover: %+v after %+v: want a greater generation and another token", b, a)
	}
	e.mustErr(e.s.Complete(ctx, a, []byte("stale")), dedupe.ErrFenced)
	e.mustErr(e.s.Release(ctx, a), dedupe.ErrFenced)
	_, err := e.s.Renew(ctx, a, time.Minute)
	e.mustErr(err, dedupe.ErrFenced)
	// A lease with b's token and another generation, or b's generation and
	// another token, is not b's.
	forged := []dedupe.Lease{b, b}
	forged[0].Generation++
	forged[1].Token = a.Token
	for _, f := range forged {
		e.mustErr(e.s.Release(ctx, f), dedupe.ErrFenced)
	}
	// The stale owner's attempts changed nothing: b still holds the key.
	e.expect(e.claim("s", "k", "fp", time.Minute), dedupe.InProgress)
	e.must(e.s.Complete(ctx, b, []byte("new owner")))
	e.mustErr(e.s.Complete(ctx, a, []byte("stale")), dedupe.ErrFenced)
	c := e.claim("s", "k", "fp", time.Minute)
	if c.Status != dedupe.Completed || string(c.Result) != "new owner" {
		e.t.Fatalf("after takeover: %v %q, want the new owner's result", c.Status, c.Result)
	}
}

func testRenew(e *env) {
	l := e.mustClaim("s", "k", "fp", 10*time.Second)
	e.clock.Advance(5 * time.Second)
	r, err := e.s.Renew(ctx, l, 20*time.Second)
	e.must(err)
	if !r.Expires.Equal(e.clock.Now().Add(20*time.Second)) || r.Token != l.Token || r.Generation != l.Generation {
		e.t.Fatalf("renewed %+v from %+v", r, l)
	}
	e.clock.Advance(10 * time.Second) // past the first end, before the new one
	e.expect(e.claim("s", "k", "fp", time.Minute), dedupe.InProgress)
	e.clock.Advance(10 * time.Second) // at the new end: expired
	_, err = e.s.Renew(ctx, r, time.Minute)
	e.mustErr(err, dedupe.ErrFenced)
	// Lapsed but not taken over: the holder may still complete.
	e.must(e.s.Complete(ctx, r, []byte("late")))
	e.expect(e.claim("s", "k", "fp", time.Minute), dedupe.Completed)
}

func testRelease(e *env) {
	a := e.mustClaim("s", "k", "fp", time.Minute)
	e.must(e.s.Release(ctx, a))
	e.mustErr(e.s.Release(ctx, a), dedupe.ErrFenced)
	// A released key is bound to its fingerprint still.
	e.expect(e.claim("s", "k", "other", time.Minute), dedupe.Mismatch)
	b := e.mustClaim("s", "k", "fp", time.Minute)
	if b.Generation <= a.Generation {
		e.t.Fatalf("claim after release: generation %d after %d", b.Generation, a.Generation)
	}
	e.mustErr(e.s.Complete(ctx, a, []byte("x")), dedupe.ErrFenced)
	e.must(e.s.Complete(ctx, b, []byte("b")))
}

// testConcurrent: of 100 concurrent claims of one key, exactly one wins;
// the others find it in progress.
func testConcurrent(e *env) {
	const n = 100
	var wg sync.WaitGroup
	claims := make([]dedupe.Claim, n)
	errs := make([]error, n)
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			claims[i], errs[i] = e.s.Claim(ctx, "s", "k", []byte("fp"), time.Minute)
		}()
	}
	close(start)
	wg.Wait()
	won := 0
	for i, c := range claims {
		if errs[i] != nil {
			e.t.Fatalf("claim %d: %v", i, errs[i])
		}
		switch c.Status {
		case dedupe.Claimed:
			won++
		case dedupe.InProgress:
		default:
			e.t.Fatalf("claim %d: %v", i, c.Status)
		}
	}
	if won != 1 {
		e.t.Fatalf("%d of %d concurrent claims won, want 1", won, n)
	}
}

func testResultTooLarge(e *env) {
	l := e.mustClaim("s", "k", "fp", time.Minute)
	e.mustErr(e.s.Complete(ctx, l, make([]byte, MaxResultSize+1)), dedupe.ErrResultTooLarge)
	// The lease is kept.
	e.expect(e.claim("s", "k", "fp", time.Minute), dedupe.InProgress)
	e.must(e.s.Complete(ctx, l, bytes.Repeat([]byte{7}, MaxResultSize)))
	if c := e.claim("s", "k", "fp", time.Minute); len(c.Result) != MaxResultSize {
		e.t.Fatalf("result of %d bytes", len(c.Result))
	}
}

func testInvalid(e *env) {
	long := strings.Repeat("k", dedupe.MaxKeyLen+1)
	claims := []struct {
		arg, scope, key string
		fp              []byte
		lease           time.Duration
	}{
		{"scope", "", "k", nil, time.Second},
		{"scope", strings.Repeat("s", dedupe.MaxScopeLen+1), "k", nil, time.Second},
		{"key", "s", "", nil, time.Second},
		{"key", "s", long, nil, time.Second},
		{"fingerprint", "s", "k", make([]byte, dedupe.MaxFingerprintLen+1), time.Second},
		{"lease", "s", "k", nil, 0},
		{"lease", "s", "k", nil, -time.Second},
	}
	for _, c := range claims {
		_, err := e.s.Claim(ctx, c.scope, c.key, c.fp, c.lease)
		e.invalid(err, c.arg)
	}
	l := e.mustClaim("s", "k", "fp", time.Minute)
	for _, bad := range []dedupe.Lease{{}, {Scope: "s", Key: "k", Generation: 1}, {Scope: "s", Key: "k", Token: l.Token}, {Scope: "s", Token: l.Token, Generation: 1}} {
		e.invalid(e.s.Complete(ctx, bad, nil), "")
		e.invalid(e.s.Release(ctx, bad), "")
		_, err := e.s.Renew(ctx, bad, time.Minute)
		e.invalid(err, "")
	}
	_, err := e.s.Renew(ctx, l, 0)
	e.invalid(err, "lease")
	// Nothing above touched the lease.
	e.must(e.s.Complete(ctx, l, nil))
}

// invalid fails unless err is a *dedupe.InvalidError (about arg, if set).
func (e *env) invalid(err error, arg string) {
	e.t.Helper()
	var ie *dedupe.InvalidError
	if !errors.As(err, &ie) || !errors.Is(err, dedupe.ErrInvalid) || (arg != "" && ie.Arg != arg) {
		e.t.Fatalf("got %v, want an InvalidError about %q", err, arg)
	}
}

// testRetention: a record is kept for the retention after its last
// write, and a lease outlives it; then the key is free.
func testRetention(e *env) {
	l := e.mustClaim("s", "done", "fp", time.Minute)
	e.must(e.s.Complete(ctx, l, []byte("r")))
	long := e.mustClaim("s", "long", "fp", 2*Retention)
	e.clock.Advance(Retention - time.Millisecond)
	e.compact()
	e.expect(e.claim("s", "done", "other", time.Minute), dedupe.Mismatch)
	e.expect(e.claim("s", "done", "fp", time.Minute), dedupe.Completed)
	e.clock.Advance(time.Millisecond)
	if n := e.compact(); n >= 0 && n != 1 {
		e.t.Fatalf("compacted %d records, want 1", n)
	}
	// The key is free: for any fingerprint.
	next := e.mustClaim("s", "done", "other", time.Minute)
	e.must(e.s.Complete(ctx, next, []byte("second")))
	// The long lease is live past the retention, and fences as ever.
	e.expect(e.claim("s", "long", "fp", time.Minute), dedupe.InProgress)
	e.clock.Advance(Retention)
	e.compact()
	b := e.mustClaim("s", "long", "fp", time.Minute)
	e.mustErr(e.s.Complete(ctx, long, nil), dedupe.ErrFenced)
	e.must(e.s.Release(ctx, b))
}

// compact runs the store's Compact if it has one and returns what it
// deleted; -1 when it has none.
func (e *env) compact() int {
	e.t.Helper()
	c, ok := e.s.(Compacter)
	if !ok {
		return -1
	}
	n, err := c.Compact(ctx)
	e.must(err)
	return n
}

// testScopes: the same key in two scopes is two keys, and no joining of
// scope and key makes two pairs one.
func testScopes(e *env) {
	pairs := [][2]string{{"a", "k"}, {"b", "k"}, {"a:b", "c"}, {"a", "b:c"}, {"1:a", "b"}, {"1", "a:b"}, {"a\x00", "b"}, {"a", "\x00b"}}
	leases := make([]dedupe.Lease, len(pairs))
	for i, p := range pairs {
		leases[i] = e.mustClaim(p[0], p[1], "fp", time.Minute)
	}
	for i, l := range leases {
		e.must(e.s.Complete(ctx, l, []byte(fmt.Sprint(i))))
	}
	for i, p := range pairs {
		if c := e.claim(p[0], p[1], "fp", time.Minute); c.Status != dedupe.Completed || string(c.Result) != fmt.Sprint(i) {
			e.t.Fatalf("pair %q: %v %q, want result %d", p, c.Status, c.Result, i)
		}
	}
}

// testDown: a store that cannot reach its service answers every call with
// an error wrapping eos.ErrStore, never with a claim.
func testDown(t *testing.T, s dedupe.Store) {
	c, err := s.Claim(ctx, "s", "k", []byte("fp"), time.Minute)
	if !errors.Is(err, eos.ErrStore) || c.Status != 0 {
		t.Fatalf("Claim on a store that is down: %+v, %v; want an eos.ErrStore", c, err)
	}
	l := dedupe.Lease{Scope: "s", Key: "k", Token: dedupe.NewToken(), Generation: 1}
	for name, err := range map[string]error{"Complete": s.Complete(ctx, l, nil), "Release": s.Release(ctx, l)} {
		if !errors.Is(err, eos.ErrStore) {
			t.Fatalf("%s on a store that is down: %v; want an eos.ErrStore", name, err)
		}
	}
	if _, err := s.Renew(ctx, l, time.Minute); !errors.Is(err, eos.ErrStore) {
		t.Fatalf("Renew on a store that is down: %v; want an eos.ErrStore", err)
	}
}
