package natsjs

import (
	"context"
	"database/sql"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/eoskit/eos"
	"github.com/eoskit/eos/internal/testdb"
	"github.com/eoskit/eos/outbox"
	"github.com/eoskit/eos/outbox/outboxtest"
	"github.com/eoskit/eos/transport/natsjs/natsembed"
)

const (
	benchWindow     = 256
	benchAckTimeout = 30 * time.Second // a failure bound
)

// BenchmarkRelay measures, in one run against the embedded server syncing
// every write (sync_interval always), b.N events each way:
//
//   - raw: asynchronous JetStream publishes with Nats-Msg-Id, at most 256
//     awaiting their ack;
//   - atomic_raw: JetStream atomic batches of 256 sent by hand, one
//     awaiting its answer at a time (the protocol alone, without the relay);
//   - relay: outbox.Relay forwarding rows from SQLite (synchronous=FULL)
//     through Publisher, batches of 256, window 256, with atomic batches
//     (BatchAuto, "batch") and without (BatchOff, "each"), for rows without
//     a key ("nokey"), with a key of their own ("keys": each row waits for
//     no other), and with one key for all ("onekey": each row waits for
//     the ack of the one before, unless they share an atomic batch);
//   - relay_nokey_memory: the relay of rows without a key forwarding to an
//     in-memory publisher (outboxtest), the relay's own cost.
//
// The ways take turns, a tenth of the events at a time, so that a change of
// the machine's load during the run weighs on each alike. It reports
// events/s of each, the ratios to raw, and the ratio of the relay with
// atomic batches to the relay without. Run with a fixed count, e.g. -bench
// Relay -benchtime 20000x.
func BenchmarkRelay(b *testing.B) {
	srv, err := natsembed.Start(natsembed.Config{Dir: b.TempDir()})
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
	payload := []byte("1234567890123456789012345678901234567890123456789012345678901234") // 64 bytes
	ids := func() []string {
		out := make([]string, b.N)
		for i := range out {
			out[i] = eos.NewID()
		}
		return out
	}
	ensureBenchStream(ctx, b, js, "RAW")
	createAtomicStream(ctx, b, js, "ATOMIC", "ATOMIC.>")
	rawIDs, atomicIDs := ids(), ids()
	ways := []*testdb.Way{
		{Name: "raw", Step: func(done, n int) (int, error) {
			return n, publishRaw(js, "RAW.x", rawIDs[done:done+n], payload)
		}},
		{Name: "atomic_raw", Step: func(done, n int) (int, error) {
			return n, publishAtomicBatches(nc, "ATOMIC.x", atomicIDs[done:done+n], payload, 1)
		}},
	}
	ways = append(ways, relayWays(ctx, b, js, payload)...)
	b.ResetTimer()
	rates := testdb.TakeWays(b, b.N, ways)
	raw := rates["raw"]
	b.ReportMetric(raw, "raw_events/s")
	b.ReportMetric(rates["atomic_raw"], "atomic_raw_events/s")
	b.ReportMetric(rates["atomic_raw"]/raw, "atomic_raw/raw")
	b.ReportMetric(rates["relay_nokey_memory"], "relay_nokey_memory_events/s")
	for _, sh := range relayShapes {
		each, batch := rates["relay_"+sh.name+"_each"], rates["relay_"+sh.name+"_batch"]
		b.ReportMetric(each, "relay_"+sh.name+"_each_events/s")
		b.ReportMetric(batch, "relay_"+sh.name+"_batch_events/s")
		b.ReportMetric(each/raw, "relay_"+sh.name+"_each/raw")
		b.ReportMetric(batch/raw, "relay_"+sh.name+"_batch/raw")
		b.ReportMetric(batch/each, "relay_"+sh.name+"_batch/each")
	}
}

// relayShapes are the keys of BenchmarkRelay's rows.
var relayShapes = []struct {
	name string
	key  func(int) string
}{
	{"nokey", func(int) string { return "" }},
	{"keys", strconv.Itoa},
	{"onekey", func(int) string { return "k" }},
}

// relayWays returns BenchmarkRelay's relays, each with b.N rows of its own
// to forward to a stream of its own.
func relayWays(ctx context.Context, b *testing.B, js jetstream.JetStream, payload []byte) []*testdb.Way {
	var ways []*testdb.Way
	for _, sh := range relayShapes {
		for _, mode := range []struct {
			name  string
			batch BatchMode
		}{{"each", BatchOff}, {"batch", BatchAuto}} {
			stream := strings.ToUpper(sh.name + "_" + mode.name)
			ensureBenchStream(ctx, b, js, stream)
			pub, err := NewPublisher(js, PublisherConfig{Window: benchWindow, Batch: mode.batch})
			if err != nil {
				b.Fatal(err)
			}
			r := setupRelay(b, testdb.SQLite(b), pub, stream+".x", b.N, payload, sh.key)
			ways = append(ways, &testdb.Way{Name: "relay_" + sh.name + "_" + mode.name, Step: func(int, int) (int, error) { return r.Forward(ctx) }})
		}
	}
	r := setupRelay(b, testdb.SQLite(b), outboxtest.NewPublisher(), "MEMORY.x", b.N, payload, relayShapes[0].key)
	return append(ways, &testdb.Way{Name: "relay_nokey_memory", Step: func(int, int) (int, error) { return r.Forward(ctx) }})
}

// ensureBenchStream provisions stream name on subjects name.>.
func ensureBenchStream(ctx context.Context, b *testing.B, js jetstream.JetStream, name string) {
	if _, _, err := EnsureStream(ctx, js, StreamConfig{Name: name, Subjects: []string{name + ".>"}}); err != nil {
		b.Fatal(err)
	}
}

// setupRelay enqueues n rows on topic, row i with key(i), and returns a
// relay that forwards them to pub.
func setupRelay(b *testing.B, e *testdb.Engine[*sql.Tx], pub outbox.Publisher, topic string, n int, payload []byte, key func(int) string) *outbox.Relay[*sql.Tx] {
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
			ms[j] = eos.Message{Payload: payload, Key: key(i + j)}
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

// publishRaw publishes asynchronously with Nats-Msg-Id, at most benchWindow
// awaiting their ack.
func publishRaw(js jetstream.JetStream, subject string, ids []string, payload []byte) error {
	futures := make([]jetstream.PubAckFuture, len(ids))
	for sent, acked := 0, 0; acked < len(ids); acked++ {
		for ; sent < len(ids) && sent-acked < benchWindow; sent++ {
			m := nats.NewMsg(subject)
			m.Header.Set(jetstream.MsgIDHeader, ids[sent])
			m.Data = payload
			f, err := js.PublishMsgAsync(m)
			if err != nil {
				return err
			}
			futures[sent] = f
		}
		select {
		case <-futures[acked].Ok():
		case err := <-futures[acked].Err():
			return err
		case <-time.After(benchAckTimeout):
			return errors.New("no ack")
		}
	}
	return nil
}

// publishAtomicBatches publishes ids in atomic batches of benchWindow, at
// most inflight batches awaiting their answer.
func publishAtomicBatches(nc *nats.Conn, subject string, ids []string, payload []byte, inflight int) error {
	replies := make(chan *nats.Msg, inflight)
	inbox := nc.NewRespInbox()
	sub, err := nc.ChanSubscribe(inbox, replies)
	if err != nil {
		return err
	}
	defer sub.Unsubscribe()
	pending := 0
	wait := func() error {
		pending--
		select {
		case m := <-replies:
			_, err := parseAtomicAck(m.Data)
			return err
		case <-time.After(benchAckTimeout):
			return errors.New("no answer to an atomic batch")
		}
	}
	for start := 0; start < len(ids); start += benchWindow {
		if pending == inflight {
			if err := wait(); err != nil {
				return err
			}
		}
		if err := sendAtomic(nc, subject, inbox, ids[start:min(start+benchWindow, len(ids))], payload); err != nil {
			return err
		}
		pending++
	}
	for pending > 0 {
		if err := wait(); err != nil {
			return err
		}
	}
	return nil
}
