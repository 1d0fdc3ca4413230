package natsjs

import (
	"context"
	"testing"
	"time"

	"github.com/eoskit/eos"
	"github.com/eoskit/eos/inbox"
)

// A delivery tells the inbox which delivery of its message it is, from the
// JetStream metadata: 1 at first, 2 once the message comes back after a
// nack.
func TestDeliveryCount(t *testing.T) {
	js := embedded(t, "dc.>")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	pub, err := NewPublisher(js, PublisherConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pub.PublishMessage(ctx, "dc.a", eos.Message{ID: "m"}); err != nil {
		t.Fatal(err)
	}
	cons, _, err := EnsureConsumer(ctx, js, ConsumerConfig{Stream: "S", Durable: "dc"})
	if err != nil {
		t.Fatal(err)
	}
	sub, err := NewSubscriber(cons, SubscriberConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	for want := 1; want <= 2; want++ {
		ds, err := sub.Fetch(ctx, 1, 0)
		if err != nil || len(ds) != 1 {
			t.Fatalf("delivery %d: %d messages, %v", want, len(ds), err)
		}
		dc, ok := ds[0].(inbox.DeliveryCounter)
		if !ok {
			t.Fatalf("%T does not implement inbox.DeliveryCounter", ds[0])
		}
		if got := dc.DeliveryCount(); ds[0].Message().ID != "m" || got != want {
			t.Fatalf("delivery %d: id %q, DeliveryCount %d", want, ds[0].Message().ID, got)
		}
		settle := ds[0].Ack
		if want == 1 {
			settle = func(ctx context.Context) error { return ds[0].Nack(ctx, 0) } // it comes back
		}
		if err := settle(ctx); err != nil {
			t.Fatal(err)
		}
	}
}
