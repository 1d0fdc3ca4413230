package kafka_test

import (
	"context"
	"database/sql"
	"fmt"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/eoskit/eos"
	"github.com/eoskit/eos/internal/testdb"
	"github.com/eoskit/eos/outbox"
	"github.com/eoskit/eos/outbox/outboxtest"
	"github.com/eoskit/eos/transport/kafka"
)

// BenchmarkKafkaRelay measures, in one run on the in-process kfake broker,
// b.N events each way, 64-byte payloads, a key per event, topics of 4
// partitions:
//
//   - raw: franz-go ProduceSync of 256 records at a time, with the Eos-Id
//     header (the protocol and the client alone);
//   - relay: outbox.Relay forwarding rows from SQLite through Publisher,
//     batches of 256;
//   - relay_memory: the same relay forwarding to an in-memory publisher
//     (outboxtest), the relay's own cost.
//
// The ways take turns, a tenth of the events at a time. It reports events/s
// of each and relay/raw. Run with a fixed count: -benchtime 20000x.
func BenchmarkKafkaRelay(b *testing.B) {
	br := newFake(b)
	cl := br.client(b)
	payload := []byte("1234567890123456789012345678901234567890123456789012345678901234")
	rawTopic := br.topic(b, benchPartitions)
	ctx := context.Background()
	ways := []*testdb.Way{{Name: "raw", Step: func(done, n int) (int, error) {
		n = min(n, 256)
		rs := make([]*kgo.Record, n)
		for i := range rs {
			rs[i] = &kgo.Record{Topic: rawTopic, Key: fmt.Appendf(nil, "k%d", done+i), Value: payload,
				Headers: []kgo.RecordHeader{{Key: kafka.HeaderID, Value: []byte(eos.NewID())}}}
		}
		return n, cl.ProduceSync(ctx, rs...).FirstErr()
	}}}
	for _, w := range []struct {
		name string
		pub  outbox.Publisher
	}{{"relay", br.publisher(b)}, {"relay_memory", outboxtest.NewPublisher()}} {
		r := setupKafkaRelay(b, testdb.SQLite(b), w.pub, br.topic(b, benchPartitions), b.N, payload)
		ways = append(ways, &testdb.Way{Name: w.name, Step: func(int, int) (int, error) { return r.Forward(ctx) }})
	}
	b.ResetTimer()
	rates := testdb.TakeWays(b, b.N, ways)
	for _, w := range ways {
		b.ReportMetric(rates[w.Name], w.Name+"_events/s")
	}
	b.ReportMetric(rates["relay"]/rates["raw"], "relay/raw")
	b.ReportMetric(0, "ns/op")
}

// setupKafkaRelay enqueues n rows on topic, row i with key k<i>, and
// returns a relay forwarding them to pub.
func setupKafkaRelay(b *testing.B, e *testdb.Engine[*sql.Tx], pub outbox.Publisher, topic string, n int, payload []byte) *outbox.Relay[*sql.Tx] {
	ctx := context.Background()
	ob, err := outbox.New(e.Driver, outbox.Config{})
	if err != nil {
		b.Fatal(err)
	}
	for i := 0; i < n; i += 1000 {
		tx, err := e.Driver.Begin(ctx)
		if err != nil {
			b.Fatal(err)
		}
		ms := make([]eos.Message, min(1000, n-i))
		for j := range ms {
			ms[j] = eos.Message{Payload: payload, Key: fmt.Sprintf("k%d", i+j)}
		}
		if err := ob.Enqueue(ctx, tx, topic, ms...); err != nil {
			b.Fatal(err)
		}
		if err := e.Driver.Commit(ctx, tx); err != nil {
			b.Fatal(err)
		}
	}
	r, err := outbox.NewRelay(e.Driver, pub, outbox.RelayConfig{BatchSize: 256})
	if err != nil {
		b.Fatal(err)
	}
	return r
}
