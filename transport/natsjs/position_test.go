package natsjs

import (
	"context"
	"testing"
	"time"

	"github.com/eoskit/eos"
	"github.com/eoskit/eos/outbox"
)

// A message's position is its stream and stream sequence, the same on a
// redelivery and different for another message, even with the same content
// and no id (what the inbox names an invalid delivery's record by).
func TestPosition(t *testing.T) {
	js := embedded(t, "pos.>")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	pub, err := NewPublisher(js, PublisherConfig{})
	if err != nil {
		t.Fatal(err)
	}
	same := eos.Message{ID: eos.NewID(), Payload: []byte("same")}
	other := same
	other.ID = eos.NewID()
	if _, err := pub.Publish(ctx, []outbox.Envelope{{Topic: "pos.a", Message: same}, {Topic: "pos.a", Message: other}}); err != nil {
		t.Fatal(err)
	}
	cons, _, err := EnsureConsumer(ctx, js, ConsumerConfig{Stream: "S", Durable: "pos"})
	if err != nil {
		t.Fatal(err)
	}
	sub, err := NewSubscriber(cons, SubscriberConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	var got []string
	for len(got) < 3 {
		ds, err := sub.Fetch(ctx, 1, 0)
		if err != nil {
			t.Fatal(err)
		}
		d := ds[0].(*Delivery)
		got = append(got, d.Position())
		if len(got) == 1 {
			if err := d.Nack(ctx, 0); err != nil { // the first comes back
				t.Fatal(err)
			}
			continue
		}
		if err := d.Ack(ctx); err != nil {
			t.Fatal(err)
		}
	}
	// Deliveries: first message, then its redelivery or the second one.
	if got[0] != "S:1" || !(got[1] == "S:1" && got[2] == "S:2" || got[1] == "S:2" && got[2] == "S:1") {
		t.Fatalf("positions %q, want S:1 twice and S:2 once", got)
	}
}
