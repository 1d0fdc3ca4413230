package natsjs

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/eoskit/eos"
)

// JetStream atomic batch publish (server 2.12 and later, on a stream with
// AllowAtomicPublish): every message of a batch carries Nats-Batch-Id and
// Nats-Batch-Sequence (1, 2, …); the last also Nats-Batch-Commit: 1 and a
// reply subject, and the server answers it with one PubAck for the whole
// batch (with "batch" and "count"). The server stages the batch and stores
// all of it or none. The Publisher sends such batches (batch.go); these
// helpers send them by hand, to measure the protocol alone (BenchmarkRelay)
// and to pin down how the server treats Nats-Msg-Id.

// atomicAck is the server's answer to an atomic batch's commit.
type atomicAck struct {
	Stream string `json:"stream"`
	Seq    uint64 `json:"seq"`
	Batch  string `json:"batch"`
	Count  int    `json:"count"`
	Error  *struct {
		ErrCode     int    `json:"err_code"`
		Description string `json:"description"`
	} `json:"error"`
}

// sendAtomic sends one atomic batch of messages with the given ids on
// subject; the commit asks for its answer on reply.
func sendAtomic(nc *nats.Conn, subject, reply string, ids []string, payload []byte) error {
	batch := eos.NewID()
	for i, id := range ids {
		m := toNATS(subject, eos.Message{ID: id, Payload: payload})
		m.Header.Set("Nats-Batch-Id", batch)
		m.Header.Set("Nats-Batch-Sequence", strconv.Itoa(i+1))
		if i == len(ids)-1 {
			m.Header.Set("Nats-Batch-Commit", "1")
			m.Reply = reply
		}
		if err := nc.PublishMsg(m); err != nil {
			return err
		}
	}
	return nil
}

func parseAtomicAck(data []byte) (atomicAck, error) {
	var ack atomicAck
	if err := json.Unmarshal(data, &ack); err != nil {
		return ack, fmt.Errorf("atomic batch: bad answer %q: %w", data, err)
	}
	if ack.Error != nil {
		return ack, fmt.Errorf("atomic batch refused: %s (%d)", ack.Error.Description, ack.Error.ErrCode)
	}
	return ack, nil
}

// publishAtomic sends one atomic batch and waits for its answer.
func publishAtomic(ctx context.Context, nc *nats.Conn, subject string, ids ...string) (atomicAck, error) {
	sub, err := nc.SubscribeSync(nc.NewRespInbox())
	if err != nil {
		return atomicAck{}, err
	}
	defer sub.Unsubscribe()
	if err := sendAtomic(nc, subject, sub.Subject, ids, []byte("x")); err != nil {
		return atomicAck{}, err
	}
	m, err := sub.NextMsgWithContext(ctx)
	if err != nil {
		return atomicAck{}, err
	}
	return parseAtomicAck(m.Data)
}

// createAtomicStream creates a stream that takes atomic batches.
func createAtomicStream(ctx context.Context, t testing.TB, js jetstream.JetStream, name, subject string) jetstream.Stream {
	t.Helper()
	s, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: name, Subjects: []string{subject}, AllowAtomicPublish: true})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestAtomicBatchDedupe records how an atomic batch meets Nats-Msg-Id:
// the ids of a committed batch count for later publishes, but a batch that
// holds an id the stream has seen (or one id twice) is refused whole,
// where single publishes drop just the duplicate. A relay re-publishing
// after a crash sees its whole batch refused (TestBatchAfterRelayCrash).
func TestAtomicBatchDedupe(t *testing.T) {
	js := embedded(t, "unused")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s := createAtomicStream(ctx, t, js, "A", "atomic.>")
	nc := js.Conn()
	count := func() uint64 {
		t.Helper()
		info, err := s.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return info.State.Msgs
	}

	ack, err := publishAtomic(ctx, nc, "atomic.a", "1", "2", "3")
	if err != nil || ack.Count != 3 || ack.Seq != 3 {
		t.Fatalf("atomic batch: %+v, %v", ack, err)
	}
	pub, err := NewPublisher(js, PublisherConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if r, err := pub.PublishMessage(ctx, "atomic.a", eos.Message{ID: "2"}); err != nil || !r.Duplicate {
		t.Errorf("single re-publish of a batched id: %+v, %v; want a duplicate", r, err)
	}
	if _, err := publishAtomic(ctx, nc, "atomic.a", "3", "4"); err == nil {
		t.Errorf("batch with a seen id was accepted")
	} else {
		t.Logf("batch with a seen id: %v", err)
	}
	if _, err := publishAtomic(ctx, nc, "atomic.a", "5", "5"); err == nil {
		t.Errorf("batch with one id twice was accepted")
	}
	if n := count(); n != 3 {
		t.Errorf("stream holds %d messages, want 3: a refused batch stored part of itself", n)
	}
}
