package kafka

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/eoskit/eos"
	"github.com/eoskit/eos/inbox"
	"github.com/eoskit/eos/internal/backoff"
	"github.com/eoskit/eos/internal/config"
)

// SubscriberConfig configures a Subscriber. Defaults are applied by
// [NewSubscriber].
type SubscriberConfig struct {
	// Brokers are the seed brokers (host:port). Required.
	Brokers []string
	// Group is the consumer group. Required.
	Group string
	// Topics are the topics the group consumes. Required.
	Topics []string
	// Options are more client options (TLS, SASL, session timeout, …).
	// The options that make the Subscriber what it is are set after them
	// and win: the group and topics, manual commits, rebalances blocked
	// while a poll is being handed out, read_committed, the rebalance
	// callbacks.
	Options []kgo.Opt
	// AckWait is how long after it was handed out an unsettled delivery
	// that the inbox gave up (still unsettled two Fetches later: its ack
	// was lost, or its batch abandoned) is delivered again. A delivery of
	// the last two Fetches is never redelivered while its partition stays
	// here, however long its batch takes. Default 30s.
	AckWait time.Duration
	// MaxHeld bounds the records a partition holds in memory: polled and not
	// yet acked, from its first record not acked. Past it the Subscriber
	// stops fetching the partition until acks bring it under half of it,
	// so a record that stays unacked (a batch stalled on the store, a
	// message nacked again and again) does not make it buffer the rest of
	// the partition. A poll can add up to the inbox's MaxBatch more.
	// Default 10000.
	MaxHeld int
	// CommitTimeout bounds each offset commit. Default 10s.
	CommitTimeout time.Duration
	// ID gives each delivered record its eos id. Default: the Eos-Id
	// header (HeaderIDFunc(HeaderID)) eos's Publisher sets.
	ID IDFunc
	// Logger receives commit and fetch failures. Default slog.Default().
	Logger *slog.Logger
	// Test holds the failpoints (FailAckLost), for tests and fault
	// injection.
	Test eos.TestConfig
}

// Defaults of [SubscriberConfig].
const (
	DefaultAckWait       = 30 * time.Second
	DefaultCommitTimeout = 10 * time.Second
	DefaultMaxHeld       = 10000
)

// WithDefaults returns a copy of c with the defaults applied, or a
// *eos.ConfigError naming the first invalid field.
func (c SubscriberConfig) WithDefaults() (SubscriberConfig, error) {
	if err := groupDefaults("kafka.SubscriberConfig.", c.Brokers, c.Group, c.Topics, &c.ID, &c.Logger); err != nil {
		return c, err
	}
	if err := config.Int("kafka.SubscriberConfig.MaxHeld", &c.MaxHeld, DefaultMaxHeld, 1<<24); err != nil {
		return c, err
	}
	return c, config.Durations("kafka.SubscriberConfig.",
		config.DurationField{Name: "AckWait", P: &c.AckWait, Default: DefaultAckWait},
		config.DurationField{Name: "CommitTimeout", P: &c.CommitTimeout, Default: DefaultCommitTimeout})
}

// groupDefaults checks the consumer group fields every config of the
// package has (prefix names the config) and sets the defaults of its id
// function and logger.
func groupDefaults(prefix string, brokers []string, group string, topics []string, id *IDFunc, logger **slog.Logger) error {
	switch {
	case len(brokers) == 0:
		return &eos.ConfigError{Field: prefix + "Brokers", Reason: "empty"}
	case group == "":
		return &eos.ConfigError{Field: prefix + "Group", Reason: "empty"}
	case len(topics) == 0:
		return &eos.ConfigError{Field: prefix + "Topics", Reason: "empty"}
	}
	if *id == nil {
		*id = HeaderIDFunc(HeaderID)
	}
	if *logger == nil {
		*logger = slog.Default()
	}
	return nil
}

// FailAckLost is evaluated when a Delivery is acked, before the ack is
// applied. An error makes the ack go missing as a lost network ack would:
// Ack returns nil, the record is not marked acked and its offset (and those
// after it in its partition) stays uncommitted, and the record is delivered
// again after AckWait, or by the partition's next owner.
const FailAckLost = "kafka.ack_lost"

// FailpointNames returns the names of the failpoints the Publisher and the
// Subscriber evaluate, for failpoint.Parse.
func FailpointNames() []string { return []string{FailPublishAckLost, FailAckLost} }

// ErrRevoked is returned by a Delivery's Ack or Nack once its partition was
// revoked or lost in a rebalance: the settlement commits nothing, and the
// partition's new owner delivers the record again (its inbox claim, or in
// stream mode its offset, suppresses what was applied).
var ErrRevoked = errors.New("kafka: partition revoked from this consumer")

// Subscriber consumes topics in a consumer group. It implements
// inbox.Source; one Subscriber serves one Processor.Run at a time.
//
// Offsets go to Kafka only for records the inbox acked, that is after its
// transaction committed: per partition, the committed offset is that of
// the first record not yet acked. A nack keeps the record's offset
// uncommitted and hands the record out again after the delay, from memory.
// Each Fetch hands out records of one partition, in offset order.
//
// On a rebalance, a revoked partition's acked offsets are committed
// before the partition goes; its deliveries still in flight then settle
// nothing (ErrRevoked), and the new owner redelivers them.
type Subscriber struct {
	cfg      SubscriberConfig
	cl       *kgo.Client
	commitCh chan struct{} // an ack moved a commit point
	stop     chan struct{} // closed by Close
	stopped  chan struct{} // closed when the committer has ended

	mu         sync.Mutex
	parts      map[partKey]*partition
	rr         int // the partition a Fetch looks at first, round robin
	gen        int // Fetches begun
	pollCancel context.CancelFunc
	closed     bool
}

var _ inbox.Source = (*Subscriber)(nil)

type partKey struct {
	topic string
	part  int32
}

// partition is one assigned partition as this member holds it: the records
// polled from its commit point on, in offset order.
type partition struct {
	partKey
	revoked   bool
	entries   []*entry // from the first record not acked
	handed    int      // entries[:handed] were handed out at least once
	next      int64    // offset after the last record polled
	committed int64    // last offset committed (-1: none by us)
	paused    bool     // holding MaxHeld records: not fetched until acks free half
}

func (p *partition) tps() map[string][]int32 { return map[string][]int32{p.topic: {p.part}} }

// entry is one record polled, until it is acked and its offset committed.
type entry struct {
	rec    *kgo.Record
	msg    eos.Message
	acked  bool
	gen    int       // the Fetch that handed it out last
	handed time.Time // when
	held   bool      // handed out and not settled by that delivery
	due    time.Time // when a nacked or given-up entry goes out again; zero: not scheduled
}

// NewSubscriber joins cfg.Group on cfg.Topics. Close leaves it.
func NewSubscriber(cfg SubscriberConfig) (*Subscriber, error) {
	cfg, err := cfg.WithDefaults()
	if err != nil {
		return nil, err
	}
	s := &Subscriber{
		cfg: cfg, commitCh: make(chan struct{}, 1), stop: make(chan struct{}), stopped: make(chan struct{}),
		parts: make(map[partKey]*partition),
	}
	opts := append(slices.Clone(cfg.Options),
		kgo.SeedBrokers(cfg.Brokers...),
		kgo.ConsumerGroup(cfg.Group),
		kgo.ConsumeTopics(cfg.Topics...),
		kgo.DisableAutoCommit(),
		kgo.BlockRebalanceOnPoll(),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.OnPartitionsAssigned(s.onAssigned),
		kgo.OnPartitionsRevoked(s.onRevoked),
		kgo.OnPartitionsLost(s.onLost),
	)
	if s.cl, err = kgo.NewClient(opts...); err != nil {
		return nil, fmt.Errorf("kafka: subscriber client: %w", err)
	}
	go s.committer()
	return s, nil
}

func (s *Subscriber) onAssigned(_ context.Context, _ *kgo.Client, assigned map[string][]int32) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for topic, ps := range assigned {
		for _, p := range ps {
			k := partKey{topic, p}
			s.parts[k] = &partition{partKey: k, next: -1, committed: -1}
		}
	}
}

// onRevoked commits what was acked of the revoked partitions and drops
// them: from here on their deliveries settle nothing.
func (s *Subscriber) onRevoked(ctx context.Context, cl *kgo.Client, revoked map[string][]int32) {
	offsets := s.drop(revoked, true)
	if len(offsets) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.CommitTimeout)
	defer cancel()
	cl.CommitOffsetsSync(ctx, offsets, s.onCommitted)
}

// onLost drops the partitions lost without committing: the group has
// moved on without this member, and a commit would be refused.
func (s *Subscriber) onLost(_ context.Context, _ *kgo.Client, lost map[string][]int32) {
	s.drop(lost, false)
}

// drop forgets partitions, returning their commit points when marked.
func (s *Subscriber) drop(ps map[string][]int32, marked bool) map[string]map[int32]kgo.EpochOffset {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]map[int32]kgo.EpochOffset{}
	for topic, parts := range ps {
		for _, p := range parts {
			k := partKey{topic, p}
			st := s.parts[k]
			if st == nil {
				continue
			}
			st.revoked = true
			delete(s.parts, k)
			if st.paused {
				// A pause outlives the assignment: the partition would not
				// be fetched when it comes back.
				s.cl.ResumeFetchPartitions(st.tps())
			}
			if o, ok := st.commitPoint(); marked && ok {
				addOffset(out, k, o)
			}
		}
	}
	return out
}

func addOffset(m map[string]map[int32]kgo.EpochOffset, k partKey, o int64) {
	if m[k.topic] == nil {
		m[k.topic] = map[int32]kgo.EpochOffset{}
	}
	m[k.topic][k.part] = kgo.EpochOffset{Epoch: -1, Offset: o}
}

// commitPoint is the offset to commit (that of the first record not acked)
// and whether it moved since the last commit.
func (p *partition) commitPoint() (int64, bool) {
	o := p.next
	if len(p.entries) > 0 {
		o = p.entries[0].rec.Offset
	}
	return o, o >= 0 && o != p.committed
}

func (s *Subscriber) onCommitted(_ *kgo.Client, req *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, err error) {
	if err != nil {
		s.cfg.Logger.Warn("eos kafka: offset commit failed; the records are delivered again after a rebalance",
			slog.String("group", s.cfg.Group), slog.Any("error", err))
		return
	}
	sent := map[partKey]int64{}
	for _, t := range req.Topics {
		for _, p := range t.Partitions {
			sent[partKey{t.Topic, p.Partition}] = p.Offset
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, t := range resp.Topics {
		for _, p := range t.Partitions {
			k := partKey{t.Topic, p.Partition}
			o, ok := sent[k]
			if p.ErrorCode != 0 {
				s.cfg.Logger.Warn("eos kafka: offset commit refused; the records are delivered again after a rebalance",
					slog.String("group", s.cfg.Group), slog.String("topic", k.topic), slog.Int("partition", int(k.part)),
					slog.Any("error", kerr.ErrorForCode(p.ErrorCode)))
				continue
			}
			if st := s.parts[k]; ok && st != nil {
				st.committed = o
			}
		}
	}
}

// committer commits the acked offsets whenever an ack moved them, one
// commit at a time, so that a burst of acks makes one commit. A commit
// that failed (a broker restarting, a connection reset) is tried again
// after commitRetry's backoff, acks or not: the last acks of a partition
// must reach Kafka even when no ack follows them, or the group's lag
// never drains and a rebalance redelivers them.
func (s *Subscriber) committer() {
	defer close(s.stopped)
	var retry <-chan time.Time
	failures := 0
	for {
		select {
		case <-s.stop:
			return
		case <-s.commitCh:
		case <-retry:
		}
		retry = nil
		if s.commitMarked() {
			failures = 0
			continue
		}
		failures++
		retry = time.After(commitRetry.Wait(failures))
	}
}

// commitRetry is the committer's backoff after a commit that did not
// take: full jitter, the bound doubling from 100 ms to 5 s.
var commitRetry = backoff.Policy{Initial: 100 * time.Millisecond, Max: 5 * time.Second}

// commitMarked commits every partition's commit point that moved, and
// reports whether all of them took (true when there was nothing to
// commit).
func (s *Subscriber) commitMarked() bool {
	s.mu.Lock()
	offsets := map[string]map[int32]kgo.EpochOffset{}
	for k, st := range s.parts {
		if o, ok := st.commitPoint(); ok {
			addOffset(offsets, k, o)
		}
	}
	s.mu.Unlock()
	if len(offsets) == 0 {
		return true
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.CommitTimeout)
	defer cancel()
	s.cl.CommitOffsetsSync(ctx, offsets, s.onCommitted)
	s.mu.Lock()
	defer s.mu.Unlock()
	for t, parts := range offsets {
		for p, o := range parts {
			// A partition revoked meanwhile is the next owner's: nothing
			// is left to retry here.
			if st := s.parts[partKey{t, p}]; st != nil && st.committed != o.Offset {
				return false
			}
		}
	}
	return true
}

// Close commits what was acked, leaves the group (the final revoke commits
// again) and closes the client. Records polled and not acked are not
// committed: the partitions' next owners deliver them.
func (s *Subscriber) Close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	if s.pollCancel != nil {
		s.pollCancel()
	}
	s.mu.Unlock()
	close(s.stop)
	<-s.stopped
	s.commitMarked()
	s.cl.CloseAllowingRebalance()
}

// Fetch implements inbox.Source: it returns records of one partition, the
// ones due for redelivery first, then new ones in offset order. It polls
// when no partition has any, as long as ctx allows. maxWait is not used:
// a poll returns what the client has fetched, which it fetches ahead.
func (s *Subscriber) Fetch(ctx context.Context, max int, _ time.Duration) ([]inbox.Delivery, error) {
	s.mu.Lock()
	s.gen++
	s.giveUp()
	s.mu.Unlock()
	for {
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			return nil, fmt.Errorf("kafka: fetch after Close: %w", inbox.ErrSourceClosed)
		}
		now := time.Now()
		if ds := s.take(max, now); len(ds) > 0 {
			s.mu.Unlock()
			return ds, nil
		}
		pctx, cancel := s.pollContext(ctx, now)
		s.mu.Unlock()
		err := s.poll(pctx, max)
		cancel()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if err != nil {
			return nil, err
		}
	}
}

// giveUp schedules the redelivery of the deliveries still unsettled from
// before the last two Fetches: the inbox has given them up (or their ack
// was lost), and they go out again AckWait after they were handed out.
func (s *Subscriber) giveUp() {
	for _, st := range s.parts {
		for _, e := range st.entries[:st.handed] {
			if e.held && !e.acked && e.gen < s.gen-1 {
				e.held, e.due = false, e.handed.Add(s.cfg.AckWait)
			}
		}
	}
}

// pollContext returns ctx bounded by the next scheduled redelivery, and
// cancelable by a nack (which may schedule an earlier one) or Close.
func (s *Subscriber) pollContext(ctx context.Context, now time.Time) (context.Context, context.CancelFunc) {
	var next time.Time
	for _, st := range s.parts {
		for _, e := range st.entries[:st.handed] {
			if !e.due.IsZero() && !e.acked && (next.IsZero() || e.due.Before(next)) {
				next = e.due
			}
		}
	}
	var cancel context.CancelFunc
	if next.IsZero() {
		ctx, cancel = context.WithCancel(ctx)
	} else {
		ctx, cancel = context.WithDeadline(ctx, next)
	}
	s.pollCancel = cancel
	return ctx, cancel
}

// poll waits for records and appends them to their partitions. Rebalances
// wait while it holds the records (BlockRebalanceOnPoll), so none belongs
// to a partition revoked meanwhile.
func (s *Subscriber) poll(ctx context.Context, max int) error {
	fs := s.cl.PollRecords(ctx, max)
	defer s.cl.AllowRebalance()
	if fs.IsClientClosed() {
		return fmt.Errorf("kafka: client closed: %w", inbox.ErrSourceClosed)
	}
	fs.EachError(func(topic string, p int32, err error) {
		if !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
			s.cfg.Logger.Warn("eos kafka: fetch failed; the client retries",
				slog.String("topic", topic), slog.Int("partition", int(p)), slog.Any("error", err))
		}
	})
	s.mu.Lock()
	defer s.mu.Unlock()
	fs.EachRecord(func(r *kgo.Record) {
		st := s.parts[partKey{r.Topic, r.Partition}]
		if st == nil || r.Offset < st.next {
			return // not ours (cannot happen while rebalances wait for us), or seen
		}
		st.entries = append(st.entries, &entry{rec: r, msg: fromRecord(r, s.cfg.ID)})
		st.next = r.Offset + 1
		if !st.paused && len(st.entries) >= s.cfg.MaxHeld {
			st.paused = true
			s.cl.PauseFetchPartitions(st.tps())
		}
	})
	return nil
}

// take hands out up to max records of the first partition, round robin,
// that has any due or new.
func (s *Subscriber) take(max int, now time.Time) []inbox.Delivery {
	keys := make([]partKey, 0, len(s.parts))
	for k := range s.parts {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b partKey) int {
		return cmp.Or(cmp.Compare(a.topic, b.topic), cmp.Compare(a.part, b.part))
	})
	for i := range keys {
		st := s.parts[keys[(s.rr+i)%len(keys)]]
		var out []inbox.Delivery
		for _, e := range st.entries[:st.handed] {
			if len(out) < max && !e.acked && !e.due.IsZero() && !e.due.After(now) {
				out = append(out, s.hand(st, e, now))
			}
		}
		for len(out) < max && st.handed < len(st.entries) {
			out = append(out, s.hand(st, st.entries[st.handed], now))
			st.handed++
		}
		if len(out) > 0 {
			s.rr = (s.rr + i + 1) % len(keys)
			return out
		}
	}
	return nil
}

func (s *Subscriber) hand(st *partition, e *entry, now time.Time) inbox.Delivery {
	e.gen, e.handed, e.held, e.due = s.gen, now, true, time.Time{}
	return &Delivery{s: s, st: st, e: e}
}

// settle applies an ack or a nack of d.
func (s *Subscriber) settle(d *Delivery, ack bool, delay time.Duration) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if d.st.revoked {
		return fmt.Errorf("kafka: settle %s: %w", d.Position(), ErrRevoked)
	}
	e := d.e
	if e.acked {
		return nil
	}
	if !ack {
		e.held, e.due = false, time.Now().Add(delay)
		if s.pollCancel != nil {
			s.pollCancel() // a Fetch waiting may have to hand it out sooner
		}
		return nil
	}
	e.acked, e.held, e.due = true, false, time.Time{}
	st := d.st
	n := 0
	for n < st.handed && st.entries[n].acked {
		n++
	}
	if n > 0 {
		st.entries = slices.Delete(st.entries, 0, n)
		st.handed -= n
		if st.paused && len(st.entries) <= s.cfg.MaxHeld/2 {
			st.paused = false
			s.cl.ResumeFetchPartitions(st.tps())
		}
		select {
		case s.commitCh <- struct{}{}:
		default:
		}
	}
	return nil
}

// lose schedules d's redelivery AckWait after it was handed out, as a
// broker does with a message whose ack never came (FailAckLost): at
// once, not once two more Fetches have begun, since a Fetch that finds
// nothing else to hand out may wait for it alone (the inbox has taken the
// ack for done and waits for new records).
func (s *Subscriber) lose(d *Delivery) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e := d.e
	if d.st.revoked || e.acked {
		return
	}
	e.held, e.due = false, e.handed.Add(s.cfg.AckWait)
	if s.pollCancel != nil {
		s.pollCancel() // a Fetch waiting must wake for it
	}
}

// Delivery is one Kafka record handed to the inbox.
type Delivery struct {
	s  *Subscriber
	st *partition
	e  *entry
}

var (
	_ inbox.Delivery   = (*Delivery)(nil)
	_ inbox.Positioner = (*Delivery)(nil)
)

func (d *Delivery) Message() eos.Message { return d.e.msg }

// Ack marks the record done: its offset is committed once every record
// before it in its partition is acked too. ErrRevoked when the partition
// has left this member. With FailAckLost armed, the ack may go missing.
func (d *Delivery) Ack(context.Context) error {
	if d.s.cfg.Test.Failpoints.Eval(FailAckLost) != nil {
		d.s.lose(d)
		return nil
	}
	return d.s.settle(d, true, 0)
}

// Nack hands the record out again after delay; its offset stays
// uncommitted meanwhile.
func (d *Delivery) Nack(_ context.Context, delay time.Duration) error {
	return d.s.settle(d, false, delay)
}

// Position implements inbox.Positioner: topic/partition/offset.
func (d *Delivery) Position() string {
	return d.st.topic + "/" + strconv.Itoa(int(d.st.part)) + "/" + strconv.FormatInt(d.e.rec.Offset, 10)
}
