package natsjs

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/eoskit/eos"
	"github.com/eoskit/eos/inbox"
	"github.com/eoskit/eos/internal/testdb"
	"github.com/eoskit/eos/internal/testdb/engines"
	"github.com/eoskit/eos/transport/natsjs/natsembed"
)

// BenchmarkSubscriberFetch measures what a Fetch of a full batch (256)
// costs the inbox when the stream holds more than it can take: the time a
// prefetch of the next batch, overlapped with the commit of the current
// one, could save per batch. It reports µs per Fetch and per message, and
// acks each batch (as the inbox does after its commit) before the next.
func BenchmarkSubscriberFetch(b *testing.B) {
	srv, err := natsembed.Start(natsembed.Config{Dir: b.TempDir(), SyncInterval: time.Minute})
	if err != nil {
		b.Fatal(err)
	}
	defer srv.Shutdown()
	nc, err := srv.Connect()
	if err != nil {
		b.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	if _, _, err := EnsureStream(ctx, js, StreamConfig{Name: "F", Subjects: []string{"f.>"}}); err != nil {
		b.Fatal(err)
	}
	const batch = 256
	n := max(b.N, batch) * batch
	for i := 0; i < n; i++ {
		if _, err := js.PublishAsync("f.x", []byte("payload"), jetstream.WithMsgID(eos.NewID())); err != nil {
			b.Fatal(err)
		}
	}
	<-js.PublishAsyncComplete()
	cons, _, err := EnsureConsumer(ctx, js, ConsumerConfig{Stream: "F", Durable: "f"})
	if err != nil {
		b.Fatal(err)
	}
	sub, err := NewSubscriber(cons, SubscriberConfig{Buffer: 1024})
	if err != nil {
		b.Fatal(err)
	}
	defer sub.Close()
	var fetching time.Duration
	b.ResetTimer()
	for i := 0; i < max(b.N, batch); i++ {
		start := time.Now()
		ds, err := sub.Fetch(ctx, batch, 5*time.Millisecond)
		fetching += time.Since(start)
		if err != nil {
			b.Fatal(err)
		}
		for _, d := range ds {
			d.Ack(ctx)
		}
	}
	b.StopTimer()
	fetches := max(b.N, batch)
	b.ReportMetric(float64(fetching.Microseconds())/float64(fetches), "µs/fetch")
	b.ReportMetric(float64(fetching.Nanoseconds())/float64(fetches*batch)/1000, "µs/msg")
}

// BenchmarkPrefetch runs the inbox over a Subscriber of the embedded
// server, with the payments workload on SQLite and PostgreSQL, with and
// without fetching the next batch while the current one is processed
// (inbox.Config.NoPrefetch), side by side in one run.
func BenchmarkPrefetch(b *testing.B) {
	for _, drv := range []string{"sqlite", "postgres"} {
		for _, prefetch := range []bool{false, true} {
			b.Run(fmt.Sprintf("driver=%s/prefetch=%v/batch=256", drv, prefetch), func(b *testing.B) {
				switch drv {
				case "sqlite":
					benchPrefetch(b, testdb.SQLite(b), prefetch)
				case "postgres":
					benchPrefetch(b, engines.Postgres(b), prefetch)
				}
			})
		}
	}
}

func benchPrefetch[TTx any](b *testing.B, e *testdb.Engine[TTx], prefetch bool) {
	srv, err := natsembed.Start(natsembed.Config{Dir: b.TempDir(), SyncInterval: time.Minute})
	if err != nil {
		b.Fatal(err)
	}
	defer srv.Shutdown()
	nc, err := srv.Connect()
	if err != nil {
		b.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	if _, _, err := EnsureStream(ctx, js, StreamConfig{Name: "P", Subjects: []string{"p.>"}}); err != nil {
		b.Fatal(err)
	}
	const accounts = 1000
	for i := 0; i < b.N; i++ {
		m := testdb.Message(eos.NewID(), testdb.Account(i%accounts), 1)
		if _, err := js.PublishMsgAsync(toNATS("p.x", m)); err != nil {
			b.Fatal(err)
		}
	}
	<-js.PublishAsyncComplete()
	pay := testdb.Payments[TTx]{E: e}
	pay.Setup(b, accounts, 1<<40)
	cons, _, err := EnsureConsumer(ctx, js, ConsumerConfig{Stream: "P", Durable: "p"})
	if err != nil {
		b.Fatal(err)
	}
	sub, err := NewSubscriber(cons, SubscriberConfig{})
	if err != nil {
		b.Fatal(err)
	}
	defer sub.Close()
	done := make(chan struct{})
	runCtx, stop := context.WithCancel(ctx)
	applied := 0
	hook := inbox.BatchDoneFunc(func(_ context.Context, r *inbox.BatchResult) {
		if applied += r.Count(inbox.Applied); applied == b.N {
			close(done)
		}
	})
	p, err := inbox.New(e.Driver, pay.Handler, inbox.Config{Consumer: "bench", MaxBatch: 256, NoPrefetch: !prefetch, Hooks: []inbox.Hook{hook}})
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	start := time.Now()
	errs := make(chan error, 1)
	go func() { errs <- p.Run(runCtx, sub) }()
	select {
	case <-done:
	case err := <-errs:
		b.Fatal(err)
	}
	elapsed := time.Since(start)
	b.StopTimer()
	stop()
	<-errs
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "events/s")
}
