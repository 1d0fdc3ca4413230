package kafka_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/eoskit/eos/internal/testenv"
	"github.com/eoskit/eos/transport/kafka"
)

// GroupStats counts what the group has not committed: everything for a
// group that never committed, the rest once a member acked some.
func TestGroupStats(t *testing.T) {
	b := newFake(t)
	topic, group := b.topic(t, 3), testenv.Name("g-")
	const n, k = 60, 25
	publishN(t, b, topic, n, 12)
	stats := kafka.GroupStats(b.client(t), group, topic, topic)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	check := func(when string, want int64) {
		t.Helper()
		st, err := stats(ctx)
		if err != nil {
			t.Fatalf("%s: %v", when, err)
		}
		if st.Pending != want || st.AckPending != 0 {
			t.Errorf("%s: %+v, want Pending %d, AckPending 0", when, st, want)
		}
	}
	check("unknown group", n)

	s := b.subscriber(t, group, topic, kafka.SubscriberConfig{})
	for acked := 0; acked < k; {
		for _, d := range fetch(t, s, k-acked) {
			if err := d.Ack(ctx); err != nil {
				t.Fatal(err)
			}
			acked++
		}
	}
	s.Close() // commits what was acked before it returns
	check("after the group committed", n-k)

	bad := kafka.GroupStats(b.client(t), group, topic, "no-such-topic")
	if _, err := bad(ctx); !errors.Is(err, kerr.UnknownTopicOrPartition) || !strings.Contains(err.Error(), group) {
		t.Errorf("unknown topic: %v; want UnknownTopicOrPartition naming the group", err)
	}
}
