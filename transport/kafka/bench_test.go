package kafka_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/eoskit/eos/inbox"
	"github.com/eoskit/eos/internal/testdb"
	"github.com/eoskit/eos/internal/testdb/engines"
	"github.com/eoskit/eos/internal/testenv"
	"github.com/eoskit/eos/transport/kafka"
)

const (
	benchPartitions = 4
	benchBatch      = 256
)

// BenchmarkKafkaSink measures, on the in-process kfake broker and
// PostgreSQL, how fast one consumer applies b.N payments (a debit and a
// ledger row each) read from topics of 4 partitions, in transactions of up
// to 256 records, in three modes:
//
//   - offsets: a Stream, the offset stored by each transaction;
//   - claim: a Subscriber and an inbox Processor, every id claimed;
//   - atleastonce: a Subscriber and a transaction per batch with neither
//     (a crash between the commit and the offset commit applies a batch
//     twice): the floor the other two are compared to.
//
// The modes take turns, a fifth of the events at a time, each turn a fresh
// topic of the same shape and payloads and a fresh group (timed from the
// consumer's start, group join included, to the last record applied), so that a change of the machine's load
// weighs on each alike. It reports events/s of each and the ratios to
// atleastonce. Run with a fixed count: -bench KafkaSink -benchtime 20000x.
func BenchmarkKafkaSink(b *testing.B) {
	const turns = 5
	modes := []struct {
		name string
		run  func(b *testing.B, br *broker, e *testdb.Engine[pgx.Tx], topic string, n int) time.Duration
		e    *testdb.Engine[pgx.Tx]
		took time.Duration
	}{
		{name: "offsets", run: sinkOffsets},
		{name: "claim", run: sinkClaim},
		{name: "atleastonce", run: sinkAtLeastOnce},
	}
	br := newFake(b)
	n := max(b.N/turns, 1)
	topics := make([][]string, turns)
	for i := range modes {
		modes[i].e = engines.Postgres(b)
		testdb.Payments[pgx.Tx]{E: modes[i].e}.Setup(b, streamAccounts, streamBalance)
	}
	for t := range topics {
		for range modes {
			topic := br.topic(b, benchPartitions)
			payments(b, br, topic, t*n, n)
			topics[t] = append(topics[t], topic)
		}
	}
	b.ResetTimer()
	for t := range turns {
		for i := range modes {
			m := &modes[i]
			m.took += m.run(b, br, m.e, topics[t][i], n)
		}
	}
	b.StopTimer()
	rate := map[string]float64{}
	for _, m := range modes {
		rate[m.name] = float64(n*turns) / m.took.Seconds()
		b.ReportMetric(rate[m.name], m.name+"_events/s")
	}
	b.ReportMetric(rate["offsets"]/rate["atleastonce"], "offsets/atleastonce")
	b.ReportMetric(rate["claim"]/rate["atleastonce"], "claim/atleastonce")
	b.ReportMetric(0, "ns/op")
}

func benchDeadline(b *testing.B) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), 10*time.Minute) // a failure bound
}

func sinkOffsets(b *testing.B, br *broker, e *testdb.Engine[pgx.Tx], topic string, n int) time.Duration {
	start := time.Now()
	var applied atomic.Int64
	done := make(chan struct{})
	m := runStream(b, e.Driver, applyAll(testdb.Payments[pgx.Tx]{E: e}), kafka.StreamConfig{
		Brokers: br.addrs, Group: testenv.Name("g-"), Topics: []string{topic}, MaxBatch: benchBatch,
		OnBatch: func(sb kafka.StreamBatch) {
			if sb.Err == nil && applied.Add(int64(sb.Records)) == int64(n) {
				close(done)
			}
		},
	})
	ctx, cancel := benchDeadline(b)
	defer cancel()
	select {
	case <-done:
	case <-ctx.Done():
		b.Fatalf("%d of %d applied", applied.Load(), n)
	}
	took := time.Since(start)
	m.stop(b)
	return took
}

func sinkClaim(b *testing.B, br *broker, e *testdb.Engine[pgx.Tx], topic string, n int) time.Duration {
	start := time.Now()
	var applied atomic.Int64
	done := make(chan struct{})
	p, err := inbox.New(e.Driver, testdb.Payments[pgx.Tx]{E: e}.Handler, inbox.Config{
		Consumer: "bench", MaxBatch: benchBatch,
		Hooks: []inbox.Hook{inbox.BatchDoneFunc(func(_ context.Context, r *inbox.BatchResult) {
			if applied.Add(int64(r.Count(inbox.Applied))) == int64(n) {
				close(done)
			}
		})},
	})
	if err != nil {
		b.Fatal(err)
	}
	src := br.subscriber(b, testenv.Name("g-"), topic, kafka.SubscriberConfig{})
	ctx, cancel := benchDeadline(b)
	defer cancel()
	errc := make(chan error, 1)
	go func() { errc <- p.Run(ctx, src) }()
	select {
	case <-done:
	case err := <-errc:
		b.Fatalf("Run: %v", err)
	}
	took := time.Since(start)
	cancel()
	<-errc
	return took
}

func sinkAtLeastOnce(b *testing.B, br *broker, e *testdb.Engine[pgx.Tx], topic string, n int) time.Duration {
	start := time.Now()
	pay := testdb.Payments[pgx.Tx]{E: e}
	src := br.subscriber(b, testenv.Name("g-"), topic, kafka.SubscriberConfig{})
	ctx, cancel := benchDeadline(b)
	defer cancel()
	for applied := 0; applied < n; {
		ds, err := src.Fetch(ctx, benchBatch, 0)
		if err != nil {
			b.Fatal(err)
		}
		tx, err := e.Driver.Begin(ctx)
		if err != nil {
			b.Fatal(err)
		}
		for _, d := range ds {
			if err := pay.Handler(ctx, tx, d.Message()); err != nil {
				b.Fatal(err)
			}
		}
		if err := e.Driver.Commit(ctx, tx); err != nil {
			b.Fatal(err)
		}
		for _, d := range ds {
			if err := d.Ack(ctx); err != nil {
				b.Fatal(err)
			}
		}
		applied += len(ds)
	}
	return time.Since(start)
}
