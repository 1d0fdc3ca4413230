package kafka

import (
	"context"
	"errors"
	"fmt"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/eoskit/eos"
)

// TopicConfig is a topic EnsureTopic creates.
type TopicConfig struct {
	// Name of the topic. Required.
	Name string
	// Partitions is the partition count. Default 1. Order holds per
	// partition, so per key: more partitions spread keys over more
	// consumers of a group.
	Partitions int32
	// ReplicationFactor; 0 takes the broker's default.
	ReplicationFactor int16
}

// EnsureTopic creates the topic unless it exists, and reports whether it
// created it. An existing topic is left as it is, partition count included.
func EnsureTopic(ctx context.Context, cl *kgo.Client, tc TopicConfig) (bool, error) {
	if tc.Name == "" {
		return false, &eos.ConfigError{Field: "kafka.TopicConfig.Name", Reason: "empty"}
	}
	if tc.Partitions == 0 {
		tc.Partitions = 1
	}
	if tc.Partitions < 0 || tc.ReplicationFactor < 0 {
		return false, &eos.ConfigError{Field: "kafka.TopicConfig", Reason: "negative partitions or replication factor"}
	}
	rf := tc.ReplicationFactor
	if rf == 0 {
		rf = -1 // the broker's default
	}
	res, err := kadm.NewClient(cl).CreateTopic(ctx, tc.Partitions, rf, nil, tc.Name)
	if err == nil {
		err = res.Err
	}
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, kerr.TopicAlreadyExists):
		return false, nil
	default:
		return false, fmt.Errorf("kafka: create topic %q: %w", tc.Name, err)
	}
}
