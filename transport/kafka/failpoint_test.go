package kafka_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/eoskit/eos"
	"github.com/eoskit/eos/failpoint"
	"github.com/eoskit/eos/inbox"
	"github.com/eoskit/eos/internal/testenv"
	"github.com/eoskit/eos/outbox"
	"github.com/eoskit/eos/transport/kafka"
)

func TestFailpointNamesParse(t *testing.T) {
	spec := kafka.FailPublishAckLost + "=error@1," + kafka.FailAckLost + "=error"
	if _, err := failpoint.Parse(spec, nil, kafka.FailpointNames()...); err != nil {
		t.Fatalf("the kafka points do not parse as declared: %v", err)
	}
}

// With the lost-ack point of the Publisher armed, Publish reports nothing
// acknowledged although every record is stored; the retry stores them
// again (Kafka has no dedupe by id), for the inbox to suppress.
func TestFailPublishAckLost(t *testing.T) {
	b := newFake(t)
	topic := b.topic(t, 2)
	fps, err := failpoint.Parse(kafka.FailPublishAckLost+"=error@1", nil, kafka.FailpointNames()...)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := kafka.NewPublisher(b.client(t), kafka.PublisherConfig{Test: eos.TestConfig{Failpoints: fps}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	envs := []outbox.Envelope{envelope(topic, "a", []byte("1")), envelope(topic, "b", []byte("2")), envelope(topic, "a", []byte("3"))}
	n, err := pub.Publish(ctx, envs)
	if n != 0 || !errors.Is(err, failpoint.ErrInjected) || errors.Is(err, outbox.ErrUnpublishable) {
		t.Fatalf("Publish with its acks lost: %d acknowledged, %v; want 0 and the injected error, retryable", n, err)
	}
	for id, c := range countRecords(t, b, topic, len(envs)) {
		if c != 1 {
			t.Errorf("%s stored %d times after the publish whose acks were lost, want 1", id, c)
		}
	}
	fps.Disarm(kafka.FailPublishAckLost)
	if n, err := pub.Publish(ctx, envs); n != len(envs) || err != nil {
		t.Fatalf("retry: %d acknowledged, %v", n, err)
	}
	counts := countRecords(t, b, topic, 2*len(envs))
	for _, e := range envs {
		if c := counts[e.Message.ID]; c != 2 {
			t.Errorf("%s stored %d times after the retry, want 2 (the copy lands)", e.Message.ID, c)
		}
	}
}

// commitRecorder records the offsets the brokers are asked to commit for
// group, and closes reached once one of them is at least want.
type commitRecorder struct {
	mu      sync.Mutex
	offsets []int64
	want    int64
	reached chan struct{}
}

func recordCommits(b *broker, group string, want int64) *commitRecorder {
	r := &commitRecorder{want: want, reached: make(chan struct{})}
	b.fake.ControlKey(int16(kmsg.OffsetCommit), func(req kmsg.Request) (kmsg.Response, error, bool) {
		b.fake.KeepControl()
		c := req.(*kmsg.OffsetCommitRequest)
		if c.Group != group {
			return nil, nil, false
		}
		r.mu.Lock()
		defer r.mu.Unlock()
		for _, t := range c.Topics {
			for _, p := range t.Partitions {
				done := len(r.offsets) > 0 && r.offsets[len(r.offsets)-1] >= r.want
				r.offsets = append(r.offsets, p.Offset)
				if !done && p.Offset >= r.want {
					close(r.reached)
				}
			}
		}
		return nil, nil, false
	})
	return r
}

func (r *commitRecorder) seen() []int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]int64(nil), r.offsets...)
}

// With the Subscriber's lost-ack point armed, Ack reports success but the
// record stays unacked: no offset is committed past it, and it is handed
// out again after AckWait; its second ack commits the partition through.
func TestFailAckLostRedelivers(t *testing.T) {
	b := newFake(t)
	topic, group := b.topic(t, 1), testenv.Name("g-")
	const n = 3
	publishN(t, b, topic, n, 1)
	commits := recordCommits(b, group, n)
	fps, err := failpoint.Parse(kafka.FailAckLost+"=error@1", nil, kafka.FailpointNames()...)
	if err != nil {
		t.Fatal(err)
	}
	s := b.subscriber(t, group, topic, kafka.SubscriberConfig{AckWait: 100 * time.Millisecond, Test: eos.TestConfig{Failpoints: fps}})
	ctx := context.Background()
	first := fetch(t, s, 1)
	if len(first) != 1 {
		t.Fatalf("first fetch: %d records", len(first))
	}
	if _, off := position(t, first[0]); off != 0 {
		t.Fatalf("first fetch: offset %d, want 0", off)
	}
	if err := first[0].Ack(ctx); err != nil {
		t.Fatalf("lost ack: %v, want nil (a lost ack reports success)", err)
	}
	fps.Disarm(kafka.FailAckLost)
	seen := map[int64]int{0: 1}
	for fetches := 0; seen[0] < 2; fetches++ {
		if fetches == 10 {
			t.Fatalf("offset 0 not handed out again in %d fetches (seen %v)", fetches, seen)
		}
		for _, d := range fetch(t, s, 1) {
			_, off := position(t, d)
			seen[off]++
			if off == 0 && d.Message().ID != first[0].Message().ID {
				t.Fatalf("offset 0 came back as %s, first as %s", d.Message().ID, first[0].Message().ID)
			}
			if err := d.Ack(ctx); err != nil {
				t.Fatal(err)
			}
		}
	}
	if seen[1] != 1 || seen[2] != 1 {
		t.Errorf("deliveries by offset %v: offsets 1 and 2 once each", seen)
	}
	select {
	case <-commits.reached:
	case <-time.After(30 * time.Second):
		t.Fatalf("no commit of offset %d after every record was acked; commits %v", n, commits.seen())
	}
	for _, o := range commits.seen() {
		if o > 0 && o < n {
			t.Fatalf("commits %v: offset %d committed while the record at 0 was not acked", commits.seen(), o)
		}
	}
}

// The ack of the last record is lost and nothing follows it: the Fetch
// after it, with nothing new to hand out, hands the record out again once
// AckWait has passed, rather than waiting for a record that never comes.
func TestFailAckLostLastRecord(t *testing.T) {
	b := newFake(t)
	topic, group := b.topic(t, 1), testenv.Name("g-")
	publishN(t, b, topic, 1, 1)
	fps, err := failpoint.Parse(kafka.FailAckLost+"=error@1", nil, kafka.FailpointNames()...)
	if err != nil {
		t.Fatal(err)
	}
	s := b.subscriber(t, group, topic, kafka.SubscriberConfig{AckWait: 100 * time.Millisecond, Test: eos.TestConfig{Failpoints: fps}})
	first := fetch(t, s, 1)
	if len(first) != 1 {
		t.Fatalf("first fetch: %d records", len(first))
	}
	if err := first[0].Ack(context.Background()); err != nil {
		t.Fatalf("lost ack: %v, want nil", err)
	}
	fps.Disarm(kafka.FailAckLost)
	again := fetch(t, s, 1) // fails the test after 30s
	if len(again) != 1 || again[0].Message().ID != first[0].Message().ID {
		t.Fatalf("second fetch: %d records, want the record whose ack was lost", len(again))
	}
}

// A record whose ack was lost goes to the partition's next owner, with
// those after it: the member that leaves commits nothing past it.
func TestFailAckLostNextOwner(t *testing.T) {
	b := newFake(t)
	topic, group := b.topic(t, 1), testenv.Name("g-")
	const n = 3
	publishN(t, b, topic, n, 1)
	fps := &failpoint.Set{}
	fps.Arm(kafka.FailAckLost, failpoint.Times(1, failpoint.Error()))
	a := b.subscriber(t, group, topic, kafka.SubscriberConfig{Test: eos.TestConfig{Failpoints: fps}})
	ctx := context.Background()
	var lost inbox.Delivery
	for got := 0; got < n; {
		for _, d := range fetch(t, a, n) {
			if lost == nil {
				lost = d
			}
			if err := d.Ack(ctx); err != nil {
				t.Fatal(err)
			}
			got++
		}
	}
	a.Close()
	c := b.subscriber(t, group, topic, kafka.SubscriberConfig{})
	ds := fetch(t, c, n)
	if len(ds) == 0 || ds[0].Message().ID != lost.Message().ID {
		t.Fatalf("the next owner's first fetch: %d records; want first %s, whose ack was lost", len(ds), lost.Message().ID)
	}
	if _, off := position(t, ds[0]); off != 0 {
		t.Errorf("the next owner starts at offset %d, want 0", off)
	}
}
