package kafka_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/eoskit/eos"
	"github.com/eoskit/eos/outbox"
	"github.com/eoskit/eos/transport/kafka"
)

func TestNewPublisherRefusesNonIdempotentClient(t *testing.T) {
	b := newFake(t)
	_, err := kafka.NewPublisher(b.client(t, kgo.DisableIdempotentWrite(), kgo.RequiredAcks(kgo.LeaderAck())), kafka.PublisherConfig{})
	var ce *eos.ConfigError
	if !errors.As(err, &ce) {
		t.Fatalf("NewPublisher with idempotence disabled: %v, want a *eos.ConfigError", err)
	}
	if _, err := kafka.NewPublisher(b.client(t), kafka.PublisherConfig{ProduceTimeout: -1}); !errors.As(err, &ce) {
		t.Fatalf("negative ProduceTimeout: %v, want a *eos.ConfigError", err)
	}
}

func envelope(topic, key string, payload []byte) outbox.Envelope {
	return outbox.Envelope{Topic: topic, Message: eos.Message{ID: eos.NewID(), Key: key, Payload: payload}}
}

func TestPublishUnpublishable(t *testing.T) {
	b := newFake(t)
	topic := b.topic(t, 1)
	p := b.publisher(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for name, env := range map[string]outbox.Envelope{
		"too large":     envelope(topic, "k", make([]byte, 2<<20)),
		"unknown topic": envelope("eos-no-such-topic", "k", []byte("x")),
	} {
		t.Run(name, func(t *testing.T) {
			ok := envelope(topic, "k", []byte("ok"))
			n, err := p.Publish(ctx, []outbox.Envelope{ok, env, ok})
			if n != 1 || !errors.Is(err, outbox.ErrUnpublishable) {
				t.Fatalf("Publish: %d acked, %v; want 1 and ErrUnpublishable", n, err)
			}
			var pe *outbox.PublishError
			if !errors.As(err, &pe) || len(pe.AlsoAcked) != 1 || pe.AlsoAcked[0] != 2 {
				t.Fatalf("Publish: %#v, want a *PublishError with AlsoAcked [2]", err)
			}
		})
	}
}

func TestPublishTimeoutIsNotUnpublishable(t *testing.T) {
	b := newFake(t)
	topic := b.topic(t, 1)
	p, err := kafka.NewPublisher(b.client(t), kafka.PublisherConfig{ProduceTimeout: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	// The broker holds every produce request until the test ends.
	release := make(chan struct{})
	b.fake.ControlKey(int16(kmsg.Produce), func(kmsg.Request) (kmsg.Response, error, bool) {
		b.fake.SleepControl(func() { <-release })
		return nil, nil, false
	})
	defer close(release)
	n, err := p.Publish(context.Background(), []outbox.Envelope{envelope(topic, "k", []byte("x"))})
	if n != 0 || err == nil || errors.Is(err, outbox.ErrUnpublishable) {
		t.Fatalf("Publish to a broker that does not answer: %d, %v; want 0 and a retryable error", n, err)
	}
}

// Messages of one key land on one partition, in publish order.
func TestPublishKeyOrder(t *testing.T) {
	b := newFake(t)
	topic := b.topic(t, 4)
	p := b.publisher(t)
	const keys, perKey = 8, 50
	var envs []outbox.Envelope
	for i := range keys * perKey {
		envs = append(envs, envelope(topic, fmt.Sprintf("key-%d", i%keys), fmt.Appendf(nil, "%d", i/keys)))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if n, err := p.Publish(ctx, envs); n != len(envs) || err != nil {
		t.Fatalf("Publish: %d, %v", n, err)
	}
	cl := b.client(t, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	partOf, next := map[string]int32{}, map[string]int{}
	for got := 0; got < len(envs); {
		fs := cl.PollFetches(ctx)
		if err := fs.Err0(); err != nil {
			t.Fatal(err)
		}
		for _, r := range fs.Records() {
			got++
			k := string(r.Key)
			if p, ok := partOf[k]; ok && p != r.Partition {
				t.Fatalf("key %s on partitions %d and %d", k, p, r.Partition)
			}
			partOf[k] = r.Partition
			if want := fmt.Sprint(next[k]); string(r.Value) != want {
				t.Fatalf("key %s: got %s, want %s", k, r.Value, want)
			}
			next[k]++
		}
	}
}
