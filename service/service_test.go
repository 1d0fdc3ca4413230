package service_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/eoskit/eos"
	"github.com/eoskit/eos/driver"
	"github.com/eoskit/eos/inbox"
	"github.com/eoskit/eos/inbox/inboxtest"
	"github.com/eoskit/eos/internal/testdb"
	"github.com/eoskit/eos/internal/testdb/engines"
	"github.com/eoskit/eos/outbox"
	"github.com/eoskit/eos/outbox/outboxtest"
	"github.com/eoskit/eos/service"
)

const balance = 1_000_000

// messages returns n payments messages, one account each.
func messages(prefix string, n int) ([]eos.Message, []string) {
	ms := make([]eos.Message, n)
	ids := make([]string, n)
	for i := range ms {
		ids[i] = fmt.Sprintf("%s-%03d", prefix, i)
		ms[i] = testdb.Message(ids[i], testdb.Account(i), int64(i+1))
	}
	return ms, ids
}

// from returns a SourceFunc that hands every runner src.
func from(src *inboxtest.Source) service.SourceFunc {
	return func(context.Context) (inbox.Source, error) { return src, nil }
}

func newService(t *testing.T, cfg service.Config) *service.Service {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	s, err := service.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// sqliteInbox sets up the payments workload with n accounts on SQLite and
// an Inbox "orders" on src applying it through h (the workload's handler
// when nil).
func sqliteInbox(t *testing.T, n int, h inbox.Handler[*sql.Tx], src *inboxtest.Source, concurrency int) (testdb.Payments[*sql.Tx], *service.Inbox) {
	t.Helper()
	e := testdb.SQLite(t)
	pay := testdb.Payments[*sql.Tx]{E: e}
	pay.Setup(t, n, balance)
	if h == nil {
		h = pay.Handler
	}
	ib, _, err := service.NewInbox(e.Driver, h, inbox.Config{Consumer: "orders"}, service.InboxConfig{Source: from(src), Concurrency: concurrency})
	if err != nil {
		t.Fatal(err)
	}
	return pay, ib
}

// batchOf is a batch handler applying each message with h.
func batchOf[TTx any](h inbox.Handler[TTx]) inbox.BatchHandler[TTx] {
	return func(ctx context.Context, tx TTx, b *inbox.Batch) error {
		for _, m := range b.Messages {
			if err := h(ctx, tx, m); err != nil {
				return err
			}
		}
		return nil
	}
}

// testContext bounds a test's waits: one that reaches it fails the test.
func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// waitEntered waits for a handler's signal on entered.
func waitEntered[T any](ctx context.Context, t *testing.T, entered <-chan T) {
	t.Helper()
	select {
	case <-entered:
	case <-ctx.Done():
		t.Fatal("no handler entered")
	}
}

// stopWhileStopping calls Stop(stopCtx) and returns, once Health says
// Stopping, a channel that receives Stop's result.
func stopWhileStopping(ctx, stopCtx context.Context, t *testing.T, s *service.Service) <-chan error {
	t.Helper()
	stopped := make(chan error, 1)
	go func() { stopped <- s.Stop(stopCtx) }()
	waitHealth(ctx, t, s, "stopping", state(service.Stopping))
	return stopped
}

// waitHealth waits, without polling, until cond holds for s's health.
func waitHealth(ctx context.Context, t *testing.T, s *service.Service, what string, cond func(service.Health) bool) service.Health {
	t.Helper()
	for {
		changed := s.HealthChanged()
		if h := s.Health(); cond(h) {
			return h
		}
		select {
		case <-changed:
		case <-ctx.Done():
			t.Fatalf("waiting for %s: health is %+v", what, s.Health())
		}
	}
}

func state(want service.State) func(service.Health) bool {
	return func(h service.Health) bool { return h.State == want }
}

// requireNoServiceGoroutines fails t if a goroutine of package service is
// still running: the Service must leave nothing behind once stopped. A
// goroutine that has just signalled its end may still be on its way out,
// so it yields before looking again, a bounded number of times.
func requireNoServiceGoroutines(t *testing.T) {
	t.Helper()
	buf := make([]byte, 1<<20)
	var stacks string
	for range 1000 {
		stacks = string(buf[:runtime.Stack(buf, true)])
		if !strings.Contains(stacks, "eos/service.(*") {
			return
		}
		runtime.Gosched()
	}
	t.Fatalf("goroutines of the service left after Stop:\n%s", stacks)
}

// TestStalledOnStore runs with a per-message handler (NewInbox) and with a
// batch handler (NewBatchInbox): the health hook is in both.
func TestStalledOnStore(t *testing.T) {
	t.Run("message", func(t *testing.T) {
		engines.Each(t, testStalledOnStore[*sql.Tx](false), testStalledOnStore[pgx.Tx](false))
	})
	t.Run("batch", func(t *testing.T) {
		engines.Each(t, testStalledOnStore[*sql.Tx](true), testStalledOnStore[pgx.Tx](true))
	})
}

// A store outage under a batch makes Health report the consumer stalled,
// with the store's error, and acknowledges nothing; when the store is back
// the batch commits and Health reports Running again.
func testStalledOnStore[TTx any](batch bool) func(t *testing.T, e *testdb.Engine[TTx]) {
	return func(t *testing.T, e *testdb.Engine[TTx]) { stalledOnStore(t, e, batch) }
}

func stalledOnStore[TTx any](t *testing.T, e *testdb.Engine[TTx], batch bool) {
	ctx := testContext(t)
	pay := testdb.Payments[TTx]{E: e}
	pay.Setup(t, 20, balance)
	store := &testdb.Flaky[TTx]{Driver: e.Driver}
	src := inboxtest.NewSource()
	cfg := inbox.Config{Consumer: "orders", StoreBackoff: time.Millisecond, MaxStoreBackoff: 2 * time.Millisecond}
	ic := service.InboxConfig{Source: from(src)}
	var ib *service.Inbox
	var err error
	if batch {
		ib, _, err = service.NewBatchInbox(driver.Driver[TTx](store), batchOf(pay.Handler), cfg, ic)
	} else {
		ib, _, err = service.NewInbox(driver.Driver[TTx](store), pay.Handler, cfg, ic)
	}
	if err != nil {
		t.Fatal(err)
	}
	s := newService(t, service.Config{Inboxes: []*service.Inbox{ib}})
	if h := s.Health(); h.State != service.Stopped || h.Ready() {
		t.Fatalf("before Start: %+v", h)
	}
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	waitHealth(ctx, t, s, "running", state(service.Running))

	store.Down.Store(true)
	ms, ids := messages("stall", 20)
	ds := src.Deliver(ms...)
	h := waitHealth(ctx, t, s, "stalled", state(service.Stalled))
	if h.Ready() || fmt.Sprint(h.Stalled) != "[orders]" || h.Err == nil || !strings.Contains(h.Err.Error(), "connection refused") {
		t.Fatalf("stalled: %+v", h)
	}
	for _, d := range ds {
		if d.Settled() {
			t.Fatalf("%s settled while the store was down", d.Message().ID)
		}
	}

	store.Down.Store(false)
	h = waitHealth(ctx, t, s, "running after the outage", state(service.Running))
	if !h.Ready() || h.Err == nil {
		t.Fatalf("after the outage: %+v, want Running with the outage's error kept", h)
	}
	if err := src.WaitIdle(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if h := s.Health(); h.State != service.Stopped {
		t.Fatalf("after Stop: %+v", h)
	}
	for _, d := range ds {
		if d.Acks() != 1 || d.Nacks() != 0 {
			t.Fatalf("%s: %d acks %d nacks", d.Message().ID, d.Acks(), d.Nacks())
		}
	}
	pay.CheckExactlyOnce(t, ids, 20, balance)
	requireNoServiceGoroutines(t)
}

func TestStopDrains(t *testing.T) { engines.Each(t, testStopDrains, testStopDrains) }

// Stop while every runner holds a batch in its handler: no runner fetches
// again, the batches commit and are acked, the sources are closed, the
// relay stops after the inboxes, and no goroutine is left.
func testStopDrains[TTx any](t *testing.T, e *testdb.Engine[TTx]) {
	ctx := testContext(t)
	const runners, batch, total = 3, 4, 30
	pay := testdb.Payments[TTx]{E: e}
	pay.Setup(t, total, balance)
	entered := make(chan string, total)
	release := make(chan struct{})
	h := func(ctx context.Context, tx TTx, m eos.Message) error {
		entered <- m.ID
		select {
		case <-release:
		case <-ctx.Done():
			return ctx.Err()
		}
		return pay.Handler(ctx, tx, m)
	}
	src := inboxtest.NewSource()
	ib, _, err := service.NewInbox(e.Driver, h, inbox.Config{Consumer: "orders", MaxBatch: batch},
		service.InboxConfig{Source: from(src), Concurrency: runners})
	if err != nil {
		t.Fatal(err)
	}
	relay, err := outbox.NewRelay(e.Driver, outboxtest.NewPublisher(), outbox.RelayConfig{})
	if err != nil {
		t.Fatal(err)
	}
	// A runner that notes, when it is told to stop, whether the inboxes
	// had drained, and when it returned.
	var drainedFirst, returned atomic.Bool
	watcher := runnerFunc(func(ctx context.Context) error {
		<-ctx.Done()
		drainedFirst.Store(len(src.Handed()) > 0 && len(src.Unsettled()) == 0)
		runtime.Gosched()
		returned.Store(true)
		return ctx.Err()
	})
	s := newService(t, service.Config{Inboxes: []*service.Inbox{ib}, Runners: []service.Runner{relay, watcher}})
	ms, _ := messages("drain", total)
	src.Deliver(ms...)
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	// Every runner holds a batch: one is in its handler (on SQLite the
	// others wait for the single writer connection).
	waitEntered(ctx, t, entered)
	if err := src.WaitHanded(ctx, runners*batch); err != nil {
		t.Fatalf("%d deliveries handed out, want %d: %v", len(src.Handed()), runners*batch, err)
	}
	stopped := stopWhileStopping(ctx, ctx, t, s)
	close(release)
	if err := <-stopped; err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if !drainedFirst.Load() || !returned.Load() {
		t.Fatalf("runners stopped after the inboxes drained: %v; had returned when Stop did: %v", drainedFirst.Load(), returned.Load())
	}
	// Each runner holds its batch in flight and, fetched ahead while that
	// one ran, at most one more (inbox.Processor.Run): both are processed
	// before it stops, and nothing else is taken.
	handed := src.Handed()
	if len(handed) < runners*batch || len(handed) > 2*runners*batch || src.Queued() != total-len(handed) {
		t.Fatalf("%d handed out, %d queued; want the %d of the batches in flight, and at most one batch ahead per runner, handed out and no more",
			len(handed), src.Queued(), runners*batch)
	}
	var applied []string
	for _, d := range handed {
		if d.Acks() != 1 || d.Nacks() != 0 {
			t.Fatalf("%s: %d acks %d nacks after the drain", d.Message().ID, d.Acks(), d.Nacks())
		}
		applied = append(applied, d.Message().ID)
	}
	pay.CheckExactlyOnce(t, applied, total, balance)
	if !src.Closed() {
		t.Error("the source was not closed")
	}
	select {
	case <-s.Done():
	default:
		t.Fatal("Done not closed after Stop")
	}
	requireNoServiceGoroutines(t)
}

// When Stop's context ends before the batches in flight finish, they are
// cancelled: rolled back, nothing acknowledged, and Stop says so.
func TestStopTimeoutCancels(t *testing.T) {
	ctx := testContext(t)
	entered := make(chan struct{}, 4)
	var pay testdb.Payments[*sql.Tx]
	src := inboxtest.NewSource()
	pay, ib := sqliteInbox(t, 4, func(ctx context.Context, tx *sql.Tx, m eos.Message) error {
		if err := pay.Handler(ctx, tx, m); err != nil {
			return err
		}
		entered <- struct{}{}
		<-ctx.Done() // never finishes on its own
		return ctx.Err()
	}, src, 1)
	s := newService(t, service.Config{Inboxes: []*service.Inbox{ib}})
	ms, _ := messages("late", 4)
	ds := src.Deliver(ms...)
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	waitEntered(ctx, t, entered)
	stopCtx, stopNow := context.WithCancel(ctx)
	stopped := stopWhileStopping(ctx, stopCtx, t, s)
	stopNow()
	if err := <-stopped; !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "not acknowledged") {
		t.Fatalf("Stop: %v, want context.Canceled and what it means", err)
	}
	for _, d := range ds {
		if d.Settled() {
			t.Fatalf("%s settled after its batch was cancelled", d.Message().ID)
		}
	}
	if n := pay.E.Int(t, "SELECT count(*) FROM ledger"); n != 0 {
		t.Fatalf("%d effects of a cancelled batch committed", n)
	}
	requireNoServiceGoroutines(t)
}

// Paused from the start, no runner fetches; Resume lets them.
func TestPauseResume(t *testing.T) {
	ctx := testContext(t)
	var pay testdb.Payments[*sql.Tx]
	newPaused := func(src *inboxtest.Source) *service.Service {
		var ib *service.Inbox
		pay, ib = sqliteInbox(t, 10, nil, src, 2)
		s := newService(t, service.Config{Inboxes: []*service.Inbox{ib}})
		s.Pause()
		return s
	}

	src := inboxtest.NewSource()
	ms, _ := messages("p", 5)
	src.Deliver(ms...)
	s := newPaused(src)
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if h := s.Health(); h.State != service.Paused || h.Ready() {
		t.Fatalf("paused: %+v", h)
	}
	if err := s.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if n := len(src.Handed()); n != 0 {
		t.Fatalf("%d deliveries fetched while paused", n)
	}

	src = inboxtest.NewSource()
	ms, ids := messages("r", 10)
	src.Deliver(ms...)
	s = newPaused(src)
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	s.Resume()
	waitHealth(ctx, t, s, "running", state(service.Running))
	if err := src.WaitIdle(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	pay.CheckExactlyOnce(t, ids, 10, balance)
	requireNoServiceGoroutines(t)
}

// runnerFunc adapts a function to a Runner.
type runnerFunc func(ctx context.Context) error

func (f runnerFunc) Run(ctx context.Context) error { return f(ctx) }

// A part that fails fails the Service: the others are stopped, Health
// reports Failed with the error, Done is closed and Stop returns it.
func TestPartFailure(t *testing.T) {
	ctx := testContext(t)
	src := inboxtest.NewSource()
	_, ib := sqliteInbox(t, 1, nil, src, 1)
	boom := errors.New("broker gone")
	fail := make(chan struct{})
	s := newService(t, service.Config{Inboxes: []*service.Inbox{ib}, Runners: []service.Runner{runnerFunc(func(ctx context.Context) error {
		select {
		case <-fail:
			return boom
		case <-ctx.Done():
			return ctx.Err()
		}
	})}})
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	close(fail)
	select {
	case <-s.Done():
	case <-ctx.Done():
		t.Fatal("the Service did not stop after a part failed")
	}
	if h := s.Health(); h.State != service.Failed || !errors.Is(h.Err, boom) {
		t.Fatalf("after a failure: %+v", h)
	}
	if err := s.Stop(ctx); !errors.Is(err, boom) {
		t.Fatalf("Stop: %v", err)
	}
	if !src.Closed() {
		t.Error("the inbox's source was not closed")
	}
	if err := s.Start(ctx); !errors.Is(err, service.ErrStopped) {
		t.Fatalf("Start after Stop: %v", err)
	}
	requireNoServiceGoroutines(t)
}

// closeCounter is a source that counts its closes.
type closeCounter struct {
	*inboxtest.Source
	closes *atomic.Int32
}

func (c closeCounter) Close() error { c.closes.Add(1); return nil }

// A source that fails to open fails Start, which closes the ones it opened.
func TestStartSourceError(t *testing.T) {
	e := testdb.SQLite(t)
	var opened, closes atomic.Int32
	ib, _, err := service.NewInbox(e.Driver, testdb.Payments[*sql.Tx]{E: e}.Handler, inbox.Config{Consumer: "orders"},
		service.InboxConfig{Concurrency: 3, Source: func(context.Context) (inbox.Source, error) {
			if opened.Add(1) == 3 {
				return nil, errors.New("no such consumer")
			}
			return closeCounter{inboxtest.NewSource(), &closes}, nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	s := newService(t, service.Config{Inboxes: []*service.Inbox{ib}})
	if err := s.Start(context.Background()); err == nil || !strings.Contains(err.Error(), `consumer "orders" runner 3: no such consumer`) {
		t.Fatalf("Start: %v", err)
	}
	if closes.Load() != 2 {
		t.Fatalf("%d of the 2 opened sources closed", closes.Load())
	}
	if h := s.Health(); h.State != service.Stopped {
		t.Fatalf("after a failed Start: %+v", h)
	}
}

func TestConfigErrors(t *testing.T) {
	e := testdb.SQLite(t)
	h := testdb.Payments[*sql.Tx]{E: e}.Handler
	src := from(inboxtest.NewSource())
	for _, ic := range []service.InboxConfig{{}, {Source: src, Concurrency: -1}, {Source: src, Concurrency: 5000}} {
		if _, _, err := service.NewInbox(e.Driver, h, inbox.Config{Consumer: "c"}, ic); !errors.Is(err, eos.ErrInvalidConfig) {
			t.Errorf("NewInbox %+v: %v", ic, err)
		}
	}
	if _, _, err := service.NewInbox(e.Driver, h, inbox.Config{}, service.InboxConfig{Source: src}); !errors.Is(err, eos.ErrInvalidConfig) {
		t.Errorf("NewInbox without a consumer: %v", err)
	}
	for _, c := range []struct {
		bh inbox.BatchHandler[*sql.Tx]
		ic service.InboxConfig
	}{{nil, service.InboxConfig{Source: src}}, {batchOf(h), service.InboxConfig{}}, {batchOf(h), service.InboxConfig{Source: src, Concurrency: -1}}} {
		if _, _, err := service.NewBatchInbox(e.Driver, c.bh, inbox.Config{Consumer: "c"}, c.ic); !errors.Is(err, eos.ErrInvalidConfig) {
			t.Errorf("NewBatchInbox (handler %v) %+v: %v", c.bh != nil, c.ic, err)
		}
	}
	ib, _, err := service.NewInbox(e.Driver, h, inbox.Config{Consumer: "c"}, service.InboxConfig{Source: src})
	if err != nil {
		t.Fatal(err)
	}
	for _, cfg := range []service.Config{
		{},
		{Inboxes: []*service.Inbox{nil}},
		{Runners: []service.Runner{nil}},
		{Inboxes: []*service.Inbox{ib}, StopTimeout: -time.Second},
		{Inboxes: []*service.Inbox{ib, ib}},
	} {
		if _, err := service.New(cfg); !errors.Is(err, eos.ErrInvalidConfig) {
			t.Errorf("New %+v: %v", cfg, err)
		}
	}
	newService(t, service.Config{Inboxes: []*service.Inbox{ib}})
	if _, err := service.New(service.Config{Inboxes: []*service.Inbox{ib}}); !errors.Is(err, eos.ErrInvalidConfig) {
		t.Errorf("an Inbox in a second Service: %v", err)
	}
}

// Stop while Run runs (from a signal handler, an admin endpoint): the
// Service stops, and Run returns with Stop's outcome instead of waiting
// for its own context.
func TestStopEndsRun(t *testing.T) {
	ctx := testContext(t)
	src := inboxtest.NewSource()
	_, ib := sqliteInbox(t, 1, nil, src, 1)
	s := newService(t, service.Config{Inboxes: []*service.Inbox{ib}})
	runCtx, cancelRun := context.WithCancel(context.Background())
	defer cancelRun()
	ran := make(chan error, 1)
	go func() { ran <- s.Run(runCtx) }()
	waitHealth(ctx, t, s, "running", state(service.Running))
	if err := s.Stop(ctx); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	select {
	case err := <-ran:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-ctx.Done():
		t.Fatal("Run still running after Stop returned")
	}
	requireNoServiceGoroutines(t)
}
