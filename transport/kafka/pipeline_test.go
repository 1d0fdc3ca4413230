package kafka_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/eoskit/eos"
	"github.com/eoskit/eos/internal/testenv"
	"github.com/eoskit/eos/outbox"
	"github.com/eoskit/eos/transport/kafka"
)

// Members of a Pipeline join and leave (one in the middle of a transform)
// and a transform fails once; a read_committed reader of the output sees
// each input record's output once.
func TestPipelineOneOutputPerRecord(t *testing.T) {
	b := newFake(t)
	in, out, group := b.topic(t, 4), b.topic(t, 1), testenv.Name("g-")
	const n = 1000
	want := publishN(t, b, in, n, 16)

	var (
		c         crew
		calls     atomic.Int64
		committed atomic.Int64
		aborted   atomic.Int64
		done      = make(chan struct{})
		doneOnce  sync.Once
		start     func()
	)
	errTransform := errors.New("transform failed")
	transform := func(stop context.CancelFunc) kafka.TransformFunc {
		return func(ctx context.Context, msgs []eos.Message) ([]outbox.Envelope, error) {
			switch calls.Add(1) {
			case 3:
				return nil, errTransform
			case 5, 12:
				go start()
			case 9:
				stop() // leaves in the middle of its transaction
			}
			envs := make([]outbox.Envelope, len(msgs))
			for i, m := range msgs {
				envs[i] = outbox.Envelope{Topic: out, Message: eos.Message{ID: m.ID, Key: m.Key, Payload: m.Payload}}
			}
			return envs, nil
		}
	}
	start = func() {
		c.add(func() *member {
			ctx, cancel := context.WithCancel(context.Background())
			p, err := kafka.NewPipeline(transform(cancel), kafka.PipelineConfig{
				Brokers: b.addrs, Group: group, Topics: []string{in}, MaxBatch: 50,
				TransactionalID: testenv.Name("tx-"), Logger: testLogger(t),
				OnBatch: func(pb kafka.PipelineBatch) {
					if !pb.Committed {
						aborted.Add(1)
						return
					}
					if committed.Add(int64(pb.In)) >= n {
						doneOnce.Do(func() { close(done) })
					}
				},
			})
			if err != nil {
				t.Fatal(err)
			}
			return goMember(ctx, cancel, p.Run)
		})
	}
	start()
	c.await(t, done, func() string { return fmt.Sprintf("%d of %d input records committed", committed.Load(), n) })
	ran, errs := c.stop()
	if len(errs) > 0 {
		t.Errorf("Run: %v", errs)
	}
	if ran != 3 {
		t.Errorf("%d members ran, want 3", ran)
	}
	if aborted.Load() == 0 {
		t.Error("no transaction aborted: the failed transform did not run")
	}
	if got := committed.Load(); got != n {
		t.Errorf("committed transactions consumed %d records, want %d", got, n)
	}

	// Everything the pipelines committed lies before a record produced
	// now; a read_committed reader reads up to it.
	sentinel := envelope(out, "sentinel", []byte("end"))
	if got, err := b.publisher(t).Publish(context.Background(), []outbox.Envelope{sentinel}); got != 1 || err != nil {
		t.Fatalf("Publish: %v", err)
	}
	cl := b.client(t, kgo.ConsumeTopics(out), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	seen := map[string]int{}
	for seen[sentinel.Message.ID] == 0 {
		fs := cl.PollFetches(ctx)
		if err := fs.Err0(); err != nil {
			t.Fatal(err)
		}
		fs.EachRecord(func(r *kgo.Record) { seen[kafka.HeaderIDFunc(kafka.HeaderID)(r)]++ })
	}
	for id := range want {
		if seen[id] != 1 {
			t.Errorf("input %s has %d outputs, want 1", id, seen[id])
		}
	}
	if len(seen) != n+1 {
		t.Errorf("%d distinct ids in the output, want %d", len(seen), n+1)
	}
	t.Logf("%d transforms, %d aborted transactions", calls.Load(), aborted.Load())
}

// A second member with the same TransactionalID fences the first: the
// first's transaction cannot commit, and its Run ends with the error; no
// output of it is visible.
func TestPipelineFencedByTransactionalID(t *testing.T) {
	b := newFake(t)
	in, out, group := b.topic(t, 1), b.topic(t, 1), testenv.Name("g-")
	publishN(t, b, in, 10, 1)
	txid := testenv.Name("tx-")
	inTransform, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	first, err := kafka.NewPipeline(func(ctx context.Context, msgs []eos.Message) ([]outbox.Envelope, error) {
		once.Do(func() { close(inTransform) })
		<-release
		envs := make([]outbox.Envelope, len(msgs))
		for i, m := range msgs {
			envs[i] = outbox.Envelope{Topic: out, Message: eos.Message{ID: "zombie-" + m.ID}}
		}
		return envs, nil
	}, kafka.PipelineConfig{Brokers: b.addrs, Group: group, Topics: []string{in}, TransactionalID: txid, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() { errc <- first.Run(context.Background()) }()
	<-inTransform
	// The same transactional id, as a restarted member would have it:
	// initializing it bumps the producer epoch.
	cl := b.client(t, kgo.TransactionalID(txid))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := cl.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: out, Value: []byte("new owner")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	if err := cl.EndTransaction(ctx, kgo.TryCommit); err != nil {
		t.Fatal(err)
	}
	close(release)
	err = <-errc
	t.Logf("the fenced member: %v", err)
	if err == nil || errors.Is(err, context.Canceled) {
		t.Fatalf("the fenced member's Run: %v, want the fencing error", err)
	}
	r := b.client(t, kgo.ConsumeTopics(out), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	for seen := false; !seen; {
		fs := r.PollFetches(ctx)
		if err := fs.Err0(); err != nil {
			t.Fatal(err)
		}
		fs.EachRecord(func(rec *kgo.Record) {
			if string(rec.Value) != "new owner" {
				t.Errorf("a record of the fenced member is visible: %q", rec.Headers)
			}
			seen = true
		})
	}
}
