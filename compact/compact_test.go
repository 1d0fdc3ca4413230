package compact_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/eoskit/eos"
	"github.com/eoskit/eos/compact"
	"github.com/eoskit/eos/inbox"
	"github.com/eoskit/eos/inbox/inboxtest"
	"github.com/eoskit/eos/internal/testdb"
	"github.com/eoskit/eos/internal/testdb/engines"
	"github.com/eoskit/eos/outbox"
	"github.com/eoskit/eos/outbox/outboxtest"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func TestRetention(t *testing.T) { engines.Each(t, testRetention, testRetention) }

// Records older than the retention go, in bounded batches; younger ones stay
// and keep suppressing redeliveries. Time moves only through the clock.
func testRetention[TTx any](t *testing.T, e *testdb.Engine[TTx]) {
	ctx := context.Background()
	clk := &clock{t: time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)}
	ob, err := outbox.New(e.Driver, outbox.Config{Test: eos.TestConfig{Now: clk.Now}})
	if err != nil {
		t.Fatal(err)
	}
	p, err := inbox.New(e.Driver, func(ctx context.Context, tx TTx, m eos.Message) error {
		return ob.Enqueue(ctx, tx, "out", eos.Message{ID: "out-" + m.ID})
	}, inbox.Config{Consumer: "c", Test: eos.TestConfig{Now: clk.Now}})
	if err != nil {
		t.Fatal(err)
	}
	process := func(prefix string, n int) []eos.Message {
		var ms []eos.Message
		for i := 0; i < n; i++ {
			ms = append(ms, eos.Message{ID: fmt.Sprintf("%s-%03d", prefix, i), Payload: []byte("x")})
		}
		inboxtest.Process(ctx, t, p, ms...)
		return ms
	}
	process("old", 250)
	clk.Add(6 * 24 * time.Hour)
	young := process("young", 10)
	relay, err := outbox.NewRelay(e.Driver, outboxtest.NewPublisher(), outbox.RelayConfig{Test: eos.TestConfig{Now: clk.Now}, BatchSize: 1000})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := relay.Forward(ctx); err != nil {
		t.Fatal(err)
	}
	clk.Add(2 * 24 * time.Hour) // old: 8 days, young: 2 days

	var passes []compact.Pass
	c, err := compact.New(e.Driver, compact.Config{RedeliveryHorizon: time.Hour, BatchSize: 100, Test: eos.TestConfig{Now: clk.Now},
		Hooks: []compact.Hook{compact.PassFunc(func(_ context.Context, p compact.Pass) { passes = append(passes, p) })}})
	if err != nil {
		t.Fatal(err)
	}
	st, err := c.Compact(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Inbox != 250 || st.Outbox != 260 {
		t.Fatalf("compacted %+v, want 250 inbox records and 260 sent outbox rows", st)
	}
	if want := (compact.Pass{Deleted: st, Started: clk.Now(), Ended: clk.Now(), ClaimsBefore: clk.Now().Add(-compact.DefaultRetention)}); len(passes) != 1 || passes[0] != want {
		t.Fatalf("hook told of %+v, want one pass %+v", passes, want)
	}
	if n := e.Int(t, "SELECT count(*) FROM eos_inbox"); n != 10 {
		t.Fatalf("%d dedupe records left, want 10", n)
	}
	res, err := p.Process(ctx, inboxtest.NewDeliveries(young...).Inbox())
	if err != nil || res.Count(inbox.Duplicate) != len(young) {
		t.Fatalf("young redeliveries not suppressed: %v %+v", err, res)
	}
	if st, err := c.Compact(ctx); err != nil || st != (compact.Stats{}) {
		t.Fatalf("second pass deleted %+v (%v)", st, err)
	}
}

func TestQuarantineAndDeadLetters(t *testing.T) {
	engines.Each(t, testQuarantineAndDeadLetters, testQuarantineAndDeadLetters)
}

// Quarantined deliveries go after QuarantineRetention; dead letters stay
// until resolved unless DeadLetterRetention is set.
func testQuarantineAndDeadLetters[TTx any](t *testing.T, e *testdb.Engine[TTx]) {
	ctx := context.Background()
	clk := &clock{t: time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)}
	p, err := inbox.New(e.Driver, func(ctx context.Context, tx TTx, m eos.Message) error {
		if string(m.Payload) == "poison" {
			return inbox.Permanent(errors.New("refused"))
		}
		return nil
	}, inbox.Config{Consumer: "c", Test: eos.TestConfig{Now: clk.Now}})
	if err != nil {
		t.Fatal(err)
	}
	inboxtest.Process(ctx, t, p, eos.Message{ID: "q", Payload: []byte("a")}, eos.Message{ID: "d", Payload: []byte("poison")})
	inboxtest.Process(ctx, t, p, eos.Message{ID: "q", Payload: []byte("b")}) // same id, other content
	clk.Add(40 * 24 * time.Hour)
	keep, err := compact.New(e.Driver, compact.Config{RedeliveryHorizon: time.Hour, Test: eos.TestConfig{Now: clk.Now}})
	if err != nil {
		t.Fatal(err)
	}
	st, err := keep.Compact(ctx)
	if err != nil || st.Quarantine != 1 || st.DeadLetters != 0 {
		t.Fatalf("default retention deleted %+v (%v), want the quarantined delivery and no dead letter", st, err)
	}
	if dl, err := p.DeadLetters(ctx, "", 10); err != nil || len(dl) != 1 {
		t.Fatalf("dead letters after the default pass: %v %+v", err, dl)
	}
	expire, err := compact.New(e.Driver, compact.Config{RedeliveryHorizon: time.Hour, DeadLetterRetention: 30 * 24 * time.Hour, Test: eos.TestConfig{Now: clk.Now}})
	if err != nil {
		t.Fatal(err)
	}
	if st, err := expire.Compact(ctx); err != nil || st.DeadLetters != 1 {
		t.Fatalf("with DeadLetterRetention: %+v (%v), want one dead letter deleted", st, err)
	}
	if dl, err := p.DeadLetters(ctx, "", 10); err != nil || len(dl) != 0 {
		t.Fatalf("dead letters after expiry: %v %+v", err, dl)
	}
}

func TestConfig(t *testing.T) {
	e := testdb.SQLite(t)
	for _, cfg := range []compact.Config{
		{},
		{RedeliveryHorizon: 8 * 24 * time.Hour},
		{RedeliveryHorizon: 2 * time.Hour, Retention: time.Hour},
		{RedeliveryHorizon: time.Hour, BatchSize: -1},
		{RedeliveryHorizon: time.Hour, DeadLetterRetention: -time.Hour},
		{RedeliveryHorizon: time.Hour, QuarantineRetention: -time.Hour},
		{RedeliveryHorizon: time.Hour, Hooks: []compact.Hook{"not a hook"}},
	} {
		_, err := compact.New(e.Driver, cfg)
		var ce *eos.ConfigError
		if !errors.As(err, &ce) || !errors.Is(err, eos.ErrInvalidConfig) {
			t.Errorf("%+v: got %v", cfg, err)
		}
	}
	if _, err := compact.New(e.Driver, compact.Config{RedeliveryHorizon: 7 * 24 * time.Hour}); err != nil {
		t.Errorf("retention equal to the horizon: %v", err)
	}
}
