package producer_test

import (
	"context"
	"errors"
	"math/rand/v2"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/eoskit/eos/examples/payments"
	"github.com/eoskit/eos/internal/testjs"
	"github.com/eoskit/eos/reconcile"
	"github.com/eoskit/eos/torture/check"
	"github.com/eoskit/eos/torture/intents"
	"github.com/eoskit/eos/torture/producer"
	"github.com/eoskit/eos/transport/natsjs"
)

// broker starts an embedded server with an ORDERS stream whose dedupe
// window is window.
func broker(t *testing.T, window time.Duration) jetstream.JetStream {
	t.Helper()
	js, _ := testjs.Start(t)
	if _, _, err := natsjs.EnsureStream(context.Background(), js, natsjs.StreamConfig{Name: "ORDERS", Subjects: []string{"orders"},
		Duplicates: window}); err != nil {
		t.Fatal(err)
	}
	return js
}

// The producer publishes every order once, drops nothing, and announces
// each publish first: the broker holds each order once plus the copies
// published past its window, its dedupe drops the retries, and the intent
// log names them all.
func TestProducerPublishesWhatItAnnounces(t *testing.T) {
	const window = 100 * time.Millisecond
	js := broker(t, window)
	var dups atomic.Int64
	pub, err := natsjs.NewPublisher(js, natsjs.PublisherConfig{OnDuplicate: func(string, string) { dups.Add(1) }})
	if err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(t.TempDir(), "intents.jsonl")
	log, err := intents.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	orders := payments.GenerateOrders(1, 60, 5)
	bad := payments.Malformed(payments.Account(0, 5))
	p := producer.New(producer.Config{Publisher: producer.NATS(pub, js), Subject: "orders", Orders: orders, Bad: bad,
		Rand: rand.New(rand.NewPCG(1, 2)), RetryRate: 0.3, CopyRate: 0.2, CopyDelay: 5 * window, Intents: log})
	if err := p.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := log.Close(); err != nil {
		t.Fatal(err)
	}
	its, err := intents.Read(logPath)
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[intents.Kind]int{}
	for _, it := range its {
		kinds[it.Kind]++
	}
	if kinds[intents.Order] != len(orders) || kinds[intents.Poison] != len(bad) || kinds[intents.Retry] == 0 || kinds[intents.Copy] == 0 {
		t.Fatalf("intents by kind %v; want %d orders, %d poison, some retries and copies", kinds, len(orders), len(bad))
	}
	if p.Published() != int64(len(orders)) || p.Republished() != int64(kinds[intents.Copy]) || dups.Load() != int64(kinds[intents.Retry]) {
		t.Errorf("published %d, republished %d, broker duplicates %d; want %d, %d copies, %d retries",
			p.Published(), p.Republished(), dups.Load(), len(orders), kinds[intents.Copy], kinds[intents.Retry])
	}
	stored, err := check.SourceIDs(context.Background(), reconcile.JetStreamSource{JS: js, Stream: "ORDERS"})
	if err != nil {
		t.Fatal(err)
	}
	copies := map[string]int{}
	for _, it := range its {
		if it.Kind == intents.Copy {
			copies[it.ID]++
		}
	}
	for _, o := range orders {
		if stored[o.ID] != 1+copies[o.ID] {
			t.Errorf("order %s stored %d times, want %d", o.ID, stored[o.ID], 1+copies[o.ID])
		}
	}
	for _, b := range bad {
		if stored[b.Message.ID] != 1 {
			t.Errorf("malformed input %q stored %d times, want once", b.Message.ID, stored[b.Message.ID])
		}
	}
}

// A publish the intent log cannot announce is not made.
func TestProducerStopsWhenTheLogFails(t *testing.T) {
	js := broker(t, time.Second)
	pub, err := natsjs.NewPublisher(js, natsjs.PublisherConfig{})
	if err != nil {
		t.Fatal(err)
	}
	log, err := intents.Create(filepath.Join(t.TempDir(), "intents.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	log.Close() // every later write fails
	p := producer.New(producer.Config{Publisher: producer.NATS(pub, js), Subject: "orders", Orders: payments.GenerateOrders(1, 10, 5),
		Rand: rand.New(rand.NewPCG(1, 2)), Intents: log})
	if err := p.Run(context.Background()); !errors.Is(err, intents.ErrLog) {
		t.Fatalf("Run: %v, want the intent log's failure", err)
	}
	if stored, err := check.SourceIDs(context.Background(), reconcile.JetStreamSource{JS: js, Stream: "ORDERS"}); err != nil || len(stored) != 0 {
		t.Errorf("stream holds %v (%v); want nothing published", stored, err)
	}
}
