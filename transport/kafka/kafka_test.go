package kafka_test

import (
	"context"
	"log/slog"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/eoskit/eos/inbox"
	"github.com/eoskit/eos/internal/testenv"
	"github.com/eoskit/eos/transport/kafka"
	"github.com/eoskit/eos/transport/transporttest"
)

// broker is a Kafka to test against: an in-process kfake cluster, or the
// real cluster of EOS_TEST_KAFKA_BROKERS.
type broker struct {
	addrs []string
	fake  *kfake.Cluster // nil on a real cluster
	opts  []kfake.Opt    // the fake's, to restart it
}

// newFake starts a kfake cluster of one broker that keeps its data in a
// directory of t's, closed when t ends.
func newFake(t testing.TB, opts ...kfake.Opt) *broker {
	t.Helper()
	b := &broker{opts: append([]kfake.Opt{kfake.NumBrokers(1), kfake.DataDir(t.TempDir())}, opts...)}
	b.start(t, b.opts...)
	t.Cleanup(func() { b.fake.Close() })
	return b
}

func (b *broker) start(t testing.TB, opts ...kfake.Opt) {
	t.Helper()
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		t.Fatal(err)
	}
	b.fake, b.addrs = c, c.ListenAddrs()
}

// restart stops the fake and starts it again on its data and port.
func (b *broker) restart(t *testing.T) {
	t.Helper()
	_, port, err := net.SplitHostPort(b.addrs[0])
	if err != nil {
		t.Fatal(err)
	}
	p, err := strconv.Atoi(port)
	if err != nil {
		t.Fatal(err)
	}
	b.fake.Close()
	b.start(t, append(slices.Clone(b.opts), kfake.Ports(p))...)
}

// realBrokers returns the brokers of EOS_TEST_KAFKA_BROKERS, or skips t.
// Unlike the other services it is not required by EOS_TEST_REQUIRE_SERVICES:
// kfake runs the same tests in process.
func realBrokers(t testing.TB) *broker {
	v := os.Getenv("EOS_TEST_KAFKA_BROKERS")
	if v == "" {
		t.Skip("EOS_TEST_KAFKA_BROKERS not set: the suite ran on kfake only")
	}
	return &broker{addrs: strings.Split(v, ",")}
}

// client returns a client of b, closed when t ends.
func (b *broker) client(t testing.TB, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(b.addrs...)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// topic creates a fresh topic of n partitions.
func (b *broker) topic(t testing.TB, n int32) string {
	t.Helper()
	name := testenv.Name("eos-test-")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := kafka.EnsureTopic(ctx, b.client(t), kafka.TopicConfig{Name: name, Partitions: n}); err != nil {
		t.Fatal(err)
	}
	return name
}

// subscriber joins group on topic, and leaves when t ends.
func (b *broker) subscriber(t testing.TB, group, topic string, cfg kafka.SubscriberConfig) *kafka.Subscriber {
	t.Helper()
	cfg.Brokers, cfg.Group, cfg.Topics = b.addrs, group, []string{topic}
	s, err := kafka.NewSubscriber(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

func (b *broker) publisher(t testing.TB) *kafka.Publisher {
	t.Helper()
	p, err := kafka.NewPublisher(b.client(t), kafka.PublisherConfig{})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// harness is the conformance harness on b: a topic of one partition (the
// suite checks the order of one topic), a group of its own.
func (b *broker) harness(t *testing.T) *transporttest.Harness {
	topic := b.topic(t, 1)
	var restart func(*testing.T)
	if b.fake != nil {
		restart = b.restart
	}
	group := testenv.Name("g-")
	return &transporttest.Harness{
		Publisher: b.publisher(t),
		Topic:     topic,
		NewSource: func(t *testing.T) inbox.Source {
			return b.subscriber(t, group, topic, kafka.SubscriberConfig{AckWait: time.Second})
		},
		AckWait: time.Second,
		Restart: restart,
	}
}

func TestConformanceKfake(t *testing.T) {
	transporttest.Run(t, func(t *testing.T) *transporttest.Harness { return newFake(t).harness(t) })
}

func TestConformanceRealCluster(t *testing.T) {
	b := realBrokers(t)
	transporttest.Run(t, b.harness)
}

// testLogger logs to t, and nowhere once t has ended (a member may log
// while it stops).
func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}
