package kafka

import (
	"context"
	"errors"
	"fmt"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/eoskit/eos/inbox"
)

// TransportName is the transport label this package's consumers carry in
// eos's metrics (metrics.Metrics.WatchConsumer).
const TransportName = "kafka"

// GroupStats returns a function reading the lag of the consumer group
// group on topics, through cl (which the caller owns and closes). Pass it
// to metrics.Metrics.WatchConsumer.
//
// Pending is the sum over the topics' partitions of the high watermark
// minus the group's committed offset, or minus the log start offset where
// the group has committed nothing (an unknown group lags by every record
// the topics hold). A committed offset below the log start (its records
// expired) counts from the log start; one above the high watermark counts
// 0. It counts offsets, not records: the markers of transactions and the
// records of aborted ones count too, as do those of open transactions,
// which a read_committed member cannot read yet.
//
// AckPending is always 0: Kafka knows what a group committed, not what its
// members hold polled and unacked (the Subscriber keeps that in memory).
//
// Each call asks the brokers again, with no caching: the partitions'
// start and end offsets (a metadata and a ListOffsets request each, the
// latter per partition leader) and the group's offsets (an OffsetFetch to
// its coordinator). Errors, a topic that does not exist among them, are
// wrapped with the group's name.
func GroupStats(cl *kgo.Client, group string, topics ...string) func(ctx context.Context) (inbox.SourceStats, error) {
	adm := kadm.NewClient(cl)
	return func(ctx context.Context) (inbox.SourceStats, error) {
		pending, err := groupPending(ctx, adm, group, topics)
		if err != nil {
			return inbox.SourceStats{}, fmt.Errorf("kafka: lag of group %q: %w", group, err)
		}
		return inbox.SourceStats{Pending: pending}, nil
	}
}

func groupPending(ctx context.Context, adm *kadm.Client, group string, topics []string) (int64, error) {
	if len(topics) == 0 {
		return 0, errors.New("no topics")
	}
	ends, err := adm.ListEndOffsets(ctx, topics...)
	if err != nil {
		return 0, fmt.Errorf("end offsets: %w", err)
	}
	if err := ends.Error(); err != nil {
		return 0, fmt.Errorf("end offsets: %w", err)
	}
	starts, err := adm.ListStartOffsets(ctx, topics...)
	if err != nil {
		return 0, fmt.Errorf("start offsets: %w", err)
	}
	if err := starts.Error(); err != nil {
		return 0, fmt.Errorf("start offsets: %w", err)
	}
	committed, err := adm.FetchOffsets(ctx, group)
	if errors.Is(err, kerr.GroupIDNotFound) {
		// Kafka answers with no offsets; some brokers (kfake) with this.
		committed, err = nil, nil
	}
	if err != nil {
		return 0, fmt.Errorf("committed offsets: %w", err)
	}
	var pending int64
	for topic, ps := range ends { // each topic once, however often it was named
		for p, end := range ps {
			start, ok := starts.Lookup(topic, p)
			if !ok {
				return 0, fmt.Errorf("topic %q partition %d: no start offset listed", topic, p)
			}
			from := start.Offset
			if c, ok := committed.Lookup(topic, p); ok {
				if c.Err != nil {
					return 0, fmt.Errorf("committed offset of topic %q partition %d: %w", topic, p, c.Err)
				}
				from = max(from, c.At)
			}
			pending += max(end.Offset-from, 0)
		}
	}
	return pending, nil
}
