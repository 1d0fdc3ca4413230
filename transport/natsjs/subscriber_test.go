package natsjs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/url"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/eoskit/eos"
	"github.com/eoskit/eos/inbox"
	"github.com/eoskit/eos/torture/faultproxy"
	"github.com/eoskit/eos/transport/natsjs/natsembed"
)

// publishN publishes n messages of size bytes on subject, with ids
// prefix-0, prefix-1, …
func publishN(ctx context.Context, t *testing.T, js jetstream.JetStream, subject, prefix string, n, size int) []string {
	t.Helper()
	pub, err := NewPublisher(js, PublisherConfig{})
	if err != nil {
		t.Fatal(err)
	}
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("%s-%d", prefix, i)
		if _, err := pub.PublishMessage(ctx, subject, eos.Message{ID: ids[i], Payload: bytes.Repeat([]byte("x"), size)}); err != nil {
			t.Fatal(err)
		}
	}
	return ids
}

// delivered waits until the consumer has delivered at least n messages not
// yet acknowledged, and returns how many it has.
func delivered(ctx context.Context, t *testing.T, cons jetstream.Consumer, n int) int {
	t.Helper()
	for {
		info, err := cons.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if info.NumAckPending >= n {
			return info.NumAckPending
		}
	}
}

func newSubscriber(t *testing.T, cons jetstream.Consumer, cfg SubscriberConfig) *Subscriber {
	t.Helper()
	sub, err := NewSubscriber(cons, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sub.Close)
	return sub
}

// TestCloseHandsBackPulledAhead closes a subscriber that pulled messages
// ahead of the inbox: a second subscriber of the durable consumer gets
// them at once, not after the ack wait (30s, the default; the test's
// bound is a third of it).
func TestCloseHandsBackPulledAhead(t *testing.T) {
	js := embedded(t, "close.>")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cons, _, err := EnsureConsumer(ctx, js, ConsumerConfig{Stream: "S", Durable: "d"})
	if err != nil {
		t.Fatal(err)
	}
	ids := publishN(ctx, t, js, "close.a", "m", 10, 10)
	first := newSubscriber(t, cons, SubscriberConfig{})
	ds, err := first.Fetch(ctx, len(ids), 0)
	if err != nil || len(ds) != 1 {
		t.Fatalf("Fetch: %d deliveries, %v; want 1 (no wait for more)", len(ds), err)
	}
	if err := ds[0].Ack(ctx); err != nil {
		t.Fatal(err)
	}
	delivered(ctx, t, cons, len(ids)-1) // the rest is pulled ahead
	first.Close()

	second := newSubscriber(t, cons, SubscriberConfig{})
	missing := map[string]bool{}
	for _, id := range ids[1:] {
		missing[id] = true
	}
	for len(missing) > 0 {
		ds, err := second.Fetch(ctx, len(ids), 5*time.Millisecond)
		if err != nil {
			t.Fatalf("%d messages pulled ahead by the closed subscriber did not come back: %v", len(missing), err)
		}
		for _, d := range ds {
			delete(missing, d.Message().ID)
			if err := d.Ack(ctx); err != nil {
				t.Fatal(err)
			}
		}
	}
	if _, err := first.Fetch(ctx, 1, 0); err == nil {
		t.Error("Fetch after Close succeeded")
	}
}

// TestHeldBatchStaysInProgress holds a delivery past the consumer's ack
// wait (1s), as a long batch or a store stall does: the Subscriber keeps
// telling JetStream it is in progress, and JetStream does not deliver it to
// another subscriber meanwhile. The test watches the in-progress acks on
// the wire and stops after six, two ack waits at one every third of it.
func TestHeldBatchStaysInProgress(t *testing.T) {
	js := embedded(t, "held.>")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cons, _, err := EnsureConsumer(ctx, js, ConsumerConfig{Stream: "S", Durable: "d", AckWait: testAckWait})
	if err != nil {
		t.Fatal(err)
	}
	acks := make(chan *nats.Msg, 64)
	watch, err := js.Conn().ChanSubscribe("$JS.ACK.S.d.>", acks)
	if err != nil {
		t.Fatal(err)
	}
	defer watch.Unsubscribe()
	publishN(ctx, t, js, "held.a", "m", 1, 10)

	holder := newSubscriber(t, cons, SubscriberConfig{})
	ds, err := holder.Fetch(ctx, 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	other := newSubscriber(t, cons, SubscriberConfig{})
	otherCtx, stopOther := context.WithCancel(ctx)
	defer stopOther()
	got := make(chan error, 1)
	go func() {
		ds, err := other.Fetch(otherCtx, 1, 0)
		if err == nil {
			err = fmt.Errorf("%s delivered to another subscriber while held", ds[0].Message().ID)
		}
		got <- err
	}()
	for wip := 0; wip < 6; {
		select {
		case m := <-acks:
			if string(m.Data) == "+WPI" {
				wip++
			}
		case err := <-got:
			t.Fatalf("after %d in-progress acks: %v", wip, err)
		case <-ctx.Done():
			t.Fatalf("after %d in-progress acks: %v", wip, ctx.Err())
		}
	}
	stopOther()
	if err := <-got; !errors.Is(err, context.Canceled) {
		t.Fatalf("the other subscriber: %v", err)
	}
	if err := ds[0].Ack(ctx); err != nil {
		t.Fatal(err)
	}
	info, err := cons.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.NumRedelivered != 0 {
		t.Errorf("%d messages redelivered", info.NumRedelivered)
	}
}

// TestBufferFollowsBatch checks what a subscriber pulls ahead: by default
// as many messages as the inbox's batch (the max of Fetch), and never more
// bytes than BufferBytes.
func TestBufferFollowsBatch(t *testing.T) {
	js := embedded(t, "buf.>")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	pulled := func(durable string, cfg SubscriberConfig, batch int) int {
		t.Helper()
		cons, _, err := EnsureConsumer(ctx, js, ConsumerConfig{Stream: "S", Durable: durable, FilterSubject: "buf." + durable})
		if err != nil {
			t.Fatal(err)
		}
		sub := newSubscriber(t, cons, cfg)
		if _, err := sub.Fetch(ctx, batch, 0); err != nil {
			t.Fatal(err)
		}
		return delivered(ctx, t, cons, 1)
	}

	publishN(ctx, t, js, "buf.count", "c", 40, 10)
	if n := pulled("count", SubscriberConfig{}, 4); n > 4 {
		t.Errorf("%d messages pulled for batches of 4", n)
	}

	const size = 300 << 10
	publishN(ctx, t, js, "buf.bytes", "b", 20, size)
	cfg := SubscriberConfig{Buffer: 100, BufferBytes: 2 << 20}
	if n := pulled("bytes", cfg, 100); n*size > cfg.BufferBytes {
		t.Errorf("%d messages of %d bytes pulled, over BufferBytes %d", n, size, cfg.BufferBytes)
	}
}

// The connection goes silent for longer than two heartbeats (a blackhole
// between client and server): the client reports the missed heartbeats
// and forgets its pull. Fetch waits on through them, and hands out the
// message published once the link is back, rather than failing the inbox
// with "no heartbeat received".
func TestFetchWaitsThroughMissedHeartbeats(t *testing.T) {
	srv, err := natsembed.Start(natsembed.Config{Dir: t.TempDir(), Listen: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	u, err := url.Parse(srv.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	px, err := faultproxy.New(u.Host)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { px.Close() })
	direct, err := srv.Connect()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(direct.Close)
	viaProxy, err := nats.Connect("nats://"+px.Addr(), nats.IgnoreDiscoveredServers())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(viaProxy.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	djs, err := jetstream.New(direct)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := EnsureStream(ctx, djs, StreamConfig{Name: "HB", Subjects: []string{"hb"}}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := EnsureConsumer(ctx, djs, ConsumerConfig{Stream: "HB", Durable: "c"}); err != nil {
		t.Fatal(err)
	}
	pjs, err := jetstream.New(viaProxy)
	if err != nil {
		t.Fatal(err)
	}
	cons, err := pjs.Consumer(ctx, "HB", "c")
	if err != nil {
		t.Fatal(err)
	}
	const hb = 500 * time.Millisecond
	s, err := NewSubscriber(cons, SubscriberConfig{Heartbeat: hb})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	got := make(chan error, 1)
	var ds []inbox.Delivery
	go func() {
		var err error
		ds, err = s.Fetch(ctx, 1, 0)
		got <- err
	}()
	// The outage is the fault: five heartbeats long, so the client
	// misses two in a row whatever the scheduling.
	px.Blackhole(true)
	select {
	case err := <-got:
		t.Fatalf("Fetch returned during the outage: %v", err)
	case <-time.After(5 * hb):
	}
	px.Blackhole(false)
	publishN(ctx, t, djs, "hb", "m", 1, 1)
	if err := <-got; err != nil {
		t.Fatalf("Fetch: %v, want the message published after the outage", err)
	}
	if len(ds) != 1 || ds[0].Message().ID != "m-0" {
		t.Fatalf("Fetch handed out %d deliveries, want m-0", len(ds))
	}
}
