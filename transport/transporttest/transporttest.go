package transporttest

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"maps"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/eoskit/eos"
	"github.com/eoskit/eos/failpoint"
	"github.com/eoskit/eos/inbox"
	"github.com/eoskit/eos/internal/testdb"
	"github.com/eoskit/eos/outbox"
)

// Harness is one isolated topic of the transport under test, with a
// publisher to it and a durable consumer of it.
type Harness struct {
	// Publisher publishes to the broker. It stays usable across Restart.
	Publisher outbox.Publisher
	// Topic is the harness's own topic: only the suite publishes on it, and
	// the consumer reads it.
	Topic string
	// NewSource returns a fresh subscription on the harness's durable
	// consumer, closed when t ends.
	NewSource func(t *testing.T) inbox.Source
	// Duplicates returns how many publishes the broker reported as
	// duplicates (dropped by its dedupe) since the harness was made. Nil
	// when the broker keeps every publish (Kafka: its idempotent producer
	// drops the client's own retries only): PublishDedupe is then skipped,
	// and InboxEndToEnd checks that the inbox alone suppresses the copies.
	Duplicates func() int64
	// AckWait is how long the broker waits for a settlement before it
	// redelivers. Keep it short (1s): the redelivery subtests wait for it.
	// Zero skips the check that a nack brings a message back sooner.
	AckWait time.Duration
	// Restart stops the broker and starts it again on the same data;
	// sources made before it may stop working. Nil when the broker cannot
	// be restarted by the test: RestartWithoutLoss is then skipped.
	Restart func(t *testing.T)
	// Timeout bounds each wait of the suite; a wait that reaches it fails
	// the test. Default 30s.
	Timeout time.Duration
}

// Run runs the conformance suite. newHarness is called once per subtest
// and must return a harness isolated from every other one.
func Run(t *testing.T, newHarness func(t *testing.T) *Harness) {
	tests := []struct {
		name string
		run  func(*suite)
	}{
		{"PublishDedupe", testPublishDedupe},
		{"RedeliveryAfterMissingAck", testRedeliveryAfterMissingAck},
		{"NackRedelivers", testNackRedelivers},
		{"AckOnlyAfterCommit", testAckOnlyAfterCommit},
		{"OrderOnOneTopic", testOrderOnOneTopic},
		{"RestartWithoutLoss", testRestartWithoutLoss},
		{"InboxEndToEnd", testInboxEndToEnd},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			if h.Timeout <= 0 {
				h.Timeout = 30 * time.Second
			}
			tc.run(&suite{t: t, h: h, sent: map[string]eos.Message{}})
		})
	}
}

// suite is the state of one subtest: the messages published so far, by id,
// to check what arrives against.
type suite struct {
	t    *testing.T
	h    *Harness
	n    int
	sent map[string]eos.Message
}

// Accounts and balance of the payments workload of the inbox subtests.
const (
	accounts = 8
	balance  = 1_000_000
)

// messages returns n new payments messages, each with a header.
func (s *suite) messages(n int) []eos.Message {
	out := make([]eos.Message, n)
	for i := range out {
		s.n++
		m := testdb.Message(eos.NewID(), testdb.Account(s.n%accounts), int64(s.n))
		m.Headers = map[string]string{"Transporttest-Seq": strconv.Itoa(s.n)}
		m.CreatedAt = time.Now().UTC().Truncate(time.Millisecond)
		out[i] = m
	}
	return out
}

// publish publishes msgs in one Publish call, failing the test unless the
// broker acknowledged them all.
func (s *suite) publish(msgs ...eos.Message) {
	s.t.Helper()
	envs := make([]outbox.Envelope, len(msgs))
	for i, m := range msgs {
		envs[i] = outbox.Envelope{Topic: s.h.Topic, Message: m}
		s.sent[m.ID] = m
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.h.Timeout)
	defer cancel()
	if n, err := s.h.Publisher.Publish(ctx, envs); n != len(envs) || err != nil {
		s.t.Fatalf("Publish: %d of %d acknowledged: %v", n, len(envs), err)
	}
}

// check fails the test unless d carries a published message unchanged.
func (s *suite) check(d inbox.Delivery) eos.Message {
	s.t.Helper()
	got := d.Message()
	want, ok := s.sent[got.ID]
	switch {
	case !ok:
		s.t.Fatalf("received id %q, which was not published", got.ID)
	case got.Key != want.Key || !bytes.Equal(got.Payload, want.Payload) || !got.CreatedAt.Equal(want.CreatedAt) ||
		!maps.Equal(got.Headers, want.Headers):
		s.t.Fatalf("received %+v, published %+v", got, want)
	}
	return got
}

// fetch returns the next non-empty batch of deliveries from src, failing
// the test after Timeout.
func (s *suite) fetch(src inbox.Source, max int, what string) []inbox.Delivery {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), s.h.Timeout)
	defer cancel()
	for {
		ds, err := src.Fetch(ctx, max, 5*time.Millisecond)
		if err != nil {
			s.t.Fatalf("Fetch, waiting for %s: %v", what, err)
		}
		for _, d := range ds {
			s.check(d)
		}
		if len(ds) > 0 {
			return ds
		}
	}
}

// next returns the next delivery from src.
func (s *suite) next(src inbox.Source, what string) inbox.Delivery {
	s.t.Helper()
	return s.fetch(src, 1, what)[0]
}

// receive fetches from src until every id of want has arrived and returns
// all deliveries in arrival order (redeliveries included). With ack, it
// acks each delivery as it arrives.
func (s *suite) receive(src inbox.Source, want []eos.Message, ack bool) []inbox.Delivery {
	s.t.Helper()
	missing := make(map[string]bool, len(want))
	for _, m := range want {
		missing[m.ID] = true
	}
	var out []inbox.Delivery
	for len(missing) > 0 {
		ds := s.fetch(src, 256, fmt.Sprintf("%d of %d messages", len(missing), len(want)))
		for _, d := range ds {
			delete(missing, d.Message().ID)
			if ack {
				s.settle(d.Ack)
			}
		}
		out = append(out, ds...)
	}
	return out
}

func (s *suite) settle(f func(context.Context) error) {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), s.h.Timeout)
	defer cancel()
	if err := f(ctx); err != nil {
		s.t.Fatalf("settle: %v", err)
	}
}

// closeSource ends src's subscription, as a crash of its process would,
// if src can be closed.
func closeSource(src inbox.Source) {
	if c, ok := src.(interface{ Close() }); ok {
		c.Close()
	}
}

func ids(ms []eos.Message) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.ID
	}
	return out
}

func testPublishDedupe(s *suite) {
	if s.h.Duplicates == nil {
		s.t.Skip("the broker does not dedupe by id")
	}
	before := s.h.Duplicates()
	m := s.messages(2)
	s.publish(m[0])
	s.publish(m[0])
	if d := s.h.Duplicates() - before; d != 1 {
		s.t.Errorf("broker reported %d duplicates, want 1", d)
	}
	// A duplicate the broker kept would arrive before the message published
	// after it.
	s.publish(m[1])
	n := 0
	for _, d := range s.receive(s.h.NewSource(s.t), m[1:], true) {
		if d.Message().ID == m[0].ID {
			n++
		}
	}
	if n != 1 {
		s.t.Errorf("message published twice arrived %d times, want 1", n)
	}
}

func testRedeliveryAfterMissingAck(s *suite) {
	m := s.messages(1)[0]
	s.publish(m)
	src := s.h.NewSource(s.t)
	if got := s.next(src, "the message").Message().ID; got != m.ID {
		s.t.Fatalf("received %s, want %s", got, m.ID)
	}
	// Neither acked nor nacked, and its consumer gone (a crash): the broker
	// must deliver it again. (While its subscription lives, a source may
	// keep an unsettled delivery in progress: Processor.Run holds a batch
	// until it commits, however long a store outage lasts.)
	closeSource(src)
	d := s.next(s.h.NewSource(s.t), "the redelivery of an unsettled message")
	if got := d.Message().ID; got != m.ID {
		s.t.Fatalf("received %s, want the redelivery of %s", got, m.ID)
	}
	s.settle(d.Ack)
}

func testNackRedelivers(s *suite) {
	m := s.messages(1)[0]
	s.publish(m)
	src := s.h.NewSource(s.t)
	d := s.next(src, "the message")
	nacked := time.Now()
	s.settle(func(ctx context.Context) error { return d.Nack(ctx, s.h.AckWait/10) })
	d = s.next(src, "the redelivery of a nacked message")
	if got := d.Message().ID; got != m.ID {
		s.t.Fatalf("received %s, want the redelivery of %s", got, m.ID)
	}
	// Not a failure bound but the point of the test: the nack, not the
	// ack wait, brought it back.
	if took := time.Since(nacked); s.h.AckWait > 0 && took >= s.h.AckWait {
		s.t.Errorf("nacked message came back after %v, not before the ack wait %v", took, s.h.AckWait)
	}
	s.settle(d.Ack)
}

// recorded wraps a delivery to count its settlements.
type recorded struct {
	inbox.Delivery
	acks, nacks *counter
}

type counter struct {
	mu sync.Mutex
	n  int
}

func (c *counter) add() {
	c.mu.Lock()
	c.n++
	c.mu.Unlock()
}

func (c *counter) get() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n
}

func (r recorded) Ack(ctx context.Context) error { r.acks.add(); return r.Delivery.Ack(ctx) }
func (r recorded) Nack(ctx context.Context, d time.Duration) error {
	r.nacks.add()
	return r.Delivery.Nack(ctx, d)
}

func record(ds []inbox.Delivery) (out []inbox.Delivery, acks, nacks *counter) {
	acks, nacks = &counter{}, &counter{}
	out = make([]inbox.Delivery, len(ds))
	for i, d := range ds {
		out[i] = recorded{d, acks, nacks}
	}
	return out, acks, nacks
}

func testAckOnlyAfterCommit(s *suite) {
	e := testdb.SQLite(s.t)
	pay := testdb.Payments[*sql.Tx]{E: e}
	pay.Setup(s.t, accounts, balance)
	fps := &failpoint.Set{}
	fps.Arm(inbox.FailBeforeCommit, failpoint.Times(1, failpoint.Error()))
	p, err := inbox.New(e.Driver, pay.Handler, inbox.Config{Consumer: "transporttest", Test: eos.TestConfig{Failpoints: fps}})
	if err != nil {
		s.t.Fatal(err)
	}
	ms := s.messages(20)
	s.publish(ms...)
	src := s.h.NewSource(s.t)
	ctx, cancel := context.WithTimeout(context.Background(), s.h.Timeout)
	defer cancel()

	ds, acks, nacks := record(s.receive(src, ms, false))
	if _, err := p.Process(ctx, ds); !errors.Is(err, failpoint.ErrInjected) {
		s.t.Fatalf("Process: %v, want the injected failure", err)
	}
	if a, n := acks.get(), nacks.get(); a+n != 0 {
		s.t.Fatalf("a failed batch settled deliveries: %d acks, %d nacks", a, n)
	}
	if n := e.Int(s.t, "SELECT count(*) FROM ledger"); n != 0 {
		s.t.Fatalf("a failed batch left %d ledger rows", n)
	}

	// Unsettled, the messages come back once the consumer that held them
	// is gone (a crash); this time the batch commits.
	closeSource(src)
	src = s.h.NewSource(s.t)
	ds, acks, nacks = record(s.receive(src, ms, false))
	res, err := p.Process(ctx, ds)
	if err != nil {
		s.t.Fatalf("Process after the failure: %v", err)
	}
	if n := res.Count(inbox.Applied); n != len(ms) {
		s.t.Errorf("%d applied, want %d", n, len(ms))
	}
	if a, n := acks.get(), nacks.get(); a != len(ds) || n != 0 {
		s.t.Errorf("after the commit: %d acks and %d nacks of %d deliveries", a, n, len(ds))
	}
	pay.CheckExactlyOnce(s.t, ids(ms), accounts, balance)
}

func testOrderOnOneTopic(s *suite) {
	ms := s.messages(600)
	s.publish(ms[:500]...)
	for i := 500; i < len(ms); i += 20 {
		s.publish(ms[i : i+20]...)
	}
	// Redeliveries (a slow test outliving the ack wait) repeat a message;
	// the order is that of first arrivals.
	seen := map[string]bool{}
	var got []string
	for _, d := range s.receive(s.h.NewSource(s.t), ms, true) {
		if id := d.Message().ID; !seen[id] {
			seen[id] = true
			got = append(got, id)
		}
	}
	for i, id := range ids(ms) {
		if got[i] != id {
			s.t.Fatalf("position %d: received %s, want %s (publish order)", i, got[i], id)
		}
	}
}

func testRestartWithoutLoss(s *suite) {
	if s.h.Restart == nil {
		s.t.Skip("the harness cannot restart its broker")
	}
	ms := s.messages(101)
	s.publish(ms[:100]...)
	s.h.Restart(s.t)
	s.publish(ms[100]) // the publisher works after the restart
	s.receive(s.h.NewSource(s.t), ms, true)
}

// lossy wraps a source so that the first ack of every fourth message is
// lost on its way to the broker, which will redeliver it.
type lossy struct {
	inbox.Source
	mu   sync.Mutex
	lose map[string]bool // id → its ack is yet to be lost
}

type lossyDelivery struct {
	inbox.Delivery
	s *lossy
}

func (l *lossy) Fetch(ctx context.Context, max int, maxWait time.Duration) ([]inbox.Delivery, error) {
	ds, err := l.Source.Fetch(ctx, max, maxWait)
	for i, d := range ds {
		ds[i] = lossyDelivery{d, l}
	}
	return ds, err
}

func (d lossyDelivery) Ack(ctx context.Context) error {
	d.s.mu.Lock()
	id := d.Message().ID
	lose := d.s.lose[id]
	delete(d.s.lose, id)
	d.s.mu.Unlock()
	if lose {
		return nil
	}
	return d.Delivery.Ack(ctx)
}

// progress observes a Processor and closes done once every id was applied
// and every id of dups was seen again as a duplicate.
type progress struct {
	mu            sync.Mutex
	applied, dups map[string]bool // ids yet to be seen so
	done          chan struct{}
	twice         []string
}

func (p *progress) OnBatchDone(_ context.Context, r *inbox.BatchResult) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, res := range r.Results {
		switch res.Outcome {
		case inbox.Applied:
			if !p.applied[res.ID] {
				p.twice = append(p.twice, res.ID)
			}
			delete(p.applied, res.ID)
		case inbox.Duplicate:
			delete(p.dups, res.ID)
		}
	}
	if len(p.applied) == 0 && len(p.dups) == 0 && p.done != nil {
		close(p.done)
		p.done = nil
	}
}

func (p *progress) OnError(context.Context, string, string, error) {}

func testInboxEndToEnd(s *suite) {
	e := testdb.SQLite(s.t)
	pay := testdb.Payments[*sql.Tx]{E: e}
	pay.Setup(s.t, accounts, balance)
	ms := s.messages(200)
	src := &lossy{Source: s.h.NewSource(s.t), lose: map[string]bool{}}
	done := make(chan struct{})
	obs := &progress{applied: map[string]bool{}, dups: map[string]bool{}, done: done}
	for i, m := range ms {
		obs.applied[m.ID] = true
		if i%4 == 0 {
			src.lose[m.ID], obs.dups[m.ID] = true, true
		}
	}
	p, err := inbox.New(e.Driver, pay.Handler, inbox.Config{Consumer: "transporttest", MaxBatch: 64, Hooks: []inbox.Hook{obs}})
	if err != nil {
		s.t.Fatal(err)
	}

	// Publish in several calls, re-publishing some messages: the broker
	// drops those.
	var before int64
	if s.h.Duplicates != nil {
		before = s.h.Duplicates()
	}
	for i := 0; i < len(ms); i += 50 {
		s.publish(ms[i : i+50]...)
		s.publish(ms[i : i+5]...)
	}
	if s.h.Duplicates == nil {
		// The copies reach the consumer: the inbox must report them as
		// duplicates.
		obs.mu.Lock()
		for i := 0; i < len(ms); i += 50 {
			for _, m := range ms[i : i+5] {
				obs.dups[m.ID] = true
			}
		}
		obs.mu.Unlock()
	} else if d := s.h.Duplicates() - before; d != int64(len(ms)/10) {
		s.t.Errorf("broker reported %d duplicates, want %d", d, len(ms)/10)
	}

	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- p.Run(ctx, src) }()
	select {
	case <-done:
	case err := <-errc:
		s.t.Fatalf("Run ended: %v", err)
	case <-time.After(s.h.Timeout):
		obs.mu.Lock()
		s.t.Errorf("after %v: %d messages not applied, %d lost acks not redelivered", s.h.Timeout, len(obs.applied), len(obs.dups))
		obs.mu.Unlock()
	}
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		s.t.Errorf("Run: %v, want context.Canceled", err)
	}
	if len(obs.twice) > 0 {
		s.t.Errorf("applied more than once: %v", obs.twice)
	}
	pay.CheckExactlyOnce(s.t, ids(ms), accounts, balance)
}
