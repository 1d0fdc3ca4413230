package kafka

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/eoskit/eos"
	"github.com/eoskit/eos/internal/config"
	"github.com/eoskit/eos/outbox"
)

// PublisherConfig configures a Publisher. Defaults are applied by
// [NewPublisher].
type PublisherConfig struct {
	// ProduceTimeout bounds how long one Publish waits for the brokers'
	// acks; past it, Publish reports the messages acknowledged so far and
	// the relay retries the rest (a duplicate that lands is suppressed by
	// the consumer's inbox). Records not yet sent when it expires are not
	// sent. Default 10s.
	ProduceTimeout time.Duration
	// Test holds the failpoints (FailPublishAckLost), for tests and fault
	// injection.
	Test eos.TestConfig
}

// FailPublishAckLost is evaluated in Publish once the brokers have
// answered the produce and acknowledged at least one record. An error makes
// the Publisher behave as if the acks had been lost on the way: the records
// are stored, Publish reports none acknowledged (with the error), and the
// relay publishes them again. Kafka has no dedupe by id, so the copies land
// too, and the consumer's inbox suppresses them.
const FailPublishAckLost = "kafka.publish_ack_lost"

// DefaultProduceTimeout is the default of PublisherConfig.ProduceTimeout.
const DefaultProduceTimeout = 10 * time.Second

// WithDefaults returns a copy of c with the defaults applied, or a
// *eos.ConfigError naming the first invalid field.
func (c PublisherConfig) WithDefaults() (PublisherConfig, error) {
	err := config.Duration("kafka.PublisherConfig.ProduceTimeout", &c.ProduceTimeout, DefaultProduceTimeout)
	return c, err
}

// Publisher produces eos messages to Kafka through an idempotent franz-go
// client. It implements outbox.Publisher and is safe for concurrent use.
//
// The idempotent producer is what keeps the client's own retries from
// storing a record twice or out of order within a partition; it cannot
// drop a re-publish of the relay (after a relay crash between produce and
// marking rows sent), as JetStream's id dedupe does: such a copy lands, and
// the consumer's inbox suppresses it by its Eos-Id.
type Publisher struct {
	cl  *kgo.Client
	cfg PublisherConfig
}

var _ outbox.Publisher = (*Publisher)(nil)

// NewPublisher returns a Publisher over cl, which the caller owns and
// closes. It refuses a client with idempotent writes disabled
// (kgo.DisableIdempotentWrite): without them a retry of the client can
// store a record twice and reorder a key's records.
func NewPublisher(cl *kgo.Client, cfg PublisherConfig) (*Publisher, error) {
	if cl == nil {
		return nil, &eos.ConfigError{Field: "kafka.NewPublisher client", Reason: "nil"}
	}
	if disabled, _ := cl.OptValue(kgo.DisableIdempotentWrite).(bool); disabled {
		return nil, &eos.ConfigError{Field: "kafka.NewPublisher client", Reason: "idempotent writes disabled (kgo.DisableIdempotentWrite): a client retry could duplicate or reorder a key's records"}
	}
	cfg, err := cfg.WithDefaults()
	if err != nil {
		return nil, err
	}
	return &Publisher{cl: cl, cfg: cfg}, nil
}

// Publish implements outbox.Publisher. It hands every message to the
// client at once (ProduceSync: the client batches them per partition and,
// the caller waiting, does not linger) and waits at most ProduceTimeout for
// the acks. When the wait times out it reports none acknowledged: the
// client tells the outcome of each record only once all are done, and the
// relay's retry of records that were stored lands as copies the inbox
// suppresses.
//
// Messages of one key go to one partition in publish order; the idempotent
// producer keeps that order through the client's retries. A failure that
// ends a Publish early (a timeout, an unpublishable message) can leave a
// later message of the same key stored before the failed one is retried:
// within ErrUnpublishable the relay parks the key, so only a timeout can
// reorder, and the inbox then applies the key's messages in arrival order.
func (p *Publisher) Publish(ctx context.Context, msgs []outbox.Envelope) (int, error) {
	if len(msgs) == 0 {
		return 0, nil
	}
	ctx, cancel := context.WithTimeout(ctx, p.cfg.ProduceTimeout)
	defer cancel()
	recs := make([]*kgo.Record, len(msgs))
	index := make(map[*kgo.Record]int, len(msgs))
	for i, e := range msgs {
		recs[i] = toRecord(e.Topic, e.Message)
		index[recs[i]] = i
	}
	// Buffered: the produce never waits for a Publish that returned.
	done := make(chan kgo.ProduceResults, 1)
	go func() { done <- p.cl.ProduceSync(ctx, recs...) }()
	errs := make([]error, len(msgs))
	pending := make([]bool, len(msgs))
	select {
	case res := <-done:
		acked := false
		for _, r := range res {
			errs[index[r.Record]] = r.Err
			acked = acked || r.Err == nil
		}
		if acked {
			if err := p.cfg.Test.Failpoints.Eval(FailPublishAckLost); err != nil {
				return 0, classify(msgs[0].Topic, err)
			}
		}
	case <-ctx.Done():
		for i := range pending {
			pending[i] = true
		}
		return report(msgs, errs, pending, ctx.Err())
	}
	return report(msgs, errs, pending, nil)
}

// report counts the messages acknowledged from the first and, when that is
// not all, returns a *outbox.PublishError about the first one that was not.
func report(msgs []outbox.Envelope, errs []error, pending []bool, waitErr error) (int, error) {
	acked := 0
	for acked < len(msgs) && !pending[acked] && errs[acked] == nil {
		acked++
	}
	if acked == len(msgs) {
		return acked, nil
	}
	cause := errs[acked]
	if pending[acked] {
		cause = fmt.Errorf("no ack within the produce timeout: %w", waitErr)
	}
	pe := &outbox.PublishError{Err: classify(msgs[acked].Topic, cause)}
	for i := acked + 1; i < len(msgs); i++ {
		if !pending[i] && errs[i] == nil {
			pe.AlsoAcked = append(pe.AlsoAcked, i)
		}
	}
	return acked, pe
}

// classify wraps err in outbox.ErrUnpublishable when no retry can publish
// the record: too large for the broker, a topic name it refuses, a topic
// that is not there after the client's own retries, a record the broker
// rejects or a topic the client may not write. The relay parks such a row
// until an operator acts; anything else (timeouts, leader changes, lost
// connections) is retried.
func classify(topic string, err error) error {
	for _, perm := range []error{
		kerr.MessageTooLarge, kerr.RecordListTooLarge, kerr.InvalidTopicException,
		kerr.UnknownTopicOrPartition, kerr.InvalidRecord, kerr.TopicAuthorizationFailed,
	} {
		if errors.Is(err, perm) {
			return fmt.Errorf("kafka: produce to %q: %w: %w", topic, outbox.ErrUnpublishable, err)
		}
	}
	return fmt.Errorf("kafka: produce to %q: %w", topic, err)
}
