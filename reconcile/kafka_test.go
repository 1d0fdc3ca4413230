package reconcile_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/eoskit/eos"
	"github.com/eoskit/eos/internal/testdb"
	"github.com/eoskit/eos/internal/testenv"
	"github.com/eoskit/eos/outbox"
	"github.com/eoskit/eos/reconcile"
	"github.com/eoskit/eos/transport/kafka"
)

// kafkaCluster starts an in-process kfake broker, closed when t ends.
type kafkaCluster struct{ addrs []string }

func newKafka(t testing.TB) kafkaCluster {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return kafkaCluster{addrs: c.ListenAddrs()}
}

// client returns a client of k, closed when t ends.
func (k kafkaCluster) client(t testing.TB, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(k.addrs...)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// topic creates a topic of n partitions.
func (k kafkaCluster) topic(t testing.TB, n int32) string {
	t.Helper()
	name := testenv.Name("recon-")
	if _, err := kafka.EnsureTopic(context.Background(), k.client(t), kafka.TopicConfig{Name: name, Partitions: n}); err != nil {
		t.Fatal(err)
	}
	return name
}

// kafkaPublished is what a test put on a topic: the ids published through
// transport/kafka's Publisher, by the time each was stamped with.
type kafkaPublished struct {
	ids []string
	at  map[string]time.Time
}

// publish publishes n messages on topic through the Publisher, keyed
// apart (so spread over the partitions), stamped t0 plus i minutes.
func publish(t *testing.T, cl *kgo.Client, topic string, n int, p *kafkaPublished) {
	t.Helper()
	pub, err := kafka.NewPublisher(cl, kafka.PublisherConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if p.at == nil {
		p.at = map[string]time.Time{}
	}
	var envs []outbox.Envelope
	for range n {
		i := len(p.ids)
		id := eos.NewID()
		p.ids = append(p.ids, id)
		p.at[id] = t0.Add(time.Duration(i) * time.Minute)
		envs = append(envs, outbox.Envelope{Topic: topic, Message: eos.Message{
			ID: id, Key: fmt.Sprintf("k%d", i), Payload: []byte("p"), CreatedAt: p.at[id]}})
	}
	if acked, err := pub.Publish(context.Background(), envs); acked != n || err != nil {
		t.Fatalf("published %d of %d: %v", acked, n, err)
	}
}

// produceNoID produces a record without the id header, stamped at.
func produceNoID(t *testing.T, cl *kgo.Client, topic, key string, at time.Time) {
	t.Helper()
	r := &kgo.Record{Topic: topic, Key: []byte(key), Value: []byte("no id"), Timestamp: at}
	if err := cl.ProduceSync(context.Background(), r).FirstErr(); err != nil {
		t.Fatal(err)
	}
}

// scan scans src with pages of at most page entries, checks the pages'
// sizes and returns the entries.
func scan(t *testing.T, src reconcile.KafkaSource, page int, during func(n int)) []reconcile.Entry {
	t.Helper()
	var got []reconcile.Entry
	err := src.Scan(context.Background(), page, func(es []reconcile.Entry) error {
		if len(es) == 0 || len(es) > page {
			t.Errorf("a page of %d entries; want 1..%d", len(es), page)
		}
		got = append(got, es...)
		if during != nil {
			during(len(got))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// ids returns the entries' ids, sorted.
func ids(es []reconcile.Entry) []string {
	out := make([]string, len(es))
	for i, e := range es {
		out[i] = e.ID
	}
	slices.Sort(out)
	return out
}

// partitionsUsed counts topic's partitions holding records.
func partitionsUsed(t *testing.T, cl *kgo.Client, topic string) int {
	t.Helper()
	ends, err := kadm.NewClient(cl).ListEndOffsets(context.Background(), topic)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	ends.Each(func(o kadm.ListedOffset) {
		if o.Offset > 0 {
			n++
		}
	})
	return n
}

// TestKafkaSource publishes through transport/kafka's Publisher on three
// partitions, plus two records without an id, and scans the topic whole,
// by time, and while more is produced.
func TestKafkaSource(t *testing.T) {
	k := newKafka(t)
	cl := k.client(t)
	topic := k.topic(t, 3)
	var p kafkaPublished
	publish(t, cl, topic, 10, &p)
	produceNoID(t, cl, topic, "n0", t0.Add(time.Hour))
	produceNoID(t, cl, topic, "n1", t0.Add(time.Hour))
	if n := partitionsUsed(t, cl, topic); n < 2 {
		t.Fatalf("the records are on %d partition; the test wants them spread", n)
	}
	want := append(slices.Sorted(slices.Values(p.ids)), "", "")
	slices.Sort(want)

	src := reconcile.KafkaSource{Client: cl, Topic: topic}
	if src.Name() != "kafka:"+topic || src.Bounded() {
		t.Errorf("Name %q, Bounded %v", src.Name(), src.Bounded())
	}
	for _, page := range []int{1, 4, 1000} {
		got := scan(t, src, page, nil)
		if !slices.Equal(ids(got), want) {
			t.Errorf("page %d: ids %v; want %v", page, ids(got), want)
		}
		for _, e := range got {
			if at := p.at[e.ID]; e.ID != "" && !e.At.Equal(at) || e.ID == "" && !e.At.Equal(t0.Add(time.Hour)) {
				t.Errorf("page %d: %q at %v; want %v", page, e.ID, e.At, at)
			}
		}
	}

	t.Run("time range", func(t *testing.T) {
		// ids[3..6], stamped t0+3m..t0+6m; To inside its millisecond.
		src := reconcile.KafkaSource{Client: cl, Topic: topic, From: t0.Add(3 * time.Minute), To: t0.Add(6*time.Minute + time.Microsecond)}
		if !src.Bounded() {
			t.Error("a range with To is not Bounded")
		}
		if got, want := ids(scan(t, src, 2, nil)), slices.Sorted(slices.Values(p.ids[3:7])); !slices.Equal(got, want) {
			t.Errorf("ids %v; want %v", got, want)
		}
		src.From = t0.Add(2 * time.Hour)
		src.To = time.Time{}
		if got := scan(t, src, 2, nil); len(got) != 0 {
			t.Errorf("a range after the last record: %v", got)
		}
	})

	t.Run("custom ID", func(t *testing.T) {
		src := reconcile.KafkaSource{Client: cl, Topic: topic, ID: func(r *kgo.Record) string { return string(r.Key) }}
		got := ids(scan(t, src, 1000, nil))
		if len(got) != 12 || !slices.Contains(got, "k0") || !slices.Contains(got, "n1") {
			t.Errorf("ids by key: %v", got)
		}
	})

	t.Run("fixed end", func(t *testing.T) {
		// The first page of one entry publishes ten more on every
		// partition: the scan still ends at the offsets it started with.
		var more kafkaPublished
		more.ids = slices.Clone(p.ids) // keep the stamps going
		got := scan(t, src, 1, func(n int) {
			if n == 1 {
				publish(t, cl, topic, 10, &more)
			}
		})
		if !slices.Equal(ids(got), want) {
			t.Errorf("ids %v; want the %d from before the scan", ids(got), len(want))
		}
		if got := scan(t, src, 1000, nil); len(got) != len(want)+10 {
			t.Errorf("the next scan read %d entries; want %d", len(got), len(want)+10)
		}
	})
}

// TestKafkaSourceReconcile reconciles a consumer that applied all the
// topic's ids but one.
func TestKafkaSourceReconcile(t *testing.T) {
	k := newKafka(t)
	cl := k.client(t)
	topic := k.topic(t, 3)
	var p kafkaPublished
	publish(t, cl, topic, 9, &p)
	produceNoID(t, cl, topic, "n0", t0.Add(time.Hour))
	e := testdb.SQLite(t)
	s := store[*sql.Tx]{d: e.Driver}
	s.claim(t, "c", time.Now(), slices.Delete(slices.Clone(p.ids), 4, 5)...)

	r, err := reconcile.New(e.Driver, reconcile.KafkaSource{Client: cl, Topic: topic}, reconcile.Config{Consumer: "c", PageSize: 2})
	if err != nil {
		t.Fatal(err)
	}
	rep, err := r.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if rep.Source != "kafka:"+topic || rep.SourceEntries != 9 || rep.SourceWithoutID != 1 || rep.Applied != 8 ||
		rep.Missed.Count != 1 || rep.Missed.Sample[0] != p.ids[4] || rep.Unexpected.Count != 0 || rep.ClaimsChecked != 8 {
		t.Errorf("report: %+v", rep)
	}
}

// TestKafkaSourceTransactions scans partitions whose last offsets are a
// transaction's: committed, aborted (the partition ends with its marker),
// still open (its records are past the last stable offset), and an
// aborted record whose marker lies past the end.
func TestKafkaSourceTransactions(t *testing.T) {
	k := newKafka(t)
	cl := k.client(t)
	topic := k.topic(t, 1)
	src := reconcile.KafkaSource{Client: cl, Topic: topic}
	ctx := context.Background()
	txn := func(name string) *kgo.Client {
		return k.client(t, kgo.TransactionalID(name))
	}
	produce := func(c *kgo.Client, id string) {
		t.Helper()
		r := &kgo.Record{Topic: topic, Value: []byte("p"), Headers: []kgo.RecordHeader{{Key: kafka.HeaderID, Value: []byte(id)}}}
		if err := c.ProduceSync(ctx, r).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	begin := func(c *kgo.Client) {
		t.Helper()
		if err := c.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
	}
	end := func(c *kgo.Client, commit kgo.TransactionEndTry) {
		t.Helper()
		if err := c.EndTransaction(ctx, commit); err != nil {
			t.Fatal(err)
		}
	}
	check := func(what string, want ...string) {
		t.Helper()
		for _, page := range []int{1, 1000} {
			if got := ids(scan(t, src, page, nil)); !slices.Equal(got, want) {
				t.Errorf("%s, page %d: ids %v; want %v", what, page, got, want)
			}
		}
	}

	a, b := txn("a"), txn("b")
	// a and b both open, a first: a aborts, so its record at offset 0 is
	// decided but its marker lies after b's first record, at the last
	// stable offset. The range [0, 1) holds nothing to read.
	begin(a)
	produce(a, "a-aborted")
	begin(b)
	produce(b, "b-open")
	end(a, kgo.TryAbort)
	check("an aborted record before an open transaction")

	end(b, kgo.TryCommit)
	check("committed", "b-open")

	begin(a)
	produce(a, "a-aborted-2")
	end(a, kgo.TryAbort)
	check("ending with an abort marker", "b-open")

	begin(a)
	produce(a, "a-committed")
	end(a, kgo.TryCommit)
	produce(cl, "plain")
	begin(b)
	produce(b, "b-open-2")
	check("an open transaction at the end", "a-committed", "b-open", "plain")
	end(b, kgo.TryCommit)
	check("all committed", "a-committed", "b-open", "b-open-2", "plain")
}

// TestKafkaSourceEmptyAndUnknown scans an empty topic and one that does
// not exist.
func TestKafkaSourceEmptyAndUnknown(t *testing.T) {
	k := newKafka(t)
	cl := k.client(t)
	topic := k.topic(t, 2)
	called := false
	err := reconcile.KafkaSource{Client: cl, Topic: topic}.Scan(context.Background(), 10, func([]reconcile.Entry) error {
		called = true
		return nil
	})
	if err != nil || called {
		t.Errorf("empty topic: err %v, fn called %v", err, called)
	}

	src := reconcile.KafkaSource{Client: cl, Topic: topic + "-none"}
	err = src.Scan(context.Background(), 10, func([]reconcile.Entry) error { return nil })
	var se *reconcile.SourceError
	if !errors.As(err, &se) || se.Source != "kafka:"+topic+"-none" || !errors.Is(err, reconcile.ErrSource) || !errors.Is(err, kerr.UnknownTopicOrPartition) {
		t.Errorf("unknown topic: %v", err)
	}
	if err := (reconcile.KafkaSource{Topic: topic}).Scan(context.Background(), 10, nil); !errors.As(err, &se) {
		t.Errorf("no client: %v", err)
	}
}

// TestKafkaSourceStopsAtFnError stops at fn's first error and returns it.
func TestKafkaSourceStopsAtFnError(t *testing.T) {
	k := newKafka(t)
	cl := k.client(t)
	topic := k.topic(t, 2)
	var p kafkaPublished
	publish(t, cl, topic, 6, &p)
	stop := errors.New("stop")
	calls := 0
	err := reconcile.KafkaSource{Client: cl, Topic: topic}.Scan(context.Background(), 2, func([]reconcile.Entry) error {
		calls++
		return stop
	})
	if err != stop || calls != 1 {
		t.Errorf("err %v after %d calls; want stop after 1", err, calls)
	}
}
