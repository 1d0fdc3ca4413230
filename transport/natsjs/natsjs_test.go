package natsjs

import (
	"context"
	"encoding/json"
	"errors"
	"maps"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/eoskit/eos"
	"github.com/eoskit/eos/compact"
	"github.com/eoskit/eos/failpoint"
	"github.com/eoskit/eos/inbox"
	"github.com/eoskit/eos/internal/testdb"
	"github.com/eoskit/eos/internal/testenv"
	"github.com/eoskit/eos/internal/testjs"
	"github.com/eoskit/eos/outbox"
	"github.com/eoskit/eos/transport/natsjs/natsembed"
	"github.com/eoskit/eos/transport/transporttest"
)

// testAckWait is the consumers' ack wait in tests: the redelivery tests
// wait for it.
const testAckWait = time.Second

func TestConformance(t *testing.T) {
	t.Run("embedded", func(t *testing.T) { transporttest.Run(t, embeddedHarness) })
	t.Run("external", func(t *testing.T) {
		url := testenv.NATSURL(t)
		transporttest.Run(t, func(t *testing.T) *transporttest.Harness {
			return harness(t, func(t *testing.T) *nats.Conn { return connectURL(t, url) }, nil)
		})
	})
}

// embeddedHarness runs its own embedded server, which Restart shuts down
// and starts again on the same directory.
func embeddedHarness(t *testing.T) *transporttest.Harness {
	cfg := natsembed.Config{Dir: t.TempDir()}
	srv := startServer(t, cfg)
	t.Cleanup(func() { srv.Shutdown() }) // the current server
	connect := func(t *testing.T) *nats.Conn {
		nc, err := srv.Connect()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(nc.Close)
		return nc
	}
	return harness(t, connect, func(t *testing.T) {
		srv.Shutdown()
		srv = startServer(t, cfg)
	})
}

func startServer(t testing.TB, cfg natsembed.Config) *natsembed.Server {
	t.Helper()
	srv, err := natsembed.Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return srv
}

func connectURL(t *testing.T, url string) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatalf("connect to %s: %v", url, err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// broker is the harness's connection; a restart replaces it, and the
// Publisher it hands the suite follows.
type broker struct {
	mu   sync.Mutex
	js   jetstream.JetStream
	pub  *Publisher
	dups int64 // reported through earlier publishers
}

func (b *broker) connect(t *testing.T, connect func(*testing.T) *nats.Conn) {
	t.Helper()
	js, err := jetstream.New(connect(t))
	if err != nil {
		t.Fatal(err)
	}
	pub, err := NewPublisher(js, PublisherConfig{})
	if err != nil {
		t.Fatal(err)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.pub != nil {
		b.dups += b.pub.Duplicates()
	}
	b.js, b.pub = js, pub
}

func (b *broker) current() (jetstream.JetStream, *Publisher) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.js, b.pub
}

func (b *broker) Publish(ctx context.Context, msgs []outbox.Envelope) (int, error) {
	_, pub := b.current()
	return pub.Publish(ctx, msgs)
}

func (b *broker) duplicates() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.dups + b.pub.Duplicates()
}

// harness provisions a stream and a durable consumer of their own on the
// broker connect reaches; restart, if set, restarts that broker.
func harness(t *testing.T, connect func(*testing.T) *nats.Conn, restart func(*testing.T)) *transporttest.Harness {
	name := testenv.Name("eos_t_")
	subject := "eos.t." + name
	b := &broker{}
	b.connect(t, connect)
	ctx := context.Background()
	if _, _, err := EnsureStream(ctx, b.js, StreamConfig{Name: name, Subjects: []string{subject}}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		js, _ := b.current()
		js.DeleteStream(context.Background(), name) // an external server keeps it otherwise
	})
	if _, _, err := EnsureConsumer(ctx, b.js, ConsumerConfig{Stream: name, Durable: "eos", AckWait: testAckWait}); err != nil {
		t.Fatal(err)
	}
	h := &transporttest.Harness{
		Publisher:  b,
		Topic:      subject,
		Duplicates: b.duplicates,
		AckWait:    testAckWait,
		NewSource: func(t *testing.T) inbox.Source {
			js, _ := b.current()
			cons, err := js.Consumer(context.Background(), name, "eos")
			if err != nil {
				t.Fatal(err)
			}
			sub, err := NewSubscriber(cons, SubscriberConfig{})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(sub.Close)
			return sub
		},
	}
	if restart != nil {
		h.Restart = func(t *testing.T) {
			restart(t)
			b.connect(t, connect)
		}
	}
	return h
}

// embedded starts an embedded server with a stream capturing subject and
// returns a JetStream context on it.
func embedded(t *testing.T, subject string) jetstream.JetStream {
	t.Helper()
	js, _ := testjs.Start(t)
	if _, _, err := EnsureStream(context.Background(), js, StreamConfig{Name: "S", Subjects: []string{subject}}); err != nil {
		t.Fatal(err)
	}
	return js
}

func TestMessageMapping(t *testing.T) {
	at := time.Date(2026, 3, 4, 5, 6, 7, 123456789, time.FixedZone("CET", 3600))
	m := eos.Message{ID: "m-1", Key: "acct-7", Payload: []byte("42"), CreatedAt: at, Headers: map[string]string{
		"Traceparent": "00-abc-def-01", "Nats-Rollup": "sub", "nats-ttl": "1s", "Eos-Created-At": "forged",
	}}
	nm := toNATS("s", m)
	for _, k := range []string{"Nats-Rollup", "nats-ttl"} {
		if _, ok := nm.Header[k]; ok {
			t.Errorf("reserved header %s sent to the broker", k)
		}
	}
	if got := nm.Header.Get(jetstream.MsgIDHeader); got != m.ID {
		t.Errorf("Nats-Msg-Id %q, want %q", got, m.ID)
	}
	// What the server adds on delivery is not the application's.
	nm.Header.Set("Nats-Stream", "S")
	nm.Header.Set("Nats-Num-Delivered", "2")
	msgID := HeaderID(jetstream.MsgIDHeader)
	got := fromNATS("s", nm.Header, nm.Data, msgID)
	want := map[string]string{"Traceparent": "00-abc-def-01"}
	if got.ID != m.ID || got.Key != m.Key || string(got.Payload) != "42" || !got.CreatedAt.Equal(at) || !maps.Equal(got.Headers, want) || got.Subject != "s" {
		t.Errorf("round trip: got %+v, want %+v with headers %v", got, m, want)
	}

	// An application header named like eos's own does not become the key.
	got = fromNATS("s", toNATS("s", eos.Message{ID: "m-2", Headers: map[string]string{"Eos-Key": "forged"}}).Header, nil, msgID)
	if got.Key != "" || got.Headers != nil || !got.CreatedAt.IsZero() {
		t.Errorf("forged key: got %+v", got)
	}
	// A message from a producer without eos arrives without an id (the inbox
	// dead-letters it) and without headers it did not have.
	if got := fromNATS("s", nats.Header{"Nats-Sequence": {"9"}}, []byte("x"), msgID); got.ID != "" || got.Headers != nil {
		t.Errorf("foreign message: got %+v", got)
	}
}

// TestMessageMappingOverServer sends reserved headers through a real
// server: sent as they are, Nats-Rollup and Nats-Expected-Last-Sequence
// would make JetStream refuse the publish.
func TestMessageMappingOverServer(t *testing.T) {
	js := embedded(t, "map.>")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	pub, err := NewPublisher(js, PublisherConfig{})
	if err != nil {
		t.Fatal(err)
	}
	m := eos.Message{ID: eos.NewID(), Key: "k", Payload: []byte("p"), CreatedAt: time.Now(), Headers: map[string]string{
		"App": "x", "Nats-Rollup": "all", "Nats-Expected-Last-Sequence": "999",
	}}
	if _, err := pub.Publish(ctx, []outbox.Envelope{{Topic: "map.a", Message: m}}); err != nil {
		t.Fatal(err)
	}
	cons, _, err := EnsureConsumer(ctx, js, ConsumerConfig{Stream: "S", Durable: "d"})
	if err != nil {
		t.Fatal(err)
	}
	sub, err := NewSubscriber(cons, SubscriberConfig{DoubleAck: true})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	ds, err := sub.Fetch(ctx, 10, 0)
	if err != nil {
		t.Fatal(err)
	}
	got := ds[0].Message()
	if got.ID != m.ID || got.Key != m.Key || !got.CreatedAt.Equal(m.CreatedAt) || !maps.Equal(got.Headers, map[string]string{"App": "x"}) || got.Subject != "map.a" {
		t.Errorf("received %+v, published %+v", got, m)
	}
	if n := ds[0].(*Delivery).NumDelivered(); n != 1 {
		t.Errorf("NumDelivered %d, want 1", n)
	}
	if err := ds[0].Ack(ctx); err != nil {
		t.Errorf("double ack: %v", err)
	}
}

func TestConfigErrors(t *testing.T) {
	ctx := context.Background()
	okStream := StreamConfig{Name: "S", Subjects: []string{"s"}}
	okCons := ConsumerConfig{Stream: "S", Durable: "d"}
	stream := func(f func(*StreamConfig)) error {
		c := okStream
		f(&c)
		_, _, err := EnsureStream(ctx, nil, c) // refused before the broker is asked
		return err
	}
	consumer := func(f func(*ConsumerConfig)) error {
		c := okCons
		f(&c)
		_, _, err := EnsureConsumer(ctx, nil, c)
		return err
	}
	js := embedded(t, "cfg.>")
	tests := []struct {
		name, field string
		err         error
	}{
		{"stream name empty", "natsjs.StreamConfig.Name", stream(func(c *StreamConfig) { c.Name = "" })},
		{"stream name dot", "natsjs.StreamConfig.Name", stream(func(c *StreamConfig) { c.Name = "a.b" })},
		{"no subjects", "natsjs.StreamConfig.Subjects", stream(func(c *StreamConfig) { c.Subjects = nil })},
		{"window too short", "natsjs.StreamConfig.Duplicates", stream(func(c *StreamConfig) { c.Duplicates = 50 * time.Millisecond })},
		{"window negative", "natsjs.StreamConfig.Duplicates", stream(func(c *StreamConfig) { c.Duplicates = -time.Second })},
		{"window over max age", "natsjs.StreamConfig.Duplicates", stream(func(c *StreamConfig) { c.Duplicates, c.MaxAge = time.Hour, time.Minute })},
		{"max age negative", "natsjs.StreamConfig.MaxAge", stream(func(c *StreamConfig) { c.MaxAge = -1 })},
		{"replicas", "natsjs.StreamConfig.Replicas", stream(func(c *StreamConfig) { c.Replicas = 6 })},
		{"consumer stream", "natsjs.ConsumerConfig.Stream", consumer(func(c *ConsumerConfig) { c.Stream = "" })},
		{"durable", "natsjs.ConsumerConfig.Durable", consumer(func(c *ConsumerConfig) { c.Durable = "a b" })},
		{"ack wait", "natsjs.ConsumerConfig.AckWait", consumer(func(c *ConsumerConfig) { c.AckWait = 500 * time.Millisecond })},
		{"max deliver", "natsjs.ConsumerConfig.MaxDeliver", consumer(func(c *ConsumerConfig) { c.MaxDeliver = -1 })},
		{"backoff steps", "natsjs.ConsumerConfig.BackOff", consumer(func(c *ConsumerConfig) {
			c.MaxDeliver, c.BackOff = 2, []time.Duration{time.Second, time.Second}
		})},
		{"backoff step", "natsjs.ConsumerConfig.BackOff", consumer(func(c *ConsumerConfig) { c.BackOff = []time.Duration{time.Second, 0} })},
		{"max ack pending", "natsjs.ConsumerConfig.MaxAckPending", consumer(func(c *ConsumerConfig) { c.MaxAckPending = -1 })},
		{"publisher js", "natsjs.NewPublisher js", second(NewPublisher(nil, PublisherConfig{}))},
		{"window", "natsjs.PublisherConfig.Window", second(NewPublisher(js, PublisherConfig{Window: 65537}))},
		{"ack timeout", "natsjs.PublisherConfig.AckTimeout", second(NewPublisher(js, PublisherConfig{AckTimeout: -1}))},
		{"batch size", "natsjs.PublisherConfig.BatchSize", second(NewPublisher(js, PublisherConfig{BatchSize: -1}))},
		{"batch mode", "natsjs.PublisherConfig.Batch", second(NewPublisher(js, PublisherConfig{Batch: 7}))},
		{"subscriber consumer", "natsjs.NewSubscriber consumer", second(NewSubscriber(nil, SubscriberConfig{}))},
		{"embed dir", "natsembed.Config.Dir", second(natsembed.Start(natsembed.Config{}))},
		{"embed port", "natsembed.Config.Port", second(natsembed.Start(natsembed.Config{Dir: t.TempDir(), Port: 70000}))},
		{"embed sync", "natsembed.Config.SyncInterval", second(natsembed.Start(natsembed.Config{Dir: t.TempDir(), SyncInterval: -1}))},
	}
	for _, tc := range tests {
		var ce *eos.ConfigError
		switch {
		case !errors.As(tc.err, &ce):
			t.Errorf("%s: %v, want a *eos.ConfigError", tc.name, tc.err)
		case !errors.Is(tc.err, eos.ErrInvalidConfig):
			t.Errorf("%s: %v does not match eos.ErrInvalidConfig", tc.name, tc.err)
		case ce.Field != tc.field:
			t.Errorf("%s: field %q, want %q", tc.name, ce.Field, tc.field)
		}
	}
	cons, _, err := EnsureConsumer(ctx, js, ConsumerConfig{Stream: "S", Durable: "d"})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		field string
		cfg   SubscriberConfig
	}{
		{"natsjs.SubscriberConfig.Buffer", SubscriberConfig{Buffer: -1}},
		{"natsjs.SubscriberConfig.BufferBytes", SubscriberConfig{BufferBytes: 1 << 20}},
		{"natsjs.SubscriberConfig.CloseTimeout", SubscriberConfig{CloseTimeout: -time.Second}},
		{"natsjs.SubscriberConfig.Heartbeat", SubscriberConfig{Heartbeat: 100 * time.Millisecond}},
		{"natsjs.SubscriberConfig.Heartbeat", SubscriberConfig{Heartbeat: 20 * time.Second}},
	} {
		var ce *eos.ConfigError
		if _, err := NewSubscriber(cons, tc.cfg); !errors.As(err, &ce) || ce.Field != tc.field {
			t.Errorf("%+v: %v, want a configuration error on %s", tc.cfg, err, tc.field)
		}
	}
	// The server's own default: the window shrinks to a shorter MaxAge.
	if _, _, err := EnsureStream(ctx, js, StreamConfig{Name: "Aged", Subjects: []string{"aged"}, MaxAge: time.Minute}); err != nil {
		t.Errorf("MaxAge under the default window: %v", err)
	}
}

func second[T any](_ T, err error) error { return err }

func TestRedeliveryHorizon(t *testing.T) {
	s := StreamConfig{Name: "S", Subjects: []string{"s"}}
	tests := []struct {
		name      string
		s         StreamConfig
		c         ConsumerConfig
		republish time.Duration
		want      time.Duration
	}{
		{"defaults", s, ConsumerConfig{}, 0, 1000 * 30 * time.Second},
		{"ack wait × max deliver", s, ConsumerConfig{AckWait: 10 * time.Second, MaxDeliver: 20}, 0, 200 * time.Second},
		{"backoff then its last step", s, ConsumerConfig{MaxDeliver: 10, BackOff: []time.Duration{time.Second, 5 * time.Second, 30 * time.Second}}, 0,
			time.Second + 5*time.Second + 8*30*time.Second},
		{"window larger", StreamConfig{Name: "S", Subjects: []string{"s"}, Duplicates: time.Hour}, ConsumerConfig{AckWait: time.Second, MaxDeliver: 5}, 0, time.Hour},
		{"default window larger", s, ConsumerConfig{AckWait: time.Second, MaxDeliver: 3}, 0, 2 * time.Minute},
		{"saturates", s, ConsumerConfig{AckWait: time.Hour, MaxDeliver: 1 << 40}, 0, time.Duration(1<<63 - 1)},
		{"re-publish inside the window", s, ConsumerConfig{AckWait: time.Second, MaxDeliver: 3}, time.Minute, 2 * time.Minute},
		{"re-publish past the window, then redelivered", s, ConsumerConfig{AckWait: time.Second, MaxDeliver: 3}, 24 * time.Hour,
			24*time.Hour + 3*time.Second},
		{"re-publish saturates", s, ConsumerConfig{AckWait: time.Hour, MaxDeliver: 1 << 30}, 1 << 62, time.Duration(1<<63 - 1)},
	}
	for _, tc := range tests {
		tc.c.Stream, tc.c.Durable = "S", "d"
		got, err := RedeliveryHorizon(tc.s, tc.c, tc.republish)
		if err != nil || got != tc.want {
			t.Errorf("%s: %v, %v; want %v", tc.name, got, err, tc.want)
		}
	}
	c := ConsumerConfig{Stream: "S", Durable: "d"}
	if _, err := RedeliveryHorizon(s, ConsumerConfig{Stream: "S", Durable: "d", MaxDeliver: -1}, 0); !errors.Is(err, eos.ErrInvalidConfig) {
		t.Errorf("unlimited redelivery: %v, want a configuration error", err)
	}
	if _, err := RedeliveryHorizon(s, c, -time.Second); !errors.Is(err, eos.ErrInvalidConfig) {
		t.Errorf("negative re-publish horizon: %v, want a configuration error", err)
	}
}

// TestRetentionCoversRepublish is the bound enforced: a relay that may
// re-publish for a day (a day-long broker outage) makes compact refuse a
// dedupe retention of twelve hours, which a copy re-published past the
// two-minute duplicate window would outlive.
func TestRetentionCoversRepublish(t *testing.T) {
	e := testdb.SQLite(t)
	h, err := RedeliveryHorizon(StreamConfig{Name: "S", Subjects: []string{"s"}}, ConsumerConfig{Stream: "S", Durable: "d"}, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	_, err = compact.New(e.Driver, compact.Config{RedeliveryHorizon: h, Retention: 12 * time.Hour})
	var ce *eos.ConfigError
	if !errors.As(err, &ce) || ce.Field != "compact.Config.Retention" {
		t.Errorf("retention 12h under a horizon of %v: %v, want a configuration error on Retention", h, err)
	}
}

func TestPublishMessageDuplicate(t *testing.T) {
	js := embedded(t, "dup.>")
	var seen []string
	pub, err := NewPublisher(js, PublisherConfig{OnDuplicate: func(subject, id string) { seen = append(seen, subject+" "+id) }})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	m := eos.Message{ID: eos.NewID(), Payload: []byte("x")}
	first, err := pub.PublishMessage(ctx, "dup.a", m)
	if err != nil || first.Duplicate || first.Stream != "S" || first.Sequence != 1 {
		t.Fatalf("first publish: %+v, %v", first, err)
	}
	again, err := pub.PublishMessage(ctx, "dup.a", m)
	if err != nil || !again.Duplicate || again.Sequence != first.Sequence {
		t.Fatalf("re-publish: %+v, %v; want a duplicate of sequence %d", again, err, first.Sequence)
	}
	if pub.Duplicates() != 1 || len(seen) != 1 || seen[0] != "dup.a "+m.ID {
		t.Errorf("Duplicates() = %d, OnDuplicate saw %v", pub.Duplicates(), seen)
	}
	if _, err := pub.PublishMessage(ctx, "dup.a", eos.Message{}); !errors.Is(err, eos.ErrInvalidMessage) {
		t.Errorf("message without id: %v, want eos.ErrInvalidMessage", err)
	}
}

// TestPublishWithoutAck checks that Publish gives up on acks that never
// come instead of waiting for ever: here a plain subscriber takes the
// messages (no stream captures the subject) and never answers.
func TestPublishWithoutAck(t *testing.T) {
	js := embedded(t, "acked.>")
	sub, err := js.Conn().SubscribeSync("silent.>")
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	pub, err := NewPublisher(js, PublisherConfig{AckTimeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	envs := []outbox.Envelope{
		{Topic: "acked.a", Message: eos.Message{ID: "1"}},
		{Topic: "silent.a", Message: eos.Message{ID: "2"}},
		{Topic: "acked.a", Message: eos.Message{ID: "3"}},
	}
	n, err := pub.Publish(context.Background(), envs)
	if n != 1 || err == nil || !strings.Contains(err.Error(), "no ack within") {
		t.Errorf("Publish: %d acknowledged, %v; want 1 and no ack for the second", n, err)
	}
	js.Conn().Close()
	if n, err := pub.Publish(context.Background(), envs); n != 0 || err == nil {
		t.Errorf("Publish on a closed connection: %d, %v", n, err)
	}
}

// TestPublishMessageWithoutAck: a synchronous publish (PublishMessage,
// and Publish with Window 1) gives up after AckTimeout even when the
// caller's context lasts much longer: a reply that never comes must not
// hold a producer or a relay until its context ends.
func TestPublishMessageWithoutAck(t *testing.T) {
	js := embedded(t, "acked.>")
	sub, err := js.Conn().SubscribeSync("silent.>")
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	pub, err := NewPublisher(js, PublisherConfig{AckTimeout: 200 * time.Millisecond, Window: 1})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second) // a hundred AckTimeouts
	defer cancel()
	if _, err := pub.PublishMessage(ctx, "silent.a", eos.Message{ID: "1"}); !errors.Is(err, context.DeadlineExceeded) || ctx.Err() != nil {
		t.Errorf("PublishMessage: %v (caller's context: %v); want its own deadline exceeded, the caller's alive", err, ctx.Err())
	}
	n, err := pub.Publish(ctx, []outbox.Envelope{{Topic: "acked.a", Message: eos.Message{ID: "2"}}, {Topic: "silent.a", Message: eos.Message{ID: "3"}}})
	if n != 1 || err == nil || ctx.Err() != nil {
		t.Errorf("Publish, window 1: %d acknowledged, %v (caller's context: %v); want 1, then no ack", n, err, ctx.Err())
	}
}

// TestFailPublishAckLost arms the lost-PubAck point once: the Publisher
// reports the message unacknowledged although the broker stored it, and
// the caller's retry is dropped by the broker's dedupe.
func TestFailPublishAckLost(t *testing.T) {
	if _, err := failpoint.Parse(FailPublishAckLost+"=error,"+FailAckLost+"=error", nil, FailpointNames()...); err != nil {
		t.Fatalf("the natsjs points do not parse as declared: %v", err)
	}
	js := embedded(t, "lost.>")
	fps := &failpoint.Set{}
	pub, err := NewPublisher(js, PublisherConfig{Test: eos.TestConfig{Failpoints: fps}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	envs := []outbox.Envelope{
		{Topic: "lost.a", Message: eos.Message{ID: "1"}},
		{Topic: "lost.a", Message: eos.Message{ID: "2"}},
		{Topic: "lost.a", Message: eos.Message{ID: "3"}},
	}
	fps.Arm(FailPublishAckLost, failpoint.Times(1, failpoint.Error()))
	n, err := pub.Publish(ctx, envs)
	if n != 0 || !errors.Is(err, failpoint.ErrInjected) {
		t.Fatalf("Publish with the first ack lost: %d acknowledged, %v; want 0 and the injected error", n, err)
	}
	if n, err := pub.Publish(ctx, envs); n != 3 || err != nil {
		t.Fatalf("retry: %d acknowledged, %v", n, err)
	}
	if pub.Duplicates() != 3 {
		t.Errorf("Duplicates() = %d after the retry, want 3 (the broker stored all three the first time)", pub.Duplicates())
	}
	fps.Arm(FailPublishAckLost, failpoint.Times(1, failpoint.Error()))
	if _, err := pub.PublishMessage(ctx, "lost.a", eos.Message{ID: "4"}); !errors.Is(err, failpoint.ErrInjected) {
		t.Fatalf("PublishMessage with its ack lost: %v", err)
	}
	if res, err := pub.PublishMessage(ctx, "lost.a", eos.Message{ID: "4"}); err != nil || !res.Duplicate {
		t.Fatalf("PublishMessage retry: %+v, %v; want a duplicate", res, err)
	}
	st, err := js.Stream(ctx, "S")
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 4 {
		t.Errorf("stream holds %d messages, want 4", info.State.Msgs)
	}
}

// TestFailAckLost arms the lost-ack point once: Ack reports success, the
// broker never hears of it and delivers the message again; the second ack
// reaches it. The consumer samples every ack it processes, so the broker
// itself says which acks it got.
func TestFailAckLost(t *testing.T) {
	js := embedded(t, "ack.>")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cons, err := js.CreateConsumer(ctx, "S", jetstream.ConsumerConfig{
		Durable: "c", AckPolicy: jetstream.AckExplicitPolicy, AckWait: testAckWait, SampleFrequency: "100%",
	})
	if err != nil {
		t.Fatal(err)
	}
	acks, err := js.Conn().SubscribeSync("$JS.EVENT.METRIC.CONSUMER.ACK.S.c")
	if err != nil {
		t.Fatal(err)
	}
	defer acks.Unsubscribe()
	fps := &failpoint.Set{}
	fps.Arm(FailAckLost, failpoint.Times(1, failpoint.Error()))
	sub, err := NewSubscriber(cons, SubscriberConfig{Buffer: 1, Test: eos.TestConfig{Failpoints: fps}})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	pub, err := NewPublisher(js, PublisherConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pub.PublishMessage(ctx, "ack.a", eos.Message{ID: "m"}); err != nil {
		t.Fatal(err)
	}
	for want := uint64(1); want <= 2; want++ {
		ds, err := sub.Fetch(ctx, 1, 0)
		if err != nil || len(ds) != 1 {
			t.Fatalf("delivery %d: %d messages, %v", want, len(ds), err)
		}
		d := ds[0].(*Delivery)
		if d.Message().ID != "m" || d.NumDelivered() != want {
			t.Fatalf("delivery %d: id %q, delivered %d times", want, d.Message().ID, d.NumDelivered())
		}
		if err := d.Ack(ctx); err != nil {
			t.Fatalf("ack %d: %v (a lost plain ack reports success)", want, err)
		}
	}
	// The first ack the broker processed is that of the second delivery.
	m, err := acks.NextMsgWithContext(ctx)
	if err != nil {
		t.Fatalf("no ack reached the broker: %v", err)
	}
	var got struct {
		StreamSeq  uint64 `json:"stream_seq"`
		Deliveries uint64 `json:"deliveries"`
	}
	if err := json.Unmarshal(m.Data, &got); err != nil {
		t.Fatal(err)
	}
	if got.StreamSeq != 1 || got.Deliveries != 2 {
		t.Errorf("the broker got an ack of sequence %d, delivery %d; want sequence 1, delivery 2", got.StreamSeq, got.Deliveries)
	}
}
