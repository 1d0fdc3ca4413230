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
	"github.com/eoskit/eos/internal/backoff"
	"github.com/eoskit/eos/internal/config"
	"github.com/eoskit/eos/outbox"
)

// TransformFunc turns the records of one poll (several partitions, each in
// offset order) into the records to produce. It must not have effects
// outside Kafka: an aborted transaction runs it again on the same records.
type TransformFunc func(ctx context.Context, in []eos.Message) ([]outbox.Envelope, error)

// PipelineConfig configures a Pipeline. Defaults are applied by
// [NewPipeline].
type PipelineConfig struct {
	// Brokers, Group and Topics are the consumer group's. Required.
	Brokers []string
	Group   string
	Topics  []string
	// TransactionalID names this member's transactional producer. Give
	// each member its own, the same across its restarts: a producer that
	// starts with an id fences the one that had it (its transaction can
	// no longer commit). Required.
	TransactionalID string
	// Options are more client options (TLS, SASL, timeouts). The
	// Pipeline's own (group, topics, transactional id, read_committed) win.
	Options []kgo.Opt
	// MaxBatch is the most records consumed per transaction. Default 256.
	MaxBatch int
	// ID gives each consumed record its eos id. Default: the Eos-Id header.
	ID IDFunc
	// RetryInitial and RetryMax bound the backoff after an aborted
	// transaction. Default 10ms doubling to 5s.
	RetryInitial, RetryMax time.Duration
	// OnBatch, if set, is called after each transaction with its outcome.
	OnBatch func(PipelineBatch)
	// Logger receives aborts. Default slog.Default().
	Logger *slog.Logger
}

// PipelineBatch is the outcome of one transaction of a Pipeline.
type PipelineBatch struct {
	In, Out   int // records consumed, records produced
	Committed bool
	// Err is why it aborted: the transform's error, a produce error, or
	// nil when a rebalance (or a fence) made the commit impossible.
	Err error
}

// WithDefaults returns a copy of c with the defaults applied, or a
// *eos.ConfigError naming the first invalid field.
func (c PipelineConfig) WithDefaults() (PipelineConfig, error) {
	if err := groupDefaults("kafka.PipelineConfig.", c.Brokers, c.Group, c.Topics, &c.ID, &c.Logger); err != nil {
		return c, err
	}
	if c.TransactionalID == "" {
		return c, &eos.ConfigError{Field: "kafka.PipelineConfig.TransactionalID", Reason: "empty"}
	}
	if err := config.Int("kafka.PipelineConfig.MaxBatch", &c.MaxBatch, DefaultStreamMaxBatch, 1<<20); err != nil {
		return c, err
	}
	return c, config.Durations("kafka.PipelineConfig.",
		config.DurationField{Name: "RetryInitial", P: &c.RetryInitial, Default: DefaultRetryInitial},
		config.DurationField{Name: "RetryMax", P: &c.RetryMax, Default: DefaultRetryMax})
}

// Pipeline is Kafka → Kafka consume-transform-produce in Kafka
// transactions (franz-go's GroupTransactSession), for pipelines that never
// touch a database: the records produced and the consumed offsets commit
// together, or neither does. Consumers of its output read with
// read_committed isolation (the Subscriber and Stream do) and see each
// transaction's records once, or not at all.
//
// A rebalance during a transaction aborts it (the session's choice over
// holding the rebalance), and an aborted transaction rewinds the member to
// the last committed offsets: the same records are transformed again.
type Pipeline struct {
	fn  TransformFunc
	cfg PipelineConfig
}

// NewPipeline returns a Pipeline applying fn.
func NewPipeline(fn TransformFunc, cfg PipelineConfig) (*Pipeline, error) {
	if fn == nil {
		return nil, &eos.ConfigError{Field: "kafka.NewPipeline fn", Reason: "nil"}
	}
	cfg, err := cfg.WithDefaults()
	if err != nil {
		return nil, err
	}
	return &Pipeline{fn: fn, cfg: cfg}, nil
}

// Run joins the group and transforms until ctx ends (returning its error)
// or a transaction fails in a way the session cannot go on from (the
// producer was fenced by another with its TransactionalID, or its retries
// ran out).
func (p *Pipeline) Run(ctx context.Context) error {
	sess, err := kgo.NewGroupTransactSession(append(slices.Clone(p.cfg.Options),
		kgo.SeedBrokers(p.cfg.Brokers...),
		kgo.ConsumerGroup(p.cfg.Group),
		kgo.ConsumeTopics(p.cfg.Topics...),
		kgo.TransactionalID(p.cfg.TransactionalID),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
	)...)
	if err != nil {
		return fmt.Errorf("kafka: pipeline session: %w", err)
	}
	defer sess.Close()
	retry := backoff.Policy{Initial: p.cfg.RetryInitial, Max: p.cfg.RetryMax}
	for aborts := 0; ; {
		fs := sess.PollRecords(ctx, p.cfg.MaxBatch)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		recs := fs.Records()
		if len(recs) == 0 {
			continue
		}
		b, err := p.transact(ctx, sess, recs)
		if p.cfg.OnBatch != nil {
			p.cfg.OnBatch(b)
		}
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("kafka: pipeline transaction: %w", err)
		}
		if b.Committed {
			aborts = 0
			continue
		}
		aborts++
		p.cfg.Logger.Warn("eos kafka pipeline: transaction aborted; the records are transformed again",
			slog.Int("records", b.In), slog.Any("error", b.Err))
		if !retry.Sleep(ctx, aborts) {
			return ctx.Err()
		}
	}
}

// transact runs one transaction over recs: transform, produce, and End,
// which commits the offsets with the records or aborts both. The error is
// End's, which the session cannot go on from.
func (p *Pipeline) transact(ctx context.Context, sess *kgo.GroupTransactSession, recs []*kgo.Record) (PipelineBatch, error) {
	b := PipelineBatch{In: len(recs)}
	if err := sess.Begin(); err != nil {
		return b, err
	}
	in := make([]eos.Message, len(recs))
	for i, r := range recs {
		in[i] = fromRecord(r, p.cfg.ID)
	}
	out, err := p.fn(ctx, in)
	if err != nil {
		b.Err = fmt.Errorf("kafka: transform: %w", err)
	} else {
		b.Out = len(out)
		b.Err = produceAll(ctx, sess, out)
	}
	committed, err := sess.End(ctx, kgo.TransactionEndTry(b.Err == nil))
	b.Committed = committed && b.Err == nil
	return b, err
}

// produceAll produces out in the session's transaction and waits until
// every record is acknowledged or failed, so that the caller commits only
// what was all produced.
func produceAll(ctx context.Context, sess *kgo.GroupTransactSession, out []outbox.Envelope) error {
	var (
		mu   sync.Mutex
		errs error
	)
	for _, e := range out {
		sess.Produce(ctx, toRecord(e.Topic, e.Message), func(_ *kgo.Record, err error) {
			mu.Lock()
			errs = errors.Join(errs, err)
			mu.Unlock()
		})
	}
	if err := sess.Client().Flush(ctx); err != nil {
		return fmt.Errorf("kafka: produce: %w", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if errs != nil {
		return fmt.Errorf("kafka: produce: %w", errs)
	}
	return nil
}
