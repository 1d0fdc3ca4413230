package natsjs

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

// Processor.Run fetches the next batch while it processes the current one:
// the deliveries of the last two Fetches stay in progress while held, so
// neither comes back to another subscriber during a long batch.
func TestPrefetchedAndHeldBatchesStayInProgress(t *testing.T) {
	js := embedded(t, "ahead.>")
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
	publishN(ctx, t, js, "ahead.a", "m", 2, 10)

	holder := newSubscriber(t, cons, SubscriberConfig{})
	current, err := holder.Fetch(ctx, 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	ahead, err := holder.Fetch(ctx, 1, 0) // fetched ahead, current not settled
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
	// Each keep-alive tick marks both in progress: 8 marks span more than
	// two ack waits.
	for wip := 0; wip < 8; {
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
	for _, d := range append(current, ahead...) {
		if err := d.Ack(ctx); err != nil {
			t.Fatal(err)
		}
	}
	info, err := cons.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.NumRedelivered != 0 {
		t.Errorf("%d messages redelivered", info.NumRedelivered)
	}
}
