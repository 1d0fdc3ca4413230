package kafka_test

import (
	"context"
	"database/sql"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/eoskit/eos"
	"github.com/eoskit/eos/inbox"
	"github.com/eoskit/eos/internal/testdb"
	"github.com/eoskit/eos/internal/testdb/engines"
	"github.com/eoskit/eos/internal/testenv"
	"github.com/eoskit/eos/outbox"
	"github.com/eoskit/eos/transport/kafka"
)

// Faults injected through kfake's request hooks (Cluster.ControlKey).

// errInjected closes the client's connection when a control function
// returns it as handled.
var errInjected = errors.New("injected: connection dropped")

// countRecords reads topic from the start and counts the records of each
// Eos-Id, until want records have arrived.
func countRecords(t testing.TB, b *broker, topic string, want int) map[string]int {
	t.Helper()
	cl := b.client(t, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out := map[string]int{}
	for got := 0; got < want; {
		fs := cl.PollFetches(ctx)
		if err := fs.Err0(); err != nil {
			t.Fatal(err)
		}
		fs.EachRecord(func(r *kgo.Record) {
			got++
			out[kafka.HeaderIDFunc(kafka.HeaderID)(r)]++
		})
	}
	return out
}

// A produce the broker stored but whose response the client never got:
// the client times out, retries on a new connection, and the idempotent
// producer's sequence numbers make the broker drop the second copy.
func TestFaultProduceResponseLost(t *testing.T) {
	b := newFake(t)
	topic := b.topic(t, 1)
	var n atomic.Int32
	retried := make(chan struct{})
	b.fake.ControlKey(int16(kmsg.Produce), func(kmsg.Request) (kmsg.Response, error, bool) {
		switch n.Add(1) {
		case 1:
			// Held until the client has given up on it and retried; then
			// stored, its response going to a closed connection.
			b.fake.KeepControl()
			b.fake.SleepControl(func() { <-retried })
		case 2:
			close(retried)
		}
		return nil, nil, false
	})
	cl := b.client(t, kgo.ProduceRequestTimeout(200*time.Millisecond), kgo.RequestTimeoutOverhead(200*time.Millisecond))
	p, err := kafka.NewPublisher(cl, kafka.PublisherConfig{ProduceTimeout: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	envs := []outbox.Envelope{envelope(topic, "k", []byte("1")), envelope(topic, "k", []byte("2"))}
	if got, err := p.Publish(context.Background(), envs); got != len(envs) || err != nil {
		t.Fatalf("Publish: %d, %v", got, err)
	}
	if n.Load() < 2 {
		t.Fatalf("%d produce requests: the client did not retry", n.Load())
	}
	// Wait for a later publish so that the held request was surely handled.
	last := envelope(topic, "k", []byte("3"))
	if got, err := p.Publish(context.Background(), []outbox.Envelope{last}); got != 1 || err != nil {
		t.Fatalf("Publish: %d, %v", got, err)
	}
	counts := countRecords(t, b, topic, 3)
	for _, e := range append(envs, last) {
		if c := counts[e.Message.ID]; c != 1 {
			t.Errorf("%s stored %d times, want 1", e.Message.ID, c)
		}
	}
}

// Fetch connections dropped and offset commits refused: the inbox still
// applies every message once, the redeliveries the failed commits cause
// being suppressed by its claims.
func TestFaultFetchAndCommitFailures(t *testing.T) {
	b := newFake(t)
	topic, group := b.topic(t, 4), testenv.Name("g-")
	const n = 400
	ids := make([]string, 0, n)
	envs := make([]outbox.Envelope, n)
	for i := range envs {
		m := testdb.Message(eos.NewID(), testdb.Account(i%streamAccounts), int64(i+1))
		envs[i] = outbox.Envelope{Topic: topic, Message: m}
		ids = append(ids, m.ID)
	}
	if got, err := b.publisher(t).Publish(context.Background(), envs); got != n || err != nil {
		t.Fatalf("Publish: %d, %v", got, err)
	}
	// Every third fetch loses its connection; every offset commit is
	// refused while commitsFail holds.
	var fetches atomic.Int32
	var commitsFail atomic.Bool
	commitsFail.Store(true)
	b.fake.ControlKey(int16(kmsg.Fetch), func(kmsg.Request) (kmsg.Response, error, bool) {
		b.fake.KeepControl()
		if fetches.Add(1)%3 == 0 {
			return nil, errInjected, true
		}
		return nil, nil, false
	})
	b.fake.ControlKey(int16(kmsg.OffsetCommit), func(req kmsg.Request) (kmsg.Response, error, bool) {
		b.fake.KeepControl()
		if !commitsFail.Load() {
			return nil, nil, false
		}
		r := req.(*kmsg.OffsetCommitRequest)
		resp := r.ResponseKind().(*kmsg.OffsetCommitResponse)
		for _, rt := range r.Topics {
			st := kmsg.NewOffsetCommitResponseTopic()
			st.Topic = rt.Topic
			for _, rp := range rt.Partitions {
				sp := kmsg.NewOffsetCommitResponseTopicPartition()
				sp.Partition, sp.ErrorCode = rp.Partition, kerr.OffsetMetadataTooLarge.Code
				st.Partitions = append(st.Partitions, sp)
			}
			resp.Topics = append(resp.Topics, st)
		}
		return resp, nil, true
	})

	e := testdb.SQLite(t)
	pay := testdb.Payments[*sql.Tx]{E: e}
	pay.Setup(t, streamAccounts, streamBalance)
	run := func(want inbox.Outcome) {
		t.Helper()
		left := map[string]bool{}
		for _, id := range ids {
			left[id] = true
		}
		done := make(chan struct{})
		var once atomic.Bool
		p, err := inbox.New(e.Driver, pay.Handler, inbox.Config{Consumer: "faults", MaxBatch: 64, Hooks: []inbox.Hook{
			inbox.BatchDoneFunc(func(_ context.Context, r *inbox.BatchResult) {
				for _, res := range r.Results {
					if res.Outcome != want {
						t.Errorf("%s: %v, want %v", res.ID, res.Outcome, want)
					}
					delete(left, res.ID)
				}
				if len(left) == 0 && once.CompareAndSwap(false, true) {
					close(done)
				}
			}),
		}})
		if err != nil {
			t.Fatal(err)
		}
		src := b.subscriber(t, group, topic, kafka.SubscriberConfig{Logger: testLogger(t)})
		ctx, cancel := context.WithCancel(context.Background())
		errc := make(chan error, 1)
		go func() { errc <- p.Run(ctx, src) }()
		select {
		case <-done:
		case err := <-errc:
			t.Fatalf("Run: %v", err)
		case <-time.After(60 * time.Second):
			t.Fatalf("after 60s, %d messages not seen", len(left))
		}
		cancel()
		<-errc
		src.Close()
	}
	run(inbox.Applied)
	// No offset was committed: the next member gets everything again, and
	// the claims suppress it all.
	commitsFail.Store(false)
	run(inbox.Duplicate)
	pay.CheckExactlyOnce(t, ids, streamAccounts, streamBalance)
	if fetches.Load() < 3 {
		t.Errorf("%d fetches: no connection was dropped", fetches.Load())
	}
}

// Kafka refuses every offset commit of a Stream: the stored offsets alone
// decide where the next member starts, and nothing is applied twice.
func TestFaultStreamIgnoresKafkaOffsets(t *testing.T) {
	b := newFake(t)
	topic, group := b.topic(t, 3), testenv.Name("g-")
	b.fake.ControlKey(int16(kmsg.OffsetCommit), func(kmsg.Request) (kmsg.Response, error, bool) {
		b.fake.KeepControl()
		return nil, errInjected, true
	})
	e := engines.Postgres(t)
	pay := testdb.Payments[pgx.Tx]{E: e}
	pay.Setup(t, streamAccounts, streamBalance)
	var ids []string
	for round := range 2 {
		ids = append(ids, payments(t, b, topic, round*300, 300)...)
		var applied atomic.Int64
		done := make(chan struct{})
		m := runStream(t, e.Driver, applyAll(pay), kafka.StreamConfig{
			Brokers: b.addrs, Group: group, Topics: []string{topic},
			OnBatch: func(sb kafka.StreamBatch) {
				if sb.Err == nil && applied.Add(int64(sb.Records)) == 300 {
					close(done)
				}
			},
		})
		select {
		case <-done:
		case <-time.After(60 * time.Second):
			t.Fatalf("round %d: after 60s, %d of 300 applied", round, applied.Load())
		}
		m.stop(t)
	}
	pay.CheckExactlyOnce(t, ids, streamAccounts, streamBalance)
}

// Offset commits refused until every record is acked and the final
// offset was refused more often than the last acks can explain, then
// accepted: the Subscriber commits again with no further ack, so the
// group's lag drains while the member lives (without the retry it would
// stay until a rebalance, and the records be delivered again).
func TestFaultCommitRetriedWithoutAcks(t *testing.T) {
	b := newFake(t)
	topic, group := b.topic(t, 1), testenv.Name("g-")
	const n = 20
	envs := make([]outbox.Envelope, n)
	for i := range envs {
		envs[i] = outbox.Envelope{Topic: topic, Message: eos.Message{ID: eos.NewID(), Key: "k", Payload: []byte("x")}}
	}
	if got, err := b.publisher(t).Publish(context.Background(), envs); got != n || err != nil {
		t.Fatalf("Publish: %d, %v", got, err)
	}
	var commitsFail atomic.Bool
	commitsFail.Store(true)
	refused := make(chan int64, 100) // the offsets of the refused commits
	passed := make(chan struct{}, 100)
	b.fake.ControlKey(int16(kmsg.OffsetCommit), func(req kmsg.Request) (kmsg.Response, error, bool) {
		b.fake.KeepControl()
		if !commitsFail.Load() {
			select {
			case passed <- struct{}{}:
			default:
			}
			return nil, nil, false
		}
		r := req.(*kmsg.OffsetCommitRequest)
		resp := r.ResponseKind().(*kmsg.OffsetCommitResponse)
		for _, rt := range r.Topics {
			st := kmsg.NewOffsetCommitResponseTopic()
			st.Topic, st.TopicID = rt.Topic, rt.TopicID
			for _, rp := range rt.Partitions {
				sp := kmsg.NewOffsetCommitResponseTopicPartition()
				sp.Partition, sp.ErrorCode = rp.Partition, kerr.OffsetMetadataTooLarge.Code
				st.Partitions = append(st.Partitions, sp)
				select {
				case refused <- rp.Offset:
				default:
				}
			}
			resp.Topics = append(resp.Topics, st)
		}
		return resp, nil, true
	})
	src := b.subscriber(t, group, topic, kafka.SubscriberConfig{Logger: testLogger(t)})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for acked := 0; acked < n; {
		ds, err := src.Fetch(ctx, n, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range ds {
			if err := d.Ack(ctx); err != nil {
				t.Fatal(err)
			}
			acked++
		}
	}
	// The final offset refused three times: an ack's signal can explain
	// one commit after the acks ended, not more.
	for final := 0; final < 3; {
		select {
		case o := <-refused:
			if o == n {
				final++
			}
		case <-ctx.Done():
			t.Fatalf("the final offset was refused %d times, then never tried again", final)
		}
	}
	commitsFail.Store(false)
	lag := kafka.GroupStats(b.client(t), group, topic)
	for {
		st, err := lag(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if st.Pending == 0 {
			return
		}
		select {
		case <-passed: // a commit went through: look again
		case <-ctx.Done():
			t.Fatalf("the group's lag stayed at %d", st.Pending)
		}
	}
}
