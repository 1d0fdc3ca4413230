package metrics_test

import (
	"context"
	"testing"

	"github.com/eoskit/eos"
	"github.com/eoskit/eos/internal/testjs"
	"github.com/eoskit/eos/outbox"
	"github.com/eoskit/eos/transport/natsjs"
)

// A publish that JetStream's dedupe drops is counted by topic, with the
// message id as the exemplar, when BrokerDuplicate is the publisher's
// OnDuplicate.
func TestBrokerDuplicate(t *testing.T) {
	ctx := context.Background()
	js, _ := testjs.Start(t)
	if _, _, err := natsjs.EnsureStream(ctx, js, natsjs.StreamConfig{Name: "PAYMENTS", Subjects: []string{"payments.>"}}); err != nil {
		t.Fatal(err)
	}
	m, reg := newMetrics(t)
	pub, err := natsjs.NewPublisher(js, natsjs.PublisherConfig{OnDuplicate: m.BrokerDuplicate})
	if err != nil {
		t.Fatal(err)
	}
	env := func(id string) outbox.Envelope {
		return outbox.Envelope{Topic: "payments.charge", Message: eos.Message{ID: id, Subject: "payments.charge", Payload: []byte(id)}}
	}
	// c1 twice in one publish, c2 then again in a later one: two copies
	// dropped.
	for _, batch := range [][]outbox.Envelope{{env("c1"), env("c1")}, {env("c2")}, {env("c2")}} {
		if n, err := pub.Publish(ctx, batch); err != nil || n != len(batch) {
			t.Fatalf("Publish: %d acked, %v", n, err)
		}
	}
	mt, err := metricsVec(reg, "eos_relay_broker_duplicates_total", map[string]string{"topic": "payments.charge"})
	if err != nil {
		t.Fatal(err)
	}
	if got := mt.GetCounter().GetValue(); got != 2 {
		t.Errorf("eos_relay_broker_duplicates_total = %v, want 2", got)
	}
	ex := mt.GetCounter().GetExemplar()
	if ex == nil || len(ex.GetLabel()) != 1 || ex.GetLabel()[0].GetName() != "message_id" || ex.GetLabel()[0].GetValue() != "c2" {
		t.Errorf("exemplar %v, want message_id c2", ex)
	}
}
