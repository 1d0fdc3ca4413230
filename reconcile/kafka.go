package reconcile

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/eoskit/eos/transport/kafka"
)

// Bounds of KafkaSource's fetches.
const (
	// kafkaFetchBytes bounds the record bytes one fetch asks for (a
	// record batch larger than it still comes whole).
	kafkaFetchBytes = 1 << 20
	// kafkaFetchWaitMillis is how long the broker may wait for a first
	// byte; there always is one below the scan's end, so it only bounds a
	// broker that has none to give.
	kafkaFetchWaitMillis = 500
	// kafkaRetries bounds the fetches of one position in a row that fail
	// with a retriable error (a leader moved) or return nothing.
	kafkaRetries = 5
)

// KafkaSource reads a Kafka topic, every partition, as a consumer with
// read_committed isolation sees it: records of aborted transactions and
// transaction markers are skipped. An entry's id is given by ID (by
// default the Eos-Id header, as transport/kafka's Publisher sets it), its
// time the record's timestamp.
//
// The range of each partition ends at its last stable offset when the scan
// starts: records produced afterwards, and records of a transaction still
// open then, are not read, so a run sees a fixed range however fast
// producers go. (The last stable offset is the high watermark unless a
// transaction is open; below it every transaction is decided, so no read
// waits for one.) A partition is read until the fetch position reaches that
// end, not until a record of the end's offset is seen: offsets skip
// transaction markers, aborted records and compacted records, and the
// last offset before the end may be any of them.
//
// Scan reads the partitions one after another, in partition order, with
// fetch requests of its own sent to each partition's leader, each asking
// for at most 1 MiB of record batches (a larger batch comes whole): memory
// is bounded by one fetch and one page whatever the topic's size. Records
// past the end that a fetch returns are dropped. A partition created after
// the scan started is not read.
type KafkaSource struct {
	// Client is the caller's client, which Scan does not close. Scan sends
	// it only requests of its own (metadata, list offsets, fetch), never
	// polls it, joins no group and commits nothing: a client that also
	// consumes keeps its positions. Its options (seed brokers, TLS, SASL)
	// are the ones used.
	Client *kgo.Client
	// Topic is the topic read. Required.
	Topic string
	// From and To bound the range by record timestamp (inclusive, at the
	// timestamp's millisecond precision); zero: unbounded. A partition is
	// read from the first offset the broker lists at or after From to the
	// first it lists after To, and the records outside [From, To] there
	// are skipped: a record whose timestamp is out of order with its
	// neighbours (producer CreateTime) is in range only between those
	// offsets.
	From, To time.Time
	// ID returns a record's id, "" when it has none. Default
	// kafka.HeaderIDFunc(kafka.HeaderID).
	ID kafka.IDFunc
}

// Name implements Source.
func (s KafkaSource) Name() string { return "kafka:" + s.Topic }

// Bounded implements [Bounded]: the range ends before the topic's end when
// To is set.
func (s KafkaSource) Bounded() bool { return !s.To.IsZero() }

// kafkaPart is a partition's range: records at offsets [next, end).
type kafkaPart struct {
	id        int32
	next, end int64
}

// Scan implements Source.
func (s KafkaSource) Scan(ctx context.Context, page int, fn func([]Entry) error) error {
	fail := func(err error) error { return &SourceError{Source: s.Name(), Err: err} }
	if s.Client == nil {
		return fail(errors.New("KafkaSource.Client is nil"))
	}
	if s.Topic == "" {
		return fail(errors.New("KafkaSource.Topic is empty"))
	}
	idOf := s.ID
	if idOf == nil {
		idOf = kafka.HeaderIDFunc(kafka.HeaderID)
	}
	meta, err := s.metadata(ctx)
	if err != nil {
		return fail(err)
	}
	parts, err := s.ranges(ctx, meta)
	if err != nil {
		return fail(err)
	}
	buf := make([]Entry, 0, page)
	dec := kgo.DefaultDecompressor()
	for _, p := range parts {
		for p.next < p.end {
			recs, err := s.fetch(ctx, &meta, &p, dec)
			if err != nil {
				return fail(fmt.Errorf("partition %d at offset %d: %w", p.id, p.next, err))
			}
			for _, r := range recs {
				if r.Offset >= p.end {
					break
				}
				if (!s.From.IsZero() && r.Timestamp.Before(s.From)) || (!s.To.IsZero() && r.Timestamp.After(s.To)) {
					continue
				}
				buf = append(buf, Entry{ID: idOf(r), At: r.Timestamp})
				if len(buf) == page {
					if err := fn(buf); err != nil {
						return err
					}
					buf = buf[:0]
				}
			}
		}
	}
	if len(buf) > 0 {
		return fn(buf)
	}
	return nil
}

// kafkaMeta is what Scan knows of the topic's partitions.
type kafkaMeta struct {
	topicID [16]byte
	leaders map[int32]int32 // partition → leader broker
}

// metadata asks a broker for the topic's id and partition leaders,
// bypassing the client's metadata cache.
func (s KafkaSource) metadata(ctx context.Context) (kafkaMeta, error) {
	req := kmsg.NewPtrMetadataRequest()
	rt := kmsg.NewMetadataRequestTopic()
	rt.Topic = kmsg.StringPtr(s.Topic)
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(ctx, s.Client)
	if err != nil {
		return kafkaMeta{}, err
	}
	for _, t := range resp.Topics {
		if t.Topic == nil || *t.Topic != s.Topic {
			continue
		}
		if err := kerr.ErrorForCode(t.ErrorCode); err != nil {
			return kafkaMeta{}, err
		}
		m := kafkaMeta{topicID: t.TopicID, leaders: make(map[int32]int32, len(t.Partitions))}
		for _, p := range t.Partitions {
			m.leaders[p.Partition] = p.Leader
		}
		return m, nil
	}
	return kafkaMeta{}, kerr.UnknownTopicOrPartition
}

// ranges lists each partition's range, in partition order, leaving out
// the empty ones.
func (s KafkaSource) ranges(ctx context.Context, meta kafkaMeta) ([]kafkaPart, error) {
	adm := kadm.NewClient(s.Client)
	list := func(ls func() (kadm.ListedOffsets, error)) (map[int32]int64, error) {
		l, err := ls()
		if err == nil {
			err = l.Error()
		}
		if err != nil {
			return nil, err
		}
		out := make(map[int32]int64, len(meta.leaders))
		l.Each(func(o kadm.ListedOffset) {
			if o.Topic == s.Topic {
				out[o.Partition] = o.Offset
			}
		})
		return out, nil
	}
	starts, err := list(func() (kadm.ListedOffsets, error) { return adm.ListStartOffsets(ctx, s.Topic) })
	if err != nil {
		return nil, fmt.Errorf("log start offsets: %w", err)
	}
	ends, err := list(func() (kadm.ListedOffsets, error) { return adm.ListCommittedOffsets(ctx, s.Topic) })
	if err != nil {
		return nil, fmt.Errorf("last stable offsets: %w", err)
	}
	var froms, tos map[int32]int64
	if !s.From.IsZero() {
		if froms, err = list(func() (kadm.ListedOffsets, error) { return adm.ListOffsetsAfterMilli(ctx, s.From.UnixMilli(), s.Topic) }); err != nil {
			return nil, fmt.Errorf("offsets at %v: %w", s.From, err)
		}
	}
	if !s.To.IsZero() {
		// The first offset of a record after To's millisecond, or the
		// high watermark when there is none.
		if tos, err = list(func() (kadm.ListedOffsets, error) { return adm.ListOffsetsAfterMilli(ctx, s.To.UnixMilli()+1, s.Topic) }); err != nil {
			return nil, fmt.Errorf("offsets after %v: %w", s.To, err)
		}
	}
	parts := make([]kafkaPart, 0, len(meta.leaders))
	for _, id := range slices.Sorted(maps.Keys(meta.leaders)) {
		start, ok1 := starts[id]
		end, ok2 := ends[id]
		if !ok1 || !ok2 {
			return nil, fmt.Errorf("no offsets listed for partition %d", id)
		}
		if o, ok := froms[id]; ok && o > start {
			start = o
		}
		if o, ok := tos[id]; ok && o < end {
			end = o
		}
		if start < end {
			parts = append(parts, kafkaPart{id: id, next: start, end: end})
		}
	}
	return parts, nil
}

// fetch reads the records at p.next and after from p's leader, moving
// p.next past what it read (markers and aborted records included). It
// retries a fetch that fails with a retriable error (after asking again
// who leads) or returns nothing, up to kafkaRetries times in a row.
func (s KafkaSource) fetch(ctx context.Context, meta *kafkaMeta, p *kafkaPart, dec kgo.Decompressor) ([]*kgo.Record, error) {
	var last error
	for try := range kafkaRetries {
		if try > 0 {
			t := time.NewTimer(time.Duration(try) * 100 * time.Millisecond)
			select {
			case <-ctx.Done():
				t.Stop()
				return nil, ctx.Err()
			case <-t.C:
			}
		}
		recs, err := s.fetchOnce(ctx, *meta, p, dec)
		switch {
		case err == nil && recs == nil:
			last = errors.New("a fetch returned nothing below the end offset")
			continue
		case err == nil:
			return recs, nil
		case errors.Is(err, kerr.OffsetOutOfRange):
			// The log start moved past p.next (retention), or the log
			// was truncated below the end (an unclean leader election).
			if err := s.skipGone(ctx, p); err != nil {
				return nil, err
			}
			return []*kgo.Record{}, nil
		case ctx.Err() != nil:
			return nil, ctx.Err()
		case !kerr.IsRetriable(err):
			return nil, err
		}
		last = err
		if m, merr := s.metadata(ctx); merr == nil {
			*meta = m
		}
	}
	return nil, last
}

// fetchOnce sends one fetch of p. It returns nil records and a nil error
// when the fetch moved nothing, and a non-nil empty slice when it moved
// p.next past records it does not return (markers, aborted records).
func (s KafkaSource) fetchOnce(ctx context.Context, meta kafkaMeta, p *kafkaPart, dec kgo.Decompressor) ([]*kgo.Record, error) {
	leader, ok := meta.leaders[p.id]
	if !ok || leader < 0 {
		return nil, kerr.LeaderNotAvailable
	}
	req := kmsg.NewPtrFetchRequest()
	req.MaxWaitMillis = kafkaFetchWaitMillis
	req.MinBytes = 1
	req.MaxBytes = kafkaFetchBytes
	req.IsolationLevel = 1 // read_committed
	rt := kmsg.NewFetchRequestTopic()
	rt.Topic, rt.TopicID = s.Topic, meta.topicID // the version sent uses one of them
	rp := kmsg.NewFetchRequestTopicPartition()
	rp.Partition, rp.FetchOffset, rp.PartitionMaxBytes = p.id, p.next, kafkaFetchBytes
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	kresp, err := s.Client.Broker(int(leader)).RetriableRequest(ctx, req)
	if err != nil {
		return nil, err
	}
	resp := kresp.(*kmsg.FetchResponse)
	if err := kerr.ErrorForCode(resp.ErrorCode); err != nil {
		return nil, err
	}
	for _, t := range resp.Topics {
		for i := range t.Partitions {
			if t.Partitions[i].Partition != p.id {
				continue
			}
			fp, next := kgo.ProcessFetchPartition(kgo.ProcessFetchPartitionOpts{
				Offset:         p.next,
				IsolationLevel: kgo.ReadCommitted(),
				Topic:          s.Topic,
				Partition:      p.id,
			}, &t.Partitions[i], dec, nil)
			if fp.Err != nil {
				return nil, fp.Err
			}
			if next <= p.next {
				return nil, nil
			}
			p.next = next
			if fp.Records == nil {
				return []*kgo.Record{}, nil
			}
			return fp.Records, nil
		}
	}
	return nil, nil
}

// skipGone moves p past offsets the partition no longer has: to the log
// start when retention removed p.next, or to the end when the log was
// truncated below p.end.
func (s KafkaSource) skipGone(ctx context.Context, p *kafkaPart) error {
	adm := kadm.NewClient(s.Client)
	starts, err := adm.ListStartOffsets(ctx, s.Topic)
	if err == nil {
		err = starts.Error()
	}
	if err != nil {
		return err
	}
	ends, err := adm.ListEndOffsets(ctx, s.Topic)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		return err
	}
	start, ok1 := starts.Lookup(s.Topic, p.id)
	end, ok2 := ends.Lookup(s.Topic, p.id)
	switch {
	case !ok1 || !ok2:
		return fmt.Errorf("offset out of range and no offsets listed")
	case start.Offset > p.next:
		p.next = start.Offset
	case end.Offset <= p.next:
		p.end = p.next
	default:
		return fmt.Errorf("offset out of range, yet within the partition's [%d, %d)", start.Offset, end.Offset)
	}
	return nil
}
