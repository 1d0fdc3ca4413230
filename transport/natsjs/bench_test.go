package natsjs

import (
	"context"
	"database/sql"
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/eoskit/eos"
	"github.com/eoskit/eos/internal/testdb"
	"github.com/eoskit/eos/outbox"
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
//   - relay: outbox.Relay forwarding rows from SQLite (synchronous=FULL)
//     through Publisher, batches of 256, window 256, rows without a key;
//   - relay_keys: the same with a key of its own on every row (many
//     distinct keys, each row waits for no other);
//   - relay_onekey: the same with one key on every row (each row waits for
//     the ack of the one before);
//   - atomic: JetStream atomic batches of 256 (one commit and one PubAck per
//     batch), one batch awaiting its answer at a time, and four.
//
// It reports events/s of each and the ratios to raw. Run with a fixed
// count, e.g. -bench Relay -benchtime 20000x.
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
	for _, name := range []string{"RAW", "RELAY", "KEYS", "ONEKEY"} {
		if _, _, err := EnsureStream(ctx, js, StreamConfig{Name: name, Subjects: []string{name + ".>"}}); err != nil {
			b.Fatal(err)
		}
	}
	createAtomicStream(ctx, b, js, "ATOMIC", "ATOMIC.>")
	payload := []byte("1234567890123456789012345678901234567890123456789012345678901234") // 64 bytes

	e := testdb.SQLite(b)
	relay := setupRelay(b, e, js, "RELAY.x", b.N, payload, func(int) string { return "" })
	keysRelay := setupRelay(b, testdb.SQLite(b), js, "KEYS.x", b.N, payload, func(i int) string { return strconv.Itoa(i) })
	oneKeyRelay := setupRelay(b, testdb.SQLite(b), js, "ONEKEY.x", b.N, payload, func(int) string { return "k" })
	ids := func() []string {
		out := make([]string, b.N)
		for i := range out {
			out[i] = eos.NewID()
		}
		return out
	}
	rawIDs, atomicIDs, atomic4IDs := ids(), ids(), ids()

	b.ResetTimer()
	raw := rate(b, b.N, func() error { return publishRaw(js, "RAW.x", rawIDs, payload) })
	relayed := rate(b, b.N, func() error { return forwardAll(ctx, relay, b.N) })
	keyed := rate(b, b.N, func() error { return forwardAll(ctx, keysRelay, b.N) })
	oneKey := rate(b, b.N, func() error { return forwardAll(ctx, oneKeyRelay, b.N) })
	atomic1 := rate(b, b.N, func() error { return publishAtomicBatches(nc, "ATOMIC.x", atomicIDs, payload, 1) })
	atomic4 := rate(b, b.N, func() error { return publishAtomicBatches(nc, "ATOMIC.x", atomic4IDs, payload, 4) })
	b.StopTimer()

	b.ReportMetric(raw, "raw_events/s")
	b.ReportMetric(relayed, "relay_events/s")
	b.ReportMetric(relayed/raw, "relay/raw")
	b.ReportMetric(keyed, "relay_keys_events/s")
	b.ReportMetric(keyed/raw, "relay_keys/raw")
	b.ReportMetric(oneKey, "relay_onekey_events/s")
	b.ReportMetric(oneKey/raw, "relay_onekey/raw")
	b.ReportMetric(atomic1, "atomic1_events/s")
	b.ReportMetric(atomic4, "atomic4_events/s")
	b.ReportMetric(atomic4/raw, "atomic4/raw")
}

// rate runs f and returns n divided by the time it took.
func rate(b *testing.B, n int, f func() error) float64 {
	start := time.Now()
	if err := f(); err != nil {
		b.Fatal(err)
	}
	return float64(n) / time.Since(start).Seconds()
}

// forwardAll forwards n rows through r.
func forwardAll(ctx context.Context, r *outbox.Relay[*sql.Tx], n int) error {
	for sent := 0; sent < n; {
		k, err := r.Forward(ctx)
		if err != nil {
			return err
		}
		sent += k
	}
	return nil
}

// setupRelay enqueues n rows on topic, row i with key(i), and returns a
// relay that forwards them.
func setupRelay(b *testing.B, e *testdb.Engine[*sql.Tx], js jetstream.JetStream, topic string, n int, payload []byte, key func(int) string) *outbox.Relay[*sql.Tx] {
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
	pub, err := NewPublisher(js, PublisherConfig{Window: benchWindow})
	if err != nil {
		b.Fatal(err)
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
