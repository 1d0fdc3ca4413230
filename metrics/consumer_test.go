package metrics_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/eoskit/eos"
	"github.com/eoskit/eos/internal/testjs"
	"github.com/eoskit/eos/metrics"
	"github.com/eoskit/eos/transport/natsjs"
)

var consumerNames = []string{"eos_consumer_pending_messages", "eos_consumer_ack_pending_messages", "eos_consumer_stats_errors_total"}

func consumerExpect(pending, ackPending, errs int) string {
	return fmt.Sprintf(`
# HELP eos_consumer_ack_pending_messages Messages delivered to the consumer and not acknowledged yet: in flight, or waiting for redelivery.
# TYPE eos_consumer_ack_pending_messages gauge
eos_consumer_ack_pending_messages{consumer="orders",transport="natsjs"} %d
# HELP eos_consumer_pending_messages Messages the broker holds for the consumer and has not delivered yet: its lag.
# TYPE eos_consumer_pending_messages gauge
eos_consumer_pending_messages{consumer="orders",transport="natsjs"} %d
# HELP eos_consumer_stats_errors_total Reads of a broker consumer's lag for a scrape that failed or timed out; the gauges were left out.
# TYPE eos_consumer_stats_errors_total counter
eos_consumer_stats_errors_total{consumer="orders",transport="natsjs"} %d
`, ackPending, pending, errs)
}

// TestWatchConsumer watches a JetStream consumer on an embedded server:
// five messages waiting, two fetched and not acknowledged, then one
// acknowledged; then the stream deleted, so that the read fails.
func TestWatchConsumer(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	js, _ := testjs.Start(t)
	if _, _, err := natsjs.EnsureStream(ctx, js, natsjs.StreamConfig{Name: "S", Subjects: []string{"s.>"}}); err != nil {
		t.Fatal(err)
	}
	// Published before the consumer exists: its pending count is then
	// exact from its creation (the server updates it for later publishes
	// asynchronously).
	for i := range 5 {
		if _, err := js.Publish(ctx, fmt.Sprintf("s.%d", i), []byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	cons, _, err := natsjs.EnsureConsumer(ctx, js, natsjs.ConsumerConfig{Stream: "S", Durable: "orders", AckWait: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	m, err := metrics.New(reg, metrics.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.WatchConsumer("orders", natsjs.TransportName, natsjs.ConsumerStats(cons)); err != nil {
		t.Fatal(err)
	}
	check := func(step, want string) {
		t.Helper()
		if err := testutil.GatherAndCompare(reg, strings.NewReader(want), consumerNames...); err != nil {
			t.Errorf("%s: %v", step, err)
		}
	}
	check("published", consumerExpect(5, 0, 0))
	batch, err := cons.FetchNoWait(2)
	if err != nil {
		t.Fatal(err)
	}
	var got []jetstream.Msg
	for msg := range batch.Messages() {
		got = append(got, msg)
	}
	if len(got) != 2 {
		t.Fatalf("fetched %d, want 2", len(got))
	}
	check("two in flight", consumerExpect(3, 2, 0))
	if err := got[0].DoubleAck(ctx); err != nil {
		t.Fatal(err)
	}
	check("one acked", consumerExpect(3, 1, 0))
	if err := js.DeleteStream(ctx, "S"); err != nil {
		t.Fatal(err)
	}
	if err := testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP eos_consumer_stats_errors_total Reads of a broker consumer's lag for a scrape that failed or timed out; the gauges were left out.
# TYPE eos_consumer_stats_errors_total counter
eos_consumer_stats_errors_total{consumer="orders",transport="natsjs"} 1
`), consumerNames...); err != nil {
		t.Errorf("stream gone: %v", err)
	}
}

func TestWatchConsumerErrors(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := metrics.New(reg, metrics.Config{})
	if err != nil {
		t.Fatal(err)
	}
	ok := func(context.Context) (metrics.ConsumerStats, error) { return metrics.ConsumerStats{Pending: 1}, nil }
	var ce *eos.ConfigError
	for _, c := range []struct {
		consumer, transport string
		stats               metrics.ConsumerStatsFunc
	}{{"", "natsjs", ok}, {"orders", "", ok}, {"orders", "natsjs", nil}} {
		if err := m.WatchConsumer(c.consumer, c.transport, c.stats); !errors.As(err, &ce) {
			t.Errorf("WatchConsumer(%q, %q, nil=%v): %v, want a *eos.ConfigError", c.consumer, c.transport, c.stats == nil, err)
		}
	}
	if err := m.WatchConsumer("orders", "natsjs", ok); err != nil {
		t.Fatal(err)
	}
	if err := m.WatchConsumer("orders", "natsjs", ok); !errors.Is(err, metrics.ErrRegister) {
		t.Errorf("second WatchConsumer: %v, want ErrRegister", err)
	}
	if err := m.WatchConsumer("payments", "natsjs", ok); err != nil {
		t.Errorf("another consumer: %v", err)
	}
}
