package inbox_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/eoskit/eos"
	"github.com/eoskit/eos/inbox"
	"github.com/eoskit/eos/inbox/inboxtest"
	"github.com/eoskit/eos/internal/testdb"
	"github.com/eoskit/eos/internal/testdb/engines"
)

// Two requeues of the same dead letters, run at once many times, apply each
// message once: a requeue acts only on the dead letters its own transaction
// removed and never releases a claim another requeue made.
func TestConcurrentRequeue(t *testing.T) {
	engines.Each(t, testConcurrentRequeue, testConcurrentRequeue)
}

func testConcurrentRequeue[TTx any](t *testing.T, e *testdb.Engine[TTx]) {
	pay := testdb.Payments[TTx]{E: e}
	pay.Setup(t, accounts, balance)
	var broken atomic.Bool
	h := func(ctx context.Context, tx TTx, m eos.Message) error {
		if broken.Load() {
			return inbox.Permanent(errors.New("provider down"))
		}
		return pay.Handler(ctx, tx, m)
	}
	p, err := inbox.New(e.Driver, h, inbox.Config{Consumer: "c"})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	var all []string
	const rounds, perRound = 12, 4
	for round := range rounds {
		ms, ids := orders(perRound, fmt.Sprintf("rq%02d", round))
		all = append(all, ids...)
		broken.Store(true)
		res, _ := inboxtest.Process(ctx, t, p, ms...)
		if n := res.Count(inbox.DeadLettered); n != perRound {
			t.Fatalf("round %d: %d dead-lettered, want %d", round, n, perRound)
		}
		broken.Store(false)

		var wg sync.WaitGroup
		start := make(chan struct{})
		results := make([]*inbox.BatchResult, 2)
		errs := make([]error, 2)
		for i := range 2 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				results[i], errs[i] = p.Requeue(ctx, ids...)
			}()
		}
		close(start)
		wg.Wait()
		applied := 0
		for i := range 2 {
			switch {
			case errs[i] == nil:
				applied += results[i].Count(inbox.Applied)
			case errors.Is(errs[i], inbox.ErrNoDeadLetter):
			default:
				t.Fatalf("round %d: requeue %d: %v", round, i, errs[i])
			}
		}
		if applied != perRound {
			t.Errorf("round %d: the two requeues applied %d messages, want %d", round, applied, perRound)
		}
		for _, id := range ids {
			if n := pay.Effects(t, id); n != 1 {
				t.Fatalf("round %d: %s applied %d times", round, id, n)
			}
		}
		// The claims stand: a redelivery is a duplicate.
		res, _ = inboxtest.Process(ctx, t, p, ms...)
		if n := res.Count(inbox.Duplicate); n != perRound {
			t.Fatalf("round %d: redelivery after requeue: %+v", round, res.Results)
		}
	}
	if dl, err := p.DeadLetters(ctx, "", 100); err != nil || len(dl) != 0 {
		t.Fatalf("dead letters left: %v %+v", err, dl)
	}
	pay.CheckExactlyOnce(t, all, accounts, balance)
}

// Hostile text from outside (a long non-ASCII id, a handler error quoting a
// provider's raw body with NUL bytes and invalid UTF-8, cut anywhere) never
// makes the inbox's own statements fail: the messages are retried and
// dead-lettered with a readable reason, and the consumer keeps going.
func TestHostileTextNeverStalls(t *testing.T) {
	engines.Each(t, testHostileText, testHostileText)
}

func testHostileText[TTx any](t *testing.T, e *testdb.Engine[TTx]) {
	pay := testdb.Payments[TTx]{E: e}
	pay.Setup(t, accounts, balance)
	// Error texts of every length around the stored bound, so that a cut
	// lands inside a multi-byte character whatever the prefix.
	body := func(n int) string { return strings.Repeat("x", n) + strings.Repeat("é\x00\xff", 3000) }
	h := func(ctx context.Context, tx TTx, m eos.Message) error {
		if strings.HasPrefix(m.ID, "raw-") {
			var n int
			fmt.Sscanf(m.ID, "raw-%d", &n)
			return fmt.Errorf("provider said: %s", body(n))
		}
		return pay.Handler(ctx, tx, m)
	}
	p, err := inbox.New(e.Driver, h, inbox.Config{Consumer: "c", MaxAttempts: 2})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	var ms []eos.Message
	for n := range 3 {
		ms = append(ms, testdb.Message(fmt.Sprintf("raw-%d", n), "a1", 1))
		ms = append(ms, testdb.Message(strings.Repeat("x", n)+strings.Repeat("é", 3000), "a1", 1))
	}
	good := testdb.Message("good", "a2", 5)
	ms = append(ms, good)
	for attempt := 1; attempt <= 2; attempt++ {
		ds := positioned(ms...) // a redelivery finds the record of an invalid one
		res, err := p.Process(ctx, ds.Inbox())
		if err != nil {
			t.Fatalf("attempt %d: the batch failed as a store outage: %v", attempt, err)
		}
		for i, r := range res.Results[:len(ms)-1] {
			want := inbox.DeadLettered
			if attempt == 1 && i%2 == 0 {
				want = inbox.Retry
			}
			if attempt == 2 && i%2 == 1 {
				want = inbox.Duplicate // dead-lettered on attempt 1
			}
			if r.Outcome != want {
				t.Fatalf("attempt %d: message %d: %v, want %v (%v)", attempt, i, r.Outcome, want, r.Err)
			}
		}
	}
	dl, err := p.DeadLetters(ctx, "", 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(dl) != len(ms)-1 {
		t.Fatalf("%d dead letters, want %d", len(dl), len(ms)-1)
	}
	for _, d := range dl {
		if d.LastError == "" || strings.IndexByte(d.LastError, 0) >= 0 || !strings.Contains(d.LastError, "invalid message") && !strings.Contains(d.LastError, "provider said") {
			t.Errorf("dead letter %.40q: unreadable reason %.80q", d.ID, d.LastError)
		}
	}
	pay.CheckExactlyOnce(t, []string{"good"}, accounts, balance)
}

// positioned returns deliveries of ms at positions "S:0", "S:1", …
func positioned(ms ...eos.Message) inboxtest.Deliveries {
	ds := make(inboxtest.Deliveries, len(ms))
	for i, m := range ms {
		ds[i] = inboxtest.NewDelivery(m).WithPosition(fmt.Sprintf("S:%d", i))
	}
	return ds
}

// Every invalid delivery gets its own dead letter holding a bounded copy of
// what arrived, and a requeue refuses it instead of running the handler.
func TestInvalidDeliveriesKept(t *testing.T) {
	engines.Each(t, testInvalidDeliveries, testInvalidDeliveries)
}

func testInvalidDeliveries[TTx any](t *testing.T, e *testdb.Engine[TTx]) {
	var calls atomic.Int32
	h := func(ctx context.Context, tx TTx, m eos.Message) error { calls.Add(1); return nil }
	const limit = 1 << 10
	p, err := inbox.New(e.Driver, h, inbox.Config{Consumer: "c", Limits: eos.Limits{MaxPayload: limit}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	headers := map[string]string{"Trace": "t1"}
	ds := inboxtest.NewDeliveries(
		eos.Message{Key: "k1", Payload: []byte("same"), Headers: headers}, // no id
		eos.Message{Key: "k2", Payload: []byte("same"), Headers: headers}, // no id, same payload
		eos.Message{ID: "big", Key: "k3", Payload: make([]byte, 3*limit)}, // oversized
	)
	res, err := p.Process(ctx, ds.Inbox())
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range res.Results {
		if r.Outcome != inbox.DeadLettered || !errors.Is(r.Err, eos.ErrInvalidMessage) || ds[i].Acks() != 1 {
			t.Fatalf("delivery %d: %+v, %d acks", i, r, ds[i].Acks())
		}
	}
	dl, err := p.DeadLetters(ctx, "", 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(dl) != 3 {
		t.Fatalf("%d dead letters, want one per invalid delivery (3): %+v", len(dl), dl)
	}
	byKey := map[string]inbox.DeadLetter{}
	for _, d := range dl {
		byKey[d.Key] = d
	}
	for _, k := range []string{"k1", "k2"} {
		d, ok := byKey[k]
		if !ok || string(d.Payload) != "same" || d.Headers["Trace"] != "t1" || !d.Invalid {
			t.Errorf("key %s: dead letter %+v lost what arrived", k, d)
		}
	}
	big := byKey["k3"]
	if !big.Invalid || big.OriginalID != "big" || len(big.Payload) != limit || big.PayloadSize != 3*limit {
		t.Errorf("oversized: invalid %v, original id %q, %d bytes kept of %d; want %d of %d",
			big.Invalid, big.OriginalID, len(big.Payload), big.PayloadSize, limit, 3*limit)
	}
	// With the transport's position, a redelivery of an invalid message finds
	// its record; a different message at another position gets its own.
	same := eos.Message{Key: "k4", Payload: []byte("same")}
	ps := positioned(same, same)
	ps = append(ps, positioned(same)...) // "S:0" again: a redelivery
	res, err = p.Process(ctx, ps.Inbox())
	if err != nil {
		t.Fatal(err)
	}
	if o := []inbox.Outcome{res.Results[0].Outcome, res.Results[1].Outcome, res.Results[2].Outcome}; o[0] != inbox.DeadLettered || o[1] != inbox.DeadLettered || o[2] != inbox.Duplicate {
		t.Fatalf("positioned invalid deliveries: %v, want dead_lettered, dead_lettered, duplicate", o)
	}
	dl, err = p.DeadLetters(ctx, "", 10)
	if err != nil || len(dl) != 5 {
		t.Fatalf("%d dead letters after positioned deliveries (%v), want 5", len(dl), err)
	}
	var positions []string
	for _, d := range dl {
		if d.Position != "" {
			positions = append(positions, d.Position)
		}
	}
	if slices.Sort(positions); !slices.Equal(positions, []string{"S:0", "S:1"}) {
		t.Errorf("stored positions %q, want S:0 and S:1", positions)
	}

	res, err = p.Requeue(ctx, big.ID, byKey["k1"].ID)
	if !errors.Is(err, eos.ErrInvalidMessage) {
		t.Fatalf("requeue of invalid deliveries: %v %+v, want an ErrInvalidMessage", err, res)
	}
	if n := calls.Load(); n != 0 {
		t.Fatalf("the handler ran %d times on invalid messages", n)
	}
	if res == nil || len(res.Results) != 2 || res.Count(inbox.DeadLettered) != 2 || !errors.Is(res.Results[0].Err, inbox.ErrNotRequeueable) {
		t.Fatalf("refused requeue results: %+v", res)
	}
	after, err := p.DeadLetters(ctx, "", 10)
	if err != nil || len(after) != 5 {
		t.Fatalf("refused requeue changed the dead letters: %v, %d left", err, len(after))
	}
	for _, d := range after {
		if d.ID == big.ID && (d.LastError != big.LastError || !d.At.Equal(big.At) || len(d.Payload) != limit) {
			t.Fatalf("refused requeue rewrote the dead letter: %+v", d)
		}
	}
}

// A dead letter that the inbox wrote for an invalid delivery before
// migration 0002 (a synthetic "invalid-…" id, no key or headers, no
// attempts) is marked invalid by the migration, so Requeue refuses it
// instead of running the handler on a message that failed validation.
func TestRequeueRefusesInvalidFromBeforeUpgrade(t *testing.T) {
	engines.Each(t, testRequeueOldInvalid, testRequeueOldInvalid)
}

func testRequeueOldInvalid[TTx any](t *testing.T, e *testdb.Engine[TTx]) {
	ctx := context.Background()
	if _, err := e.Driver.Migrator().Down(ctx, 1); err != nil {
		t.Fatal(err)
	}
	const id, reason = "invalid-0123456789abcdef0123456789abcdef", `eos: invalid message: key: control character at byte 0 (original id "o-1")`
	row := "INSERT INTO eos_dead_letters (consumer, id, key, payload, headers, fingerprint, created_at, attempts, last_error, at) VALUES "
	if e.Name == "sqlite" {
		row += "('c', '" + id + "', '', x'6869', NULL, x'00', 0, 0, '" + reason + "', 0)"
	} else {
		row += "('c', '" + id + "', '', '\\x6869', NULL, '\\x00', now(), 0, '" + reason + "', now())"
	}
	// A dead letter of a message that failed its handler: requeued as before.
	failed := strings.NewReplacer(id, "failed-1", "0, '"+reason, "3, 'card declined").Replace(row)
	e.Script(t, row, failed)
	if _, err := e.Driver.Migrator().Up(ctx); err != nil {
		t.Fatal(err)
	}
	var calls []string
	p, err := inbox.New(e.Driver, func(ctx context.Context, tx TTx, m eos.Message) error {
		calls = append(calls, m.ID)
		return nil
	}, inbox.Config{Consumer: "c"})
	if err != nil {
		t.Fatal(err)
	}
	res, err := p.Requeue(ctx, id, "failed-1")
	if !errors.Is(err, inbox.ErrNotRequeueable) {
		t.Errorf("requeue of an invalid delivery recorded before 0002: %v, want ErrNotRequeueable", err)
	}
	if !slices.Equal(calls, []string{"failed-1"}) {
		t.Errorf("the handler ran on %q, want only failed-1", calls)
	}
	if res == nil || res.Count(inbox.Applied) != 1 {
		t.Errorf("results %+v, want failed-1 applied", res)
	}
	dl, err := p.DeadLetters(ctx, "", 10)
	if err != nil || len(dl) != 1 || dl[0].ID != id || !dl[0].Invalid {
		t.Errorf("dead letters after the requeue: %v %+v, want %s kept, invalid", err, dl, id)
	}
}

// A handler that ignores a failed statement and returns nil (the "already
// there, fine" idiom after a unique violation) aborts the whole transaction
// on PostgreSQL: every later statement and the commit failed, the batch
// counted as a store outage, and the consumer stalled on it forever, its
// good neighbours included. The batch is redone with a savepoint around
// each handler, that message fails alone, and the others apply once.
func TestHandlerIgnoringFailedStatement(t *testing.T) {
	engines.Each(t, testIgnoredStatementError, testIgnoredStatementError)
}

func testIgnoredStatementError[TTx any](t *testing.T, e *testdb.Engine[TTx]) {
	ctx := context.Background()
	for _, iso := range []inbox.Isolation{inbox.IsolateAuto, inbox.IsolateRedo, inbox.IsolateSavepoint} {
		t.Run(iso.String(), func(t *testing.T) {
			e := freshEngine(t, e)
			pay := testdb.Payments[TTx]{E: e}
			pay.Setup(t, accounts, balance)
			h := func(ctx context.Context, tx TTx, m eos.Message) error {
				if m.ID == "ignores" {
					_ = e.Exec(ctx, tx, "INSERT INTO accounts (id, balance) VALUES ($1, 0)", testdb.Account(0)) // exists
					return nil
				}
				return pay.Handler(ctx, tx, m)
			}
			p, err := inbox.New(e.Driver, h, inbox.Config{Consumer: "c", Isolation: iso, MaxAttempts: 2})
			if err != nil {
				t.Fatal(err)
			}
			byID := map[string]eos.Message{}
			var pending []eos.Message
			for i, id := range []string{"before", "ignores", "after"} {
				byID[id] = testdb.Message(id, testdb.Account(i+1), 1)
				pending = append(pending, byID[id])
			}
			outcome := map[string]inbox.Result{}
			for batch := 0; len(pending) > 0; batch++ {
				if batch == 6 {
					t.Fatalf("still pending after %d batches: %v", batch, pending)
				}
				ds := inboxtest.NewDeliveries(pending...)
				res, err := p.Process(ctx, ds.Inbox())
				if err != nil {
					t.Fatalf("batch %d failed as a store outage: %v", batch, err)
				}
				pending = pending[:0]
				for _, r := range res.Results {
					outcome[r.ID] = r
					if r.Outcome == inbox.Retry {
						pending = append(pending, byID[r.ID])
					}
				}
			}
			pay.CheckExactlyOnce(t, []string{"before", "after"}, accounts, balance)
			r := outcome["ignores"]
			switch {
			case e.Name == "sqlite" && r.Outcome == inbox.Applied: // SQLite keeps the transaction
			case e.Name != "sqlite" && r.Outcome == inbox.DeadLettered && errors.Is(r.Err, inbox.ErrHandlerTxAborted):
			default:
				t.Errorf("the message whose handler ignored a failed statement: %v (%v)", r.Outcome, r.Err)
			}
		})
	}
}

// Ids no dead letter can have (NUL bytes, invalid UTF-8: a typo, a bad
// paste) name no dead letter on every engine: on PostgreSQL they failed the
// whole Requeue or Discard as a store failure (reported to the hooks),
// so one bad id kept the good ones in the list from being requeued.
func TestRequeueUnstorableIDs(t *testing.T) {
	engines.Each(t, testRequeueUnstorableIDs, testRequeueUnstorableIDs)
}

func testRequeueUnstorableIDs[TTx any](t *testing.T, e *testdb.Engine[TTx]) {
	ctx := context.Background()
	var fail atomic.Bool
	fail.Store(true)
	var storeErrs atomic.Int32
	p, err := inbox.New(e.Driver, func(ctx context.Context, tx TTx, m eos.Message) error {
		if fail.Load() {
			return inbox.Permanent(errors.New("down"))
		}
		return nil
	}, inbox.Config{Consumer: "c", Hooks: []inbox.Hook{countStoreErrors{&storeErrs}}})
	if err != nil {
		t.Fatal(err)
	}
	ds := inboxtest.NewDeliveries(eos.Message{ID: "d1"}, eos.Message{ID: "d2"})
	if _, err := p.Process(ctx, ds.Inbox()); err != nil {
		t.Fatal(err)
	}
	fail.Store(false)
	res, err := p.Requeue(ctx, "d1", "a\x00b", "\xff")
	if err != nil || res.Count(inbox.Applied) != 1 {
		t.Errorf("requeue of d1 among unstorable ids: %v %+v", err, res)
	}
	if _, err := p.Requeue(ctx, "a\x00b"); !errors.Is(err, inbox.ErrNoDeadLetter) {
		t.Errorf("requeue of an unstorable id: %v, want ErrNoDeadLetter", err)
	}
	if n, err := p.Discard(ctx, "d2", "a\x00b"); err != nil || n != 1 {
		t.Errorf("discard of d2 among unstorable ids: %d, %v", n, err)
	}
	if n := storeErrs.Load(); n != 0 {
		t.Errorf("%d store errors reported for an operator's bad ids", n)
	}
}

// countStoreErrors is a hook counting store errors.
type countStoreErrors struct{ n *atomic.Int32 }

func (countStoreErrors) OnBatchDone(context.Context, *inbox.BatchResult) {}
func (o countStoreErrors) OnError(context.Context, string, string, error) {
	o.n.Add(1)
}

// OrderByKey runs handlers in key order (stable within a key), and keeps
// results in delivery order.
func TestOrderByKey(t *testing.T) {
	e := testdb.SQLite(t)
	for _, byKey := range []bool{false, true} {
		var order []string
		h := func(_ context.Context, _ *sql.Tx, m eos.Message) error {
			order = append(order, m.ID)
			return nil
		}
		p, err := inbox.New(e.Driver, h, inbox.Config{Consumer: fmt.Sprintf("c-%v", byKey), OrderByKey: byKey})
		if err != nil {
			t.Fatal(err)
		}
		res, _ := inboxtest.Process(context.Background(), t, p,
			eos.Message{ID: "b1", Key: "b"}, eos.Message{ID: "a1", Key: "a"},
			eos.Message{ID: "b2", Key: "b"}, eos.Message{ID: "a2", Key: "a"},
		)
		want := []string{"b1", "a1", "b2", "a2"}
		if byKey {
			want = []string{"a1", "a2", "b1", "b2"}
		}
		if !slices.Equal(order, want) {
			t.Errorf("OrderByKey %v: handlers ran %v, want %v", byKey, order, want)
		}
		for i, id := range []string{"b1", "a1", "b2", "a2"} {
			if res.Results[i].ID != id || res.Results[i].Outcome != inbox.Applied {
				t.Errorf("OrderByKey %v: result %d is %+v, want %s applied (delivery order)", byKey, i, res.Results[i], id)
			}
		}
	}
}
