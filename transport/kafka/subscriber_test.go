package kafka_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/eoskit/eos/inbox"
	"github.com/eoskit/eos/internal/testenv"
	"github.com/eoskit/eos/outbox"
	"github.com/eoskit/eos/transport/kafka"
)

// publishN publishes n messages over keys keys to topic and returns their
// ids.
func publishN(t testing.TB, b *broker, topic string, n, keys int) map[string]bool {
	t.Helper()
	envs := make([]outbox.Envelope, n)
	ids := make(map[string]bool, n)
	for i := range envs {
		envs[i] = envelope(topic, fmt.Sprintf("key-%d", i%keys), fmt.Appendf(nil, "%d", i))
		ids[envs[i].Message.ID] = true
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if n, err := b.publisher(t).Publish(ctx, envs); n != len(envs) || err != nil {
		t.Fatalf("Publish: %d of %d, %v", n, len(envs), err)
	}
	return ids
}

func fetch(t testing.TB, src inbox.Source, max int) []inbox.Delivery {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ds, err := src.Fetch(ctx, max, 0)
	if err != nil {
		t.Fatal(err)
	}
	return ds
}

// A member that leaves commits what was acked of its partitions; what it
// still held settles nothing and goes to the next owner.
func TestRevokedDeliveriesSettleNothing(t *testing.T) {
	b := newFake(t)
	topic, group := b.topic(t, 4), testenv.Name("g-")
	want := publishN(t, b, topic, 200, 8)

	a := b.subscriber(t, group, topic, kafka.SubscriberConfig{})
	ds := fetch(t, a, 10)
	if len(ds) < 2 {
		t.Fatalf("first fetch: %d records, want at least 2", len(ds))
	}
	ctx := context.Background()
	acked := len(ds) / 2
	for _, d := range ds[:acked] {
		if err := d.Ack(ctx); err != nil {
			t.Fatal(err)
		}
		delete(want, d.Message().ID)
	}
	a.Close()
	for _, d := range ds[acked:] {
		if err := d.Ack(ctx); !errors.Is(err, kafka.ErrRevoked) {
			t.Fatalf("ack after the partition was revoked: %v, want ErrRevoked", err)
		}
	}

	// The next member gets everything but what a acked, once.
	c := b.subscriber(t, group, topic, kafka.SubscriberConfig{})
	for len(want) > 0 {
		for _, d := range fetch(t, c, 64) {
			id := d.Message().ID
			if !want[id] {
				t.Fatalf("%s (%s) delivered again after it was acked and committed", id, d.(inbox.Positioner).Position())
			}
			delete(want, id)
			if err := d.Ack(ctx); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// Every Fetch hands out records of one partition, in offset order.
func TestFetchOnePartitionInOrder(t *testing.T) {
	b := newFake(t)
	topic, group := b.topic(t, 4), testenv.Name("g-")
	publishN(t, b, topic, 400, 16)
	s := b.subscriber(t, group, topic, kafka.SubscriberConfig{})
	last := map[int32]int64{}
	for got := 0; got < 400; {
		ds := fetch(t, s, 32)
		part := int32(-1)
		for _, d := range ds {
			p, off := position(t, d)
			if part >= 0 && p != part {
				t.Fatalf("one fetch handed out partitions %d and %d", part, p)
			}
			part = p
			if prev, ok := last[p]; ok && off <= prev {
				t.Fatalf("partition %d: offset %d after %d", p, off, prev)
			}
			last[p] = off
			if err := d.Ack(context.Background()); err != nil {
				t.Fatal(err)
			}
		}
		got += len(ds)
	}
}

// position returns the partition and offset of d.
func position(t testing.TB, d inbox.Delivery) (int32, int64) {
	t.Helper()
	pos := d.(inbox.Positioner).Position()
	i := strings.LastIndexByte(pos, '/')
	j := strings.LastIndexByte(pos[:i], '/')
	p, err1 := strconv.ParseInt(pos[j+1:i], 10, 32)
	off, err2 := strconv.ParseInt(pos[i+1:], 10, 64)
	if j < 0 || err1 != nil || err2 != nil {
		t.Fatalf("position %q is not topic/partition/offset", pos)
	}
	return int32(p), off
}

// A partition whose first record stays unacked is not buffered past
// MaxHeld (plus one poll); acks resume it.
func TestMaxHeldPausesPartition(t *testing.T) {
	b := newFake(t)
	topic, group := b.topic(t, 1), testenv.Name("g-")
	const n, maxHeld, batch = 300, 40, 10
	want := publishN(t, b, topic, n, 4)
	s := b.subscriber(t, group, topic, kafka.SubscriberConfig{MaxHeld: maxHeld})
	var held []inbox.Delivery
	deadline := time.Now().Add(30 * time.Second)
	for {
		// Nothing more comes once the partition is paused: the fetch
		// times out. One that times out before MaxHeld records came was
		// a slow broker, not the pause: fetch again.
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		ds, err := s.Fetch(ctx, batch, 0)
		cancel()
		if errors.Is(err, context.DeadlineExceeded) {
			if len(held) >= maxHeld {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%d records handed out in 30s, want MaxHeld %d before the pause", len(held), maxHeld)
			}
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, ds...)
		if len(held) > maxHeld+batch {
			t.Fatalf("%d records handed out with none acked, MaxHeld %d", len(held), maxHeld)
		}
	}
	ctx := context.Background()
	for _, d := range held {
		delete(want, d.Message().ID)
		if err := d.Ack(ctx); err != nil {
			t.Fatal(err)
		}
	}
	for len(want) > 0 {
		for _, d := range fetch(t, s, batch) {
			delete(want, d.Message().ID)
			if err := d.Ack(ctx); err != nil {
				t.Fatal(err)
			}
		}
	}
}
