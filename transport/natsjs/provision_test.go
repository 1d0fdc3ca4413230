package natsjs

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/eoskit/eos"
)

// fields lists the fields a Provisioned reports changed.
func fields(p Provisioned) []string {
	var out []string
	for _, c := range p.Changed {
		out = append(out, c.Field)
	}
	return out
}

// TestEnsureStreamOwnsItsFields provisions over a stream an operator made:
// EnsureStream sets the fields StreamConfig names, says which, and leaves
// the operator's limits, discard policy and description alone.
func TestEnsureStreamOwnsItsFields(t *testing.T) {
	js := embedded(t, "unused")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cfg := StreamConfig{Name: "P", Subjects: []string{"p.>"}, Duplicates: time.Minute}
	if _, p, err := EnsureStream(ctx, js, cfg); err != nil || !p.Created {
		t.Fatalf("first EnsureStream: %v, %v; want created", p, err)
	}
	if _, p, err := EnsureStream(ctx, js, cfg); err != nil || p.Created || len(p.Changed) != 0 || p.String() != "unchanged" {
		t.Fatalf("second EnsureStream: %v, %v; want unchanged", p, err)
	}

	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{
		Name: "O", Subjects: []string{"o.>", "x.>"}, MaxMsgs: 1000, Description: "ops", Discard: jetstream.DiscardNew,
	}); err != nil {
		t.Fatal(err)
	}
	s, p, err := EnsureStream(ctx, js, StreamConfig{Name: "O", Subjects: []string{"x.>", "o.>"}, Duplicates: time.Minute, MaxAge: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if got := fields(p); p.Created || !slices.Equal(got, []string{"Duplicates", "MaxAge", "AllowAtomicPublish"}) {
		t.Errorf("changed %v (%v), want Duplicates, MaxAge and AllowAtomicPublish only", got, p)
	}
	t.Log(p)
	c := s.CachedInfo().Config
	if c.MaxMsgs != 1000 || c.Description != "ops" || c.Discard != jetstream.DiscardNew {
		t.Errorf("operator's fields reset: MaxMsgs %d, Description %q, Discard %v", c.MaxMsgs, c.Description, c.Discard)
	}
	if c.Duplicates != time.Minute || c.MaxAge != time.Hour || !c.AllowAtomicPublish {
		t.Errorf("eos's fields not set: Duplicates %v, MaxAge %v, AllowAtomicPublish %v", c.Duplicates, c.MaxAge, c.AllowAtomicPublish)
	}

	_, _, err = EnsureStream(ctx, js, StreamConfig{Name: "O", Subjects: []string{"o.>"}, Memory: true})
	var ce *eos.ConfigError
	if !errors.As(err, &ce) || ce.Field != "natsjs.StreamConfig.Memory" {
		t.Errorf("file stream provisioned as memory: %v, want a configuration error on Memory", err)
	}
}

// TestEnsureConsumerOwnsItsFields does the same for a consumer.
func TestEnsureConsumerOwnsItsFields(t *testing.T) {
	js := embedded(t, "c.>")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := js.CreateConsumer(ctx, "S", jetstream.ConsumerConfig{
		Durable: "d", AckPolicy: jetstream.AckExplicitPolicy, Description: "ops", MaxRequestBatch: 50, FilterSubjects: []string{"c.a", "c.b"},
	}); err != nil {
		t.Fatal(err)
	}
	cfg := ConsumerConfig{Stream: "S", Durable: "d", AckWait: 5 * time.Second}
	cons, p, err := EnsureConsumer(ctx, js, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Log(p)
	if got := fields(p); !slices.Equal(got, []string{"FilterSubject", "AckWait", "MaxDeliver", "MaxAckPending"}) {
		t.Errorf("changed %v (%v)", got, p)
	}
	c := cons.CachedInfo().Config
	if c.Description != "ops" || c.MaxRequestBatch != 50 {
		t.Errorf("operator's fields reset: Description %q, MaxRequestBatch %d", c.Description, c.MaxRequestBatch)
	}
	if c.AckWait != cfg.AckWait || c.MaxDeliver != 1000 || c.MaxAckPending != 20000 || c.FilterSubject != "" || len(c.FilterSubjects) != 0 {
		t.Errorf("eos's fields not set: %+v", c)
	}
	if _, p, err := EnsureConsumer(ctx, js, cfg); err != nil || p.String() != "unchanged" {
		t.Errorf("again: %v, %v; want unchanged", p, err)
	}
	if _, p, err := EnsureConsumer(ctx, js, ConsumerConfig{Stream: "S", Durable: "new"}); err != nil || p.String() != "created" {
		t.Errorf("new consumer: %v, %v; want created", p, err)
	}
}
