package kafka_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/eoskit/eos"
	"github.com/eoskit/eos/driver"
	"github.com/eoskit/eos/internal/testdb"
	"github.com/eoskit/eos/internal/testdb/engines"
	"github.com/eoskit/eos/internal/testenv"
	"github.com/eoskit/eos/outbox"
	"github.com/eoskit/eos/transport/kafka"
)

const streamAccounts, streamBalance = 16, 1_000_000

// payments publishes n payments messages to topic and returns their ids.
func payments(t testing.TB, b *broker, topic string, from, n int) []string {
	t.Helper()
	envs := make([]outbox.Envelope, n)
	ids := make([]string, n)
	for i := range envs {
		m := testdb.Message(eos.NewID(), testdb.Account((from+i)%streamAccounts), int64(from+i+1))
		envs[i], ids[i] = outbox.Envelope{Topic: topic, Message: m}, m.ID
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if got, err := b.publisher(t).Publish(ctx, envs); got != n || err != nil {
		t.Fatalf("Publish: %d of %d, %v", got, n, err)
	}
	return ids
}

// member is one Stream running until stopped.
type member struct {
	cancel context.CancelFunc
	done   chan error
}

func (m *member) stop(t testing.TB) {
	t.Helper()
	m.cancel()
	if err := <-m.done; !errors.Is(err, context.Canceled) {
		t.Errorf("Run: %v, want context.Canceled", err)
	}
}

func runStream(t testing.TB, drv driver.Driver[pgx.Tx], h kafka.StreamHandler[pgx.Tx], cfg kafka.StreamConfig) *member {
	t.Helper()
	return runStreamStoppable(t, drv, func(context.CancelFunc) kafka.StreamHandler[pgx.Tx] { return h }, cfg)
}

// runStreamStoppable runs a Stream whose handler, made by mk, can stop it.
func runStreamStoppable(t testing.TB, drv driver.Driver[pgx.Tx], mk func(stop context.CancelFunc) kafka.StreamHandler[pgx.Tx], cfg kafka.StreamConfig) *member {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	if cfg.Logger == nil {
		cfg.Logger = testLogger(t)
	}
	s, err := kafka.NewStream(drv, mk(cancel), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return goMember(ctx, cancel, s.Run)
}

// crew is the members of a test's group, started and stopped under one
// lock: none starts after stop (a start scheduled by a handler may come
// late).
type crew struct {
	mu      sync.Mutex
	members []*member
	stopped bool
}

// add starts a member with start unless the crew was stopped.
func (c *crew) add(start func() *member) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.stopped {
		c.members = append(c.members, start())
	}
}

// await waits for done, failing t after a minute with progress().
func (c *crew) await(t testing.TB, done <-chan struct{}, progress func() string) {
	t.Helper()
	select {
	case <-done:
	case <-time.After(time.Minute):
		t.Errorf("after a minute: %s", progress())
	}
}

// stop stops every member and returns how many ran and what their Runs
// returned other than context.Canceled.
func (c *crew) stop() (int, []error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.stopped = true
	var errs []error
	for _, m := range c.members {
		m.cancel()
		if err := <-m.done; !errors.Is(err, context.Canceled) {
			errs = append(errs, err)
		}
	}
	return len(c.members), errs
}

// goMember runs run(ctx) until cancel.
func goMember(ctx context.Context, cancel context.CancelFunc, run func(context.Context) error) *member {
	m := &member{cancel: cancel, done: make(chan error, 1)}
	go func() { m.done <- run(ctx) }()
	return m
}

// applyAll applies msgs with the payments handler.
func applyAll(pay testdb.Payments[pgx.Tx]) kafka.StreamHandler[pgx.Tx] {
	return func(ctx context.Context, tx pgx.Tx, msgs []eos.Message) error {
		for _, m := range msgs {
			if err := pay.Handler(ctx, tx, m); err != nil {
				return err
			}
		}
		return nil
	}
}

// Members join and leave while batches are in flight (a member leaving
// cancels its own batch); every record is applied once.
func TestStreamRebalancesOneEffectPerRecord(t *testing.T) {
	b := newFake(t)
	topic, group := b.topic(t, 6), testenv.Name("g-")
	e := engines.Postgres(t)
	pay := testdb.Payments[pgx.Tx]{E: e}
	pay.Setup(t, streamAccounts, streamBalance)
	const n = 3000
	ids := payments(t, b, topic, 0, n)

	var (
		c         crew
		batches   atomic.Int64 // begun
		committed atomic.Int64 // records of committed batches
		conflicts atomic.Int64
		done      = make(chan struct{})
		doneOnce  sync.Once
	)
	var start func()
	onBatch := func(sb kafka.StreamBatch) {
		switch {
		case sb.Err == nil:
			if committed.Add(int64(sb.Records)) >= n {
				doneOnce.Do(func() { close(done) })
			}
		case errors.Is(sb.Err, driver.ErrOffsetConflict):
			conflicts.Add(1)
		}
	}
	// The schedule, by batch begun: members join at 2, 8 and 14; the
	// member whose batch is the 5th or 11th leaves in the middle of it.
	handler := func(stop context.CancelFunc) kafka.StreamHandler[pgx.Tx] {
		apply := applyAll(pay)
		return func(ctx context.Context, tx pgx.Tx, msgs []eos.Message) error {
			switch batches.Add(1) {
			case 2, 8, 14:
				go start()
			case 5, 11:
				stop()
			}
			return apply(ctx, tx, msgs)
		}
	}
	start = func() {
		c.add(func() *member {
			return runStreamStoppable(t, e.Driver, handler, kafka.StreamConfig{
				Brokers: b.addrs, Group: group, Topics: []string{topic}, MaxBatch: 50, OnBatch: onBatch,
			})
		})
	}
	start()
	c.await(t, done, func() string { return fmt.Sprintf("%d of %d records applied", committed.Load(), n) })
	ran, errs := c.stop()
	if len(errs) > 0 {
		t.Errorf("Run: %v", errs)
	}
	if got := committed.Load(); got != n {
		t.Errorf("committed batches hold %d records, want %d", got, n)
	}
	if ran != 4 {
		t.Errorf("%d members ran, want 4 (the schedule did not run through)", ran)
	}
	t.Logf("%d batches begun, %d compare-and-set conflicts", batches.Load(), conflicts.Load())
	pay.CheckExactlyOnce(t, ids, streamAccounts, streamBalance)
}

// A member stalled in a batch past the rebalance timeout loses its
// partition; the new owner applies the batch, and the stalled member's
// commit is refused when it wakes.
func TestStreamZombieCommitRefused(t *testing.T) {
	b := newFake(t)
	topic, group := b.topic(t, 1), testenv.Name("g-")
	e := engines.Postgres(t)
	pay := testdb.Payments[pgx.Tx]{E: e}
	pay.Setup(t, streamAccounts, streamBalance)
	first := payments(t, b, topic, 0, 10)

	type outcome struct {
		member string
		sb     kafka.StreamBatch
	}
	outcomes := make(chan outcome, 64)
	stalled, wake := make(chan struct{}), make(chan struct{})
	var once sync.Once
	zombie := runStream(t, e.Driver, func(ctx context.Context, tx pgx.Tx, msgs []eos.Message) error {
		if string(msgs[0].Payload) == "11" { // the first of the second publish
			once.Do(func() { close(stalled) })
			<-wake
		}
		return applyAll(pay)(ctx, tx, msgs)
	}, kafka.StreamConfig{
		Brokers: b.addrs, Group: group, Topics: []string{topic},
		Options: []kgo.Opt{kgo.RebalanceTimeout(time.Second)},
		OnBatch: func(sb kafka.StreamBatch) { outcomes <- outcome{"zombie", sb} },
	})
	defer zombie.stop(t)
	for applied := 0; applied < len(first); {
		o := <-outcomes
		if o.sb.Err != nil {
			t.Fatalf("first batches: %+v", o.sb)
		}
		applied += o.sb.Records
	}
	second := payments(t, b, topic, 10, 10)
	<-stalled
	// It stalls holding its poll, so it cannot take part in the rebalance
	// the new member starts; the group drops it after the rebalance timeout.
	owner := runStream(t, e.Driver, applyAll(pay), kafka.StreamConfig{
		Brokers: b.addrs, Group: group, Topics: []string{topic},
		Options: []kgo.Opt{kgo.RebalanceTimeout(time.Second)},
		OnBatch: func(sb kafka.StreamBatch) { outcomes <- outcome{"owner", sb} },
	})
	defer owner.stop(t)
	o := <-outcomes
	if o.member != "owner" || o.sb.Err != nil || o.sb.To != 20 {
		t.Fatalf("while the zombie stalls: %s %+v, want the owner to apply up to offset 20", o.member, o.sb)
	}
	close(wake)
	o = <-outcomes
	if o.member != "zombie" || !errors.Is(o.sb.Err, driver.ErrOffsetConflict) {
		t.Fatalf("the zombie woke: %s %+v, want its commit refused (ErrOffsetConflict)", o.member, o.sb)
	}
	pay.CheckExactlyOnce(t, append(first, second...), streamAccounts, streamBalance)
}

// countingFlaky is a Flaky driver that signals once its Begin has failed
// three times.
type countingFlaky struct {
	*testdb.Flaky[pgx.Tx]
	failed atomic.Int64
	down3  chan struct{}
}

func (f *countingFlaky) Begin(ctx context.Context) (pgx.Tx, error) {
	tx, err := f.Flaky.Begin(ctx)
	if err != nil && f.failed.Add(1) == 3 {
		close(f.down3)
	}
	return tx, err
}

// The store is down when the member is assigned its partitions (it cannot
// read the stored offsets) and when it applies: once it is back, every
// record is applied once.
func TestStreamStoreOutage(t *testing.T) {
	b := newFake(t)
	topic, group := b.topic(t, 3), testenv.Name("g-")
	e := engines.Postgres(t)
	pay := testdb.Payments[pgx.Tx]{E: e}
	pay.Setup(t, streamAccounts, streamBalance)
	ids := payments(t, b, topic, 0, 300)
	drv := &countingFlaky{Flaky: &testdb.Flaky[pgx.Tx]{Driver: e.Driver}, down3: make(chan struct{})}
	drv.Down.Store(true)
	var applied atomic.Int64
	done := make(chan struct{})
	m := runStream(t, drv, applyAll(pay), kafka.StreamConfig{
		Brokers: b.addrs, Group: group, Topics: []string{topic},
		OnBatch: func(sb kafka.StreamBatch) {
			if sb.Err == nil && applied.Add(int64(sb.Records)) == 300 {
				close(done)
			}
		},
	})
	defer m.stop(t)
	<-drv.down3
	drv.Down.Store(false)
	var c crew
	c.await(t, done, func() string { return fmt.Sprintf("%d of 300 applied", applied.Load()) })
	pay.CheckExactlyOnce(t, ids, streamAccounts, streamBalance)
}
