package kafka

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/eoskit/eos"
	"github.com/eoskit/eos/driver"
	"github.com/eoskit/eos/internal/backoff"
	"github.com/eoskit/eos/internal/config"
)

// StreamHandler applies records of one partition, in offset order, in tx:
// the transaction that also moves the partition's stored offset past them.
// An error rolls both back; the records are read again.
type StreamHandler[TTx any] func(ctx context.Context, tx TTx, msgs []eos.Message) error

// StreamConfig configures a Stream. Defaults are applied by [NewStream].
type StreamConfig struct {
	// Brokers, Group and Topics are the consumer group's. Required.
	Brokers []string
	Group   string
	Topics  []string
	// Options are more client options (TLS, SASL, session and rebalance
	// timeouts); the Stream's own (group, manual commits, rebalances held
	// while a poll is applied, read_committed, the offset callbacks) win.
	Options []kgo.Opt
	// Consumer names the stored offsets (the offsets table's consumer).
	// Default: Group.
	Consumer string
	// MaxBatch is the most records applied in one transaction. Default 256.
	MaxBatch int
	// ID gives each record its eos id (eos.Message.ID). Default: the
	// Eos-Id header. Stream mode does not need ids; a handler that also
	// claims them (inbox.ProcessTx) does.
	ID IDFunc
	// Retry is the backoff after a batch failed (handler, store, or an
	// offset another member moved). Default 10ms doubling to 5s.
	RetryInitial, RetryMax time.Duration
	// LagCommitInterval is how often the stored offsets are also committed
	// to Kafka, for lag monitors (the Stream never reads them back while
	// offsets are stored). Default 1s.
	LagCommitInterval time.Duration
	// OnBatch, if set, is called after each transaction with its outcome.
	OnBatch func(StreamBatch)
	// Logger receives failures. Default slog.Default().
	Logger *slog.Logger
}

// StreamBatch is the outcome of one transaction of a Stream.
type StreamBatch struct {
	Topic     string
	Partition int32
	// From is the stored offset the batch expected (driver.OffsetNone for
	// none), To the one it stored (or would have).
	From, To int64
	Records  int
	// Err is nil when the transaction committed; it wraps
	// driver.ErrOffsetConflict when another member had moved the offset.
	Err error
}

// Defaults of [StreamConfig].
const (
	DefaultStreamMaxBatch = 256
	DefaultRetryInitial   = 10 * time.Millisecond
	DefaultRetryMax       = 5 * time.Second
	DefaultLagCommit      = time.Second
)

// WithDefaults returns a copy of c with the defaults applied, or a
// *eos.ConfigError naming the first invalid field.
func (c StreamConfig) WithDefaults() (StreamConfig, error) {
	if err := groupDefaults("kafka.StreamConfig.", c.Brokers, c.Group, c.Topics, &c.ID, &c.Logger); err != nil {
		return c, err
	}
	if c.Consumer == "" {
		c.Consumer = c.Group
	}
	if err := config.Int("kafka.StreamConfig.MaxBatch", &c.MaxBatch, DefaultStreamMaxBatch, 1<<20); err != nil {
		return c, err
	}
	return c, config.Durations("kafka.StreamConfig.",
		config.DurationField{Name: "RetryInitial", P: &c.RetryInitial, Default: DefaultRetryInitial},
		config.DurationField{Name: "RetryMax", P: &c.RetryMax, Default: DefaultRetryMax},
		config.DurationField{Name: "LagCommitInterval", P: &c.LagCommitInterval, Default: DefaultLagCommit})
}

// Stream consumes partitions in stream mode: the offset of the next record
// to apply, per (Consumer, topic, partition), is stored in the database by
// the transaction that applies the records, so the database alone says
// what was applied and no per-id rows are kept. When a member is assigned
// a partition it reads from the stored offset (Kafka's committed offset
// only when none is stored).
//
// Each stored offset moves by compare and set on the offset the member
// read, at the end of the transaction: a member that lost the partition in
// a rebalance and did not notice yet (a zombie: stalled past the rebalance
// timeout while the new owner applied the same records) fails its set and
// rolls back. Of the two, whichever sets first commits; the other's
// records are read again from the stored offset, so every record has one
// effect. Rebalances wait while a member applies what it polled
// (kgo.BlockRebalanceOnPoll), so only a member stalled past the rebalance
// timeout becomes a zombie. Offsets are also committed to Kafka every
// LagCommitInterval, for lag monitors only.
//
// A batch that fails (handler error, store outage) is read again after a
// backoff, forever: a record its handler always refuses stops its
// partition. Claim ids inside the handler (inbox.ProcessTx) for dead
// letters, or for producers that may publish an event twice.
type Stream[TTx any] struct {
	drv driver.Driver[TTx]
	h   StreamHandler[TTx]
	cfg StreamConfig

	mu  sync.Mutex
	pos map[partKey]int64 // stored offset as last read or written; driver.OffsetNone: no row
}

// NewStream returns a Stream applying records with h through drv.
func NewStream[TTx any](drv driver.Driver[TTx], h StreamHandler[TTx], cfg StreamConfig) (*Stream[TTx], error) {
	if drv == nil || h == nil {
		return nil, &eos.ConfigError{Field: "kafka.NewStream", Reason: "nil driver or handler"}
	}
	cfg, err := cfg.WithDefaults()
	if err != nil {
		return nil, err
	}
	return &Stream[TTx]{drv: drv, h: h, cfg: cfg, pos: map[partKey]int64{}}, nil
}

// Run joins the group and applies records until ctx ends, then leaves it.
// It returns ctx's error, or the client's when it cannot be made.
func (s *Stream[TTx]) Run(ctx context.Context) error {
	opts := append(slices.Clone(s.cfg.Options),
		kgo.SeedBrokers(s.cfg.Brokers...),
		kgo.ConsumerGroup(s.cfg.Group),
		kgo.ConsumeTopics(s.cfg.Topics...),
		kgo.DisableAutoCommit(),
		kgo.BlockRebalanceOnPoll(),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.OnPartitionsAssigned(func(context.Context, *kgo.Client, map[string][]int32) {}), // gates the assign with the polls
		kgo.AdjustFetchOffsetsFn(s.seekStored),
		kgo.OnPartitionsRevoked(s.forget),
		kgo.OnPartitionsLost(s.forget),
	)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return fmt.Errorf("kafka: stream client: %w", err)
	}
	defer cl.CloseAllowingRebalance()
	retry := backoff.Policy{Initial: s.cfg.RetryInitial, Max: s.cfg.RetryMax}
	var lagCommitted time.Time
	for failures := 0; ; {
		fs := cl.PollRecords(ctx, s.cfg.MaxBatch)
		if ctx.Err() != nil {
			cl.AllowRebalance()
			return ctx.Err()
		}
		fs.EachError(func(topic string, p int32, err error) {
			s.cfg.Logger.Warn("eos kafka stream: fetch failed; the client retries",
				slog.String("topic", topic), slog.Int("partition", int(p)), slog.Any("error", err))
		})
		failed := false
		fs.EachPartition(func(ftp kgo.FetchTopicPartition) {
			if len(ftp.Records) > 0 && !s.applyPartition(ctx, cl, ftp.Topic, ftp.Partition, ftp.Records) {
				failed = true
			}
		})
		if now := time.Now(); now.Sub(lagCommitted) >= s.cfg.LagCommitInterval {
			s.commitToKafka(cl)
			lagCommitted = now
		}
		cl.AllowRebalance()
		if !failed {
			failures = 0
			continue
		}
		failures++
		if !retry.Sleep(ctx, failures) {
			return ctx.Err()
		}
	}
}

// seekStored reads the stored offsets of the partitions assigned and makes
// the client start each at its own (where one is stored).
func (s *Stream[TTx]) seekStored(ctx context.Context, offsets map[string]map[int32]kgo.Offset) (map[string]map[int32]kgo.Offset, error) {
	stored := map[string]map[int32]int64{}
	if err := s.inTx(ctx, func(ex driver.Executor) error {
		for topic := range offsets {
			o, err := ex.OffsetsGet(ctx, s.cfg.Consumer, topic)
			if err != nil {
				return err
			}
			stored[topic] = o
		}
		return nil
	}); err != nil {
		return nil, fmt.Errorf("kafka: read stored offsets: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for topic, ps := range offsets {
		for p := range ps {
			k := partKey{topic, p}
			if o, ok := stored[topic][p]; ok {
				ps[p] = kgo.NewOffset().At(o).WithEpoch(-1)
				s.pos[k] = o
			} else {
				s.pos[k] = driver.OffsetNone
			}
		}
	}
	return offsets, nil
}

// forget drops what the member knew of partitions it no longer holds.
func (s *Stream[TTx]) forget(_ context.Context, _ *kgo.Client, ps map[string][]int32) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for topic, parts := range ps {
		for _, p := range parts {
			delete(s.pos, partKey{topic, p})
		}
	}
}

// applyPartition applies the records of one partition a poll returned, in
// transactions of at most MaxBatch. On a failure it rolls back, seeks the
// partition back to what is stored, and reports false.
func (s *Stream[TTx]) applyPartition(ctx context.Context, cl *kgo.Client, topic string, p int32, recs []*kgo.Record) bool {
	k := partKey{topic, p}
	s.mu.Lock()
	from, ok := s.pos[k]
	s.mu.Unlock()
	if !ok {
		return true // no longer ours
	}
	// Records before the stored offset were applied (a poll buffered before a seek).
	recs = slices.DeleteFunc(slices.Clone(recs), func(r *kgo.Record) bool { return from != driver.OffsetNone && r.Offset < from })
	for len(recs) > 0 {
		n := min(len(recs), s.cfg.MaxBatch)
		b := StreamBatch{Topic: topic, Partition: p, From: from, To: recs[n-1].Offset + 1, Records: n}
		b.Err = s.applyBatch(ctx, b, recs[:n])
		if s.cfg.OnBatch != nil {
			s.cfg.OnBatch(b)
		}
		if b.Err != nil {
			s.cfg.Logger.Warn("eos kafka stream: batch rolled back; reading the partition again from its stored offset",
				slog.String("topic", topic), slog.Int("partition", int(p)), slog.Int64("from", from), slog.Any("error", b.Err))
			s.reseek(ctx, cl, k, recs[0].Offset)
			return false
		}
		from = b.To
		s.mu.Lock()
		if _, ok := s.pos[k]; ok {
			s.pos[k] = from
		}
		s.mu.Unlock()
		recs = recs[n:]
	}
	return true
}

// applyBatch applies the records, then moves the stored offset, in one
// transaction. The offset moves last so that the transaction holds its row
// only for the commit: of a zombie and the partition's new owner, whichever
// moves it first commits, and the other fails its compare and set (after
// waiting for the first's commit, on PostgreSQL) and rolls back.
func (s *Stream[TTx]) applyBatch(ctx context.Context, b StreamBatch, recs []*kgo.Record) error {
	msgs := make([]eos.Message, len(recs))
	for i, r := range recs {
		msgs[i] = fromRecord(r, s.cfg.ID)
	}
	tx, err := s.drv.Begin(ctx)
	if err != nil {
		return &eos.StoreError{Op: "begin", Err: err}
	}
	defer s.drv.Rollback(context.WithoutCancel(ctx), tx)
	if err := s.h(ctx, tx, msgs); err != nil {
		return fmt.Errorf("kafka: stream handler: %w", err)
	}
	err = s.drv.Executor(tx).OffsetsAdvance(ctx, s.cfg.Consumer, []driver.OffsetAdvance{{Topic: b.Topic, Partition: b.Partition, From: b.From, To: b.To}})
	if err != nil {
		if errors.Is(err, driver.ErrOffsetConflict) {
			return err
		}
		return &eos.StoreError{Op: "advance offsets", Err: err}
	}
	if err := s.drv.Commit(ctx, tx); err != nil {
		// Maybe committed: the reseek reads the stored offset again.
		return &eos.StoreError{Op: "commit", Err: err}
	}
	return nil
}

// reseek makes the client read k again from its stored offset, read anew
// (another member may have moved it, or the commit that failed may have
// landed), or from first when none is stored.
func (s *Stream[TTx]) reseek(ctx context.Context, cl *kgo.Client, k partKey, first int64) {
	var stored map[int32]int64
	err := s.inTx(ctx, func(ex driver.Executor) error {
		var err error
		stored, err = ex.OffsetsGet(ctx, s.cfg.Consumer, k.topic)
		return err
	})
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ours := s.pos[k]; !ours {
		return
	}
	at := first
	switch o, ok := stored[k.part]; {
	case err != nil:
		// Unknown: keep the position; if it is stale, the next batch's
		// compare and set fails and reads it again.
		if ctx.Err() == nil {
			s.cfg.Logger.Warn("eos kafka stream: reading the stored offset failed", slog.Any("error", err))
		}
	case ok:
		s.pos[k], at = o, o
	default:
		s.pos[k] = driver.OffsetNone
	}
	cl.SetOffsets(map[string]map[int32]kgo.EpochOffset{k.topic: {k.part: {Epoch: -1, Offset: at}}})
}

// commitToKafka commits the stored offsets of the partitions held to
// Kafka, asynchronously: for lag monitors only, the database decides.
func (s *Stream[TTx]) commitToKafka(cl *kgo.Client) {
	s.mu.Lock()
	offsets := map[string]map[int32]kgo.EpochOffset{}
	for k, o := range s.pos {
		if o >= 0 {
			addOffset(offsets, k, o)
		}
	}
	s.mu.Unlock()
	if len(offsets) > 0 {
		cl.CommitOffsets(context.Background(), offsets, nil)
	}
}

func (s *Stream[TTx]) inTx(ctx context.Context, fn func(driver.Executor) error) error {
	tx, err := s.drv.Begin(ctx)
	if err != nil {
		return err
	}
	defer s.drv.Rollback(context.WithoutCancel(ctx), tx)
	if err := fn(s.drv.Executor(tx)); err != nil {
		return err
	}
	return s.drv.Commit(ctx, tx)
}
