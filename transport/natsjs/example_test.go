package natsjs_test

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/eoskit/eos"
	"github.com/eoskit/eos/inbox"
	"github.com/eoskit/eos/outbox"
	"github.com/eoskit/eos/transport/natsjs"
	"github.com/eoskit/eos/transport/natsjs/natsembed"
)

// A stream and a durable consumer on the embedded server, the Publisher an
// outbox.Relay would use, and the Subscriber an inbox.Processor reads.
func Example() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "eos-natsjs-example")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	must := func(err error) {
		if err != nil {
			panic(err)
		}
	}

	// In process, JetStream on files synced on every write.
	srv, err := natsembed.Start(natsembed.Config{Dir: dir})
	must(err)
	defer srv.Shutdown()
	nc, err := srv.Connect()
	must(err)
	defer nc.Close()
	js, err := jetstream.New(nc)
	must(err)

	// Provisioning says what it did: run again, it changes nothing.
	for range 2 {
		_, done, err := natsjs.EnsureStream(ctx, js, natsjs.StreamConfig{Name: "ORDERS", Subjects: []string{"orders.>"}})
		must(err)
		fmt.Println("stream:", done)
	}
	cons, done, err := natsjs.EnsureConsumer(ctx, js, natsjs.ConsumerConfig{Stream: "ORDERS", Durable: "billing", AckWait: 10 * time.Second})
	must(err)
	fmt.Println("consumer:", done)

	// The ids are the broker's dedupe ids: a re-publish is dropped.
	pub, err := natsjs.NewPublisher(js, natsjs.PublisherConfig{})
	must(err)
	envs := []outbox.Envelope{
		{Topic: "orders.placed", Message: eos.Message{ID: "o-1", Key: "customer-7", Payload: []byte("250")}},
		{Topic: "orders.placed", Message: eos.Message{ID: "o-2", Key: "customer-7", Payload: []byte("100")}},
	}
	for range 2 {
		acked, err := pub.Publish(ctx, envs)
		must(err)
		fmt.Println("acknowledged:", acked, "duplicates so far:", pub.Duplicates())
	}

	sub, err := natsjs.NewSubscriber(cons, natsjs.SubscriberConfig{})
	must(err)
	defer sub.Close()
	var got []inbox.Delivery
	for len(got) < 2 {
		ds, err := sub.Fetch(ctx, 10, 100*time.Millisecond)
		must(err)
		got = append(got, ds...)
	}
	for _, d := range got {
		m := d.Message()
		fmt.Printf("received %s key=%s %s\n", m.ID, m.Key, m.Payload)
		must(d.Ack(ctx)) // the inbox acks only after its transaction commits
	}
	// Output:
	// stream: created
	// stream: unchanged
	// consumer: created
	// acknowledged: 2 duplicates so far: 0
	// acknowledged: 2 duplicates so far: 2
	// received o-1 key=customer-7 250
	// received o-2 key=customer-7 100
}
