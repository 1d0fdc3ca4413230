package natsjs

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/eoskit/eos"
	"github.com/eoskit/eos/failpoint"
	"github.com/eoskit/eos/internal/testdb"
	"github.com/eoskit/eos/internal/testenv"
	"github.com/eoskit/eos/outbox"
)

// errBatchDuplicate is the server's refusal of an atomic batch holding a
// message id it has seen.
var errBatchDuplicate = &jetstream.APIError{ErrorCode: 10201}

// TestBatchPlan checks how random mixes of streams and keys are grouped
// into publishes: a batch holds messages of one stream, at most BatchSize,
// and each message's key's previous message is in its own publish or
// before that publish's first message, so a publish waits only for
// messages before it (run's loop relies on it).
func TestBatchPlan(t *testing.T) {
	streamNames := []string{"", "A", "B"}
	for seed := range uint64(200) {
		r := rand.New(rand.NewPCG(seed, 1))
		size := 2 + r.IntN(5)
		n := 1 + r.IntN(60)
		msgs := make([]outbox.Envelope, n)
		streams := make([]string, n)
		for i := range msgs {
			if k := r.IntN(5); k > 0 {
				msgs[i].Key = fmt.Sprint("k", k)
			}
			streams[i] = streamNames[r.IntN(len(streamNames))]
		}
		w := newWindow(&Publisher{cfg: PublisherConfig{BatchSize: size}}, msgs, streams)
		seen := make([]int, n)
		for ui, u := range w.units {
			if !slices.IsSorted(u.msgs) || len(u.msgs) == 0 {
				t.Fatalf("seed %d: unit %d holds %v", seed, ui, u.msgs)
			}
			if len(u.msgs) > 1 && (u.stream == "" || len(u.msgs) > size) {
				t.Fatalf("seed %d: unit %d of stream %q holds %d messages (batch size %d)", seed, ui, u.stream, len(u.msgs), size)
			}
			waits := 0
			for _, c := range u.msgs {
				seen[c]++
				if len(u.msgs) > 1 && streams[c] != u.stream {
					t.Fatalf("seed %d: message %d of stream %q in a batch of %q", seed, c, streams[c], u.stream)
				}
				if w.unitOf[c] != ui {
					t.Fatalf("seed %d: unitOf[%d] = %d, want %d", seed, c, w.unitOf[c], ui)
				}
				prev := -1
				for p := c - 1; p >= 0 && msgs[c].Key != ""; p-- {
					if msgs[p].Key == msgs[c].Key {
						prev = p
						break
					}
				}
				if msgs[c].Key == "" || prev < 0 || w.unitOf[prev] == ui {
					continue
				}
				if prev > u.msgs[0] {
					t.Fatalf("seed %d: message %d (key %s) in a publish starting at %d waits for message %d", seed, c, msgs[c].Key, u.msgs[0], prev)
				}
				waits++
			}
			if u.waits != waits {
				t.Fatalf("seed %d: unit %d waits for %d messages, want %d", seed, ui, u.waits, waits)
			}
			if slices.Contains(w.ready, ui) != (waits == 0) {
				t.Fatalf("seed %d: unit %d ready %v with %d waits", seed, ui, w.ready, waits)
			}
		}
		for c, k := range seen {
			if k != 1 {
				t.Fatalf("seed %d: message %d in %d units", seed, c, k)
			}
		}
	}
	// One stream: full batches, whatever the keys.
	msgs := make([]outbox.Envelope, 10)
	for i := range msgs {
		msgs[i].Key = fmt.Sprint("k", i%3)
	}
	w := newWindow(&Publisher{cfg: PublisherConfig{BatchSize: 4}}, msgs, slices.Repeat([]string{"A"}, 10))
	if len(w.units) != 3 {
		t.Errorf("10 messages of one stream in %d publishes, want 3 batches", len(w.units))
	}
}

// batchPublisher returns a Publisher over js with cfg, counting the
// fallbacks' reasons.
func batchPublisher(t *testing.T, js jetstream.JetStream, cfg PublisherConfig) (*Publisher, *[]error) {
	t.Helper()
	var whys []error
	cfg.OnFallback = func(_ string, _ int, why error) { whys = append(whys, why) }
	pub, err := NewPublisher(js, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return pub, &whys
}

// envelopes returns n messages on topic with ids prefix00…, keys cycling
// through keys (none if empty).
func envelopes(topic, prefix string, n int, keys ...string) []outbox.Envelope {
	out := make([]outbox.Envelope, n)
	for i := range out {
		out[i] = outbox.Envelope{Topic: topic, Message: eos.Message{ID: fmt.Sprintf("%s%02d", prefix, i), Payload: []byte("x")}}
		if len(keys) > 0 {
			out[i].Key = keys[i%len(keys)]
		}
	}
	return out
}

// TestPublishInAtomicBatches: on a stream EnsureStream made, Publish sends
// atomic batches; on a stream without atomic publish, or with BatchOff, it
// publishes each message alone. Each way the stream holds every message
// once, in order.
func TestPublishInAtomicBatches(t *testing.T) {
	js := embedded(t, "unused")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, tc := range []struct {
		name    string
		stream  StreamConfig
		batch   BatchMode
		batches int64
	}{
		{"atomic stream", StreamConfig{Name: "ATOMIC", Subjects: []string{"atomic.>"}}, BatchAuto, 3},
		{"stream without atomic publish", StreamConfig{Name: "PLAIN", Subjects: []string{"plain.>"}, NoAtomicPublish: true}, BatchAuto, 0},
		{"BatchOff", StreamConfig{Name: "OFF", Subjects: []string{"off.>"}}, BatchOff, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, _, err := EnsureStream(ctx, js, tc.stream); err != nil {
				t.Fatal(err)
			}
			pub, whys := batchPublisher(t, js, PublisherConfig{Batch: tc.batch, BatchSize: 100})
			envs := envelopes(strings.TrimSuffix(tc.stream.Subjects[0], ">")+"a", "m", 250, "a", "b", "c")
			if n, err := pub.Publish(ctx, envs); n != len(envs) || err != nil {
				t.Fatalf("Publish: %d of %d, %v", n, len(envs), err)
			}
			if pub.Batches() != tc.batches || pub.Fallbacks() != 0 {
				t.Errorf("%d atomic batches, %d fallbacks (%v); want %d and 0", pub.Batches(), pub.Fallbacks(), *whys, tc.batches)
			}
			checkStored(ctx, t, js, tc.stream.Name, envs)
		})
	}
}

// TestBatchOnOlderServer: against a server older than 2.12 (the machine's
// NATS), EnsureStream leaves AllowAtomicPublish alone and Publish sends
// each message alone. A batch sent all the same is taken for separate
// messages, the commit's ack does not name the batch, and the Publisher
// publishes the messages again one by one (the stream drops the copies):
// it never counts messages sent without an ack as acknowledged.
func TestBatchOnOlderServer(t *testing.T) {
	nc := connectURL(t, testenv.NATSURL(t))
	var major, minor int
	if _, err := fmt.Sscanf(nc.ConnectedServerVersion(), "%d.%d", &major, &minor); err != nil || major > 2 || major == 2 && minor >= 12 {
		t.Skipf("the server at %s is %s (%v), which has atomic batches", nc.ConnectedUrl(), nc.ConnectedServerVersion(), err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	name := testenv.Name("eos_b_")
	cfg := StreamConfig{Name: name, Subjects: []string{"eos.b." + name + ".>"}, Memory: true}
	defer js.DeleteStream(context.Background(), name)
	for _, want := range []string{"created", "unchanged"} {
		if _, p, err := EnsureStream(ctx, js, cfg); err != nil || p.String() != want {
			t.Fatalf("EnsureStream on %s: %v, %v; want %s", nc.ConnectedServerVersion(), p, err, want)
		}
	}
	pub, whys := batchPublisher(t, js, PublisherConfig{})
	envs := envelopes("eos.b."+name+".x", "m", 20, "a")
	if n, err := pub.Publish(ctx, envs[:10]); n != 10 || err != nil {
		t.Fatalf("Publish: %d of 10, %v", n, err)
	}
	if pub.Batches() != 0 || pub.Fallbacks() != 0 {
		t.Errorf("%d atomic batches, %d fallbacks (%v) on %s", pub.Batches(), pub.Fallbacks(), *whys, nc.ConnectedServerVersion())
	}
	forced := newWindow(pub, envs[10:], slices.Repeat([]string{name}, 10))
	if n, err := forced.run(ctx); n != 10 || err != nil {
		t.Fatalf("a batch sent to %s: %d of 10, %v", nc.ConnectedServerVersion(), n, err)
	}
	if pub.Batches() != 0 || pub.Fallbacks() != 1 || pub.Duplicates() != 10 {
		t.Errorf("a batch sent to %s: %d atomic batches, %d fallbacks (%v), %d duplicates; want 0, 1 and 10",
			nc.ConnectedServerVersion(), pub.Batches(), pub.Fallbacks(), *whys, pub.Duplicates())
	}
	checkStored(ctx, t, js, name, envs)
}

// TestBatchAfterRelayCrash: the relay publishes a batch, and crashes
// before it marks the rows sent; the next pass publishes the same ids in
// a batch, which the stream refuses whole (10201). The Publisher publishes
// them one by one: every one is a duplicate, the rows are marked sent, and
// the stream holds each message once, in order.
func TestBatchAfterRelayCrash(t *testing.T) {
	js := embedded(t, "crash.>")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	e := testdb.SQLite(t)
	ob, err := outbox.New(e.Driver, outbox.Config{})
	if err != nil {
		t.Fatal(err)
	}
	envs := envelopes("crash.a", "m", 20, "a", "b", "c")
	tx, err := e.Driver.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range envs {
		if err := ob.Enqueue(ctx, tx, m.Topic, m.Message); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.Driver.Commit(ctx, tx); err != nil {
		t.Fatal(err)
	}
	pub, whys := batchPublisher(t, js, PublisherConfig{})
	fps := &failpoint.Set{}
	fps.Arm(outbox.FailAfterPublishBeforeMark, failpoint.Times(1, failpoint.Error()))
	r, err := outbox.NewRelay(e.Driver, pub, outbox.RelayConfig{Test: eos.TestConfig{Failpoints: fps}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Forward(ctx); !errors.Is(err, failpoint.ErrInjected) {
		t.Fatalf("the crashing pass: %v", err)
	}
	if n, err := r.Forward(ctx); n != len(envs) || err != nil {
		t.Fatalf("the pass after the crash: %d forwarded, %v", n, err)
	}
	if pub.Batches() != 1 || pub.Fallbacks() != 1 || len(*whys) != 1 || !errors.Is((*whys)[0], errBatchDuplicate) {
		t.Errorf("%d atomic batches, %d fallbacks (%v); want 1 and 1, refused with error 10201", pub.Batches(), pub.Fallbacks(), *whys)
	}
	if pub.Duplicates() != int64(len(envs)) {
		t.Errorf("%d duplicates reported, want %d", pub.Duplicates(), len(envs))
	}
	if st, err := ob.Stats(ctx); err != nil || st.Unsent != 0 {
		t.Errorf("after the second pass: %+v, %v", st, err)
	}
	checkStored(ctx, t, js, "S", envs)
}

// TestBatchRefusalHoldsLaterBatchesOfKey: of a key's messages in three
// batches, the stream has one of the first batch already (published alone
// before, as by a relay that crashed). That batch is refused and published
// one by one, and the later batches of the key go only after it: the key's
// messages are stored in order, the one published before first.
func TestBatchRefusalHoldsLaterBatchesOfKey(t *testing.T) {
	js := embedded(t, "hold.>")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	pub, whys := batchPublisher(t, js, PublisherConfig{BatchSize: 4})
	envs := envelopes("hold.a", "m", 12, "k")
	if _, err := pub.PublishMessage(ctx, "hold.a", envs[1].Message); err != nil {
		t.Fatal(err)
	}
	if n, err := pub.Publish(ctx, envs); n != len(envs) || err != nil {
		t.Fatalf("Publish: %d of %d, %v", n, len(envs), err)
	}
	if pub.Batches() != 2 || pub.Fallbacks() != 1 || !errors.Is((*whys)[0], errBatchDuplicate) {
		t.Errorf("%d atomic batches, %d fallbacks (%v); want 2 and 1, refused with error 10201", pub.Batches(), pub.Fallbacks(), *whys)
	}
	want := append([]outbox.Envelope{envs[1], envs[0]}, envs[2:]...)
	checkStored(ctx, t, js, "S", want)
}

// TestBatchWhenStreamStopsAllowingIt: the operator turns atomic publish
// off after the Publisher looked the stream up. The next batch is refused,
// its messages go one by one, and the Publisher looks the stream up again
// instead of sending another batch.
func TestBatchWhenStreamStopsAllowingIt(t *testing.T) {
	js := embedded(t, "off.>")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	pub, whys := batchPublisher(t, js, PublisherConfig{})
	envs := envelopes("off.a", "m", 30, "a", "b")
	if n, err := pub.Publish(ctx, envs[:10]); n != 10 || err != nil || pub.Batches() != 1 {
		t.Fatalf("Publish: %d, %v, %d atomic batches", n, err, pub.Batches())
	}
	if _, _, err := EnsureStream(ctx, js, StreamConfig{Name: "S", Subjects: []string{"off.>"}, NoAtomicPublish: true}); err != nil {
		t.Fatal(err)
	}
	for _, part := range [][]outbox.Envelope{envs[10:20], envs[20:]} {
		if n, err := pub.Publish(ctx, part); n != len(part) || err != nil {
			t.Fatalf("Publish: %d of %d, %v", n, len(part), err)
		}
	}
	disabled := &jetstream.APIError{ErrorCode: 10174}
	if pub.Batches() != 1 || pub.Fallbacks() != 1 || !errors.Is((*whys)[0], disabled) {
		t.Errorf("%d atomic batches, %d fallbacks (%v); want 1 and 1, refused with error 10174", pub.Batches(), pub.Fallbacks(), *whys)
	}
	checkStored(ctx, t, js, "S", envs)
}

// TestEnsureStreamAtomicPublish: EnsureStream turns atomic publish on by
// default and off with NoAtomicPublish, and leaves it off on a stream in
// the async persist mode, which cannot take it.
func TestEnsureStreamAtomicPublish(t *testing.T) {
	js := embedded(t, "unused")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cfg := StreamConfig{Name: "P", Subjects: []string{"p.>"}}
	for _, step := range []struct {
		no     bool
		want   string
		atomic bool
	}{
		{false, "created", true},
		{true, "updated AllowAtomicPublish true → false", false},
		{true, "unchanged", false},
		{false, "updated AllowAtomicPublish false → true", true},
	} {
		cfg.NoAtomicPublish = step.no
		s, p, err := EnsureStream(ctx, js, cfg)
		if err != nil || p.String() != step.want || s.CachedInfo().Config.AllowAtomicPublish != step.atomic {
			t.Fatalf("NoAtomicPublish %v: %v, %v, AllowAtomicPublish %v; want %s and %v", step.no, p, err, s.CachedInfo().Config.AllowAtomicPublish, step.want, step.atomic)
		}
	}
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "ASYNC", Subjects: []string{"async.>"}, PersistMode: jetstream.AsyncPersistMode}); err != nil {
		t.Fatal(err)
	}
	if _, p, err := EnsureStream(ctx, js, StreamConfig{Name: "ASYNC", Subjects: []string{"async.>"}}); err != nil || p.String() != "unchanged" {
		t.Fatalf("stream in the async persist mode: %v, %v; want unchanged", p, err)
	}
}

// TestBatchStreamLookedUpAgain: the operator turns atomic publish on after
// the Publisher looked the stream up; the Publisher sends batches once it
// looks the stream up again, a minute later.
func TestBatchStreamLookedUpAgain(t *testing.T) {
	js := embedded(t, "unused")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cfg := StreamConfig{Name: "LATER", Subjects: []string{"later.>"}, NoAtomicPublish: true}
	if _, _, err := EnsureStream(ctx, js, cfg); err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	pub, whys := batchPublisher(t, js, PublisherConfig{Test: eos.TestConfig{Now: func() time.Time { return now }}})
	envs := envelopes("later.a", "m", 30, "a", "b")
	publish := func(part []outbox.Envelope, batches int64) {
		t.Helper()
		if n, err := pub.Publish(ctx, part); n != len(part) || err != nil {
			t.Fatalf("Publish: %d of %d, %v", n, len(part), err)
		}
		if pub.Batches() != batches || pub.Fallbacks() != 0 {
			t.Fatalf("%d atomic batches, %d fallbacks (%v); want %d and 0", pub.Batches(), pub.Fallbacks(), *whys, batches)
		}
	}
	publish(envs[:10], 0)
	cfg.NoAtomicPublish = false
	if _, _, err := EnsureStream(ctx, js, cfg); err != nil {
		t.Fatal(err)
	}
	publish(envs[10:20], 0)
	now = now.Add(time.Minute)
	publish(envs[20:], 1)
	checkStored(ctx, t, js, "LATER", envs)
}

// TestBatchToDeletedStream: the stream the Publisher looked up is deleted.
// The server has no responder for the batch's commit; the Publisher
// publishes the messages one by one, which finds that no stream captures
// their subject: the first is unpublishable, as without batches.
func TestBatchToDeletedStream(t *testing.T) {
	js := embedded(t, "unused")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, _, err := EnsureStream(ctx, js, StreamConfig{Name: "GONE", Subjects: []string{"gone.>"}}); err != nil {
		t.Fatal(err)
	}
	pub, whys := batchPublisher(t, js, PublisherConfig{})
	envs := envelopes("gone.a", "m", 20, "a")
	if n, err := pub.Publish(ctx, envs[:10]); n != 10 || err != nil || pub.Batches() != 1 {
		t.Fatalf("Publish: %d, %v, %d atomic batches", n, err, pub.Batches())
	}
	if err := js.DeleteStream(ctx, "GONE"); err != nil {
		t.Fatal(err)
	}
	n, err := pub.Publish(ctx, envs[10:])
	if n != 0 || !errors.Is(err, outbox.ErrUnpublishable) {
		t.Errorf("Publish to the deleted stream: %d, %v; want 0 and unpublishable", n, err)
	}
	if pub.Fallbacks() != 1 || !errors.Is((*whys)[0], jetstream.ErrNoStreamResponse) {
		t.Errorf("%d fallbacks (%v); want 1, for no responders", pub.Fallbacks(), *whys)
	}
}
