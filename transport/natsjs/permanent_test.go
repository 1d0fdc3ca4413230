package natsjs

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/eoskit/eos"
	"github.com/eoskit/eos/internal/testdb"
	"github.com/eoskit/eos/internal/testdb/engines"
	"github.com/eoskit/eos/outbox"
)

// countingPublisher counts how often each id was handed to the broker.
type countingPublisher struct {
	pub  outbox.Publisher
	mu   sync.Mutex
	sent map[string]int
}

func (c *countingPublisher) Publish(ctx context.Context, msgs []outbox.Envelope) (int, error) {
	c.mu.Lock()
	for _, m := range msgs {
		c.sent[m.ID]++
	}
	c.mu.Unlock()
	return c.pub.Publish(ctx, msgs)
}

// storedIDs reads stream back and returns the Nats-Msg-Id of every stored
// message, in stream order.
func storedIDs(t *testing.T, js jetstream.JetStream, stream string) []string {
	t.Helper()
	ctx := context.Background()
	s, err := js.Stream(ctx, stream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if err != nil {
			t.Fatalf("stream %s seq %d: %v", stream, seq, err)
		}
		ids = append(ids, m.Header.Get(jetstream.MsgIDHeader))
	}
	return ids
}

// publisherConfigs are the shapes of publishing the permanent-failure
// tests run: one at a time, a window, each with and without atomic
// batches.
var publisherConfigs = []PublisherConfig{
	{Window: 1, Batch: BatchOff}, {Window: 256, Batch: BatchOff}, {Window: 1}, {Window: 256},
}

func configName(c PublisherConfig) string {
	return fmt.Sprintf("window=%d/batch=%v", c.Window, c.Batch == BatchAuto)
}

func TestUnpublishableRowDoesNotBlockOtherKeys(t *testing.T) {
	for _, cfg := range publisherConfigs {
		t.Run(configName(cfg), func(t *testing.T) {
			engines.Each(t,
				func(t *testing.T, e *testdb.Engine[*sql.Tx]) { testUnpublishable(t, e, cfg) },
				func(t *testing.T, e *testdb.Engine[pgx.Tx]) { testUnpublishable(t, e, cfg) })
		})
	}
}

// testUnpublishable: a row whose subject no stream captures comes first;
// rows of five other keys and one more row of its own key follow. The
// relay goes on with the other keys, each stored on the broker once
// however often the relay passes, and holds the bad row's key behind it.
func testUnpublishable[TTx any](t *testing.T, e *testdb.Engine[TTx], cfg PublisherConfig) {
	ctx := context.Background()
	js := embedded(t, "ok.>") // stream S
	np, err := NewPublisher(js, cfg)
	if err != nil {
		t.Fatal(err)
	}
	pub := &countingPublisher{pub: np, sent: map[string]int{}}
	ob, err := outbox.New(e.Driver, outbox.Config{})
	if err != nil {
		t.Fatal(err)
	}
	tx, err := e.Driver.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Driver.Rollback(ctx, tx)
	if err := ob.Enqueue(ctx, tx, "nowhere.orders", eos.Message{ID: "bad", Key: "A"}); err != nil {
		t.Fatal(err)
	}
	var healthy []string
	for i, k := range []string{"B", "C", "D", "E", "F"} {
		id := fmt.Sprintf("ok-%d", i)
		healthy = append(healthy, id)
		if err := ob.Enqueue(ctx, tx, "ok.orders", eos.Message{ID: id, Key: k}); err != nil {
			t.Fatal(err)
		}
	}
	if err := ob.Enqueue(ctx, tx, "ok.orders", eos.Message{ID: "A-behind", Key: "A"}); err != nil {
		t.Fatal(err)
	}
	if err := e.Driver.Commit(ctx, tx); err != nil {
		t.Fatal(err)
	}

	r, err := outbox.NewRelay(e.Driver, pub, outbox.RelayConfig{})
	if err != nil {
		t.Fatal(err)
	}
	for pass := 0; pass < 3; pass++ { // a pass and two retries
		n, err := r.Forward(ctx)
		t.Logf("pass %d: forwarded %d, %v", pass, n, err)
	}
	stored := map[string]int{}
	for _, id := range storedIDs(t, js, "S") {
		stored[id]++
	}
	for _, id := range healthy {
		if stored[id] != 1 {
			t.Errorf("%s stored %d times on the broker (handed to it %d times), want once", id, stored[id], pub.sent[id])
		}
	}
	st, err := ob.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Unsent != 2 {
		t.Fatalf("%d rows unsent after three passes, want 2 (the bad row and the row of its key behind it)", st.Unsent)
	}
	if cfg.Window == 1 && stored["A-behind"] != 0 {
		// With one publish in flight, nothing behind the bad row reached
		// the broker; the publisher's own per-key order (several in flight)
		// is not this test's subject.
		t.Fatalf("A-behind stored %d times while its key's head is unpublishable", stored["A-behind"])
	}
	t.Logf("healthy rows handed to the publisher %v; duplicates reported by JetStream: %d; atomic batches %d", pub.sent, np.Duplicates(), np.Batches())
	if cfg.Batch == BatchAuto && np.Batches() == 0 {
		t.Errorf("no atomic batch was sent")
	}

	parked, err := ob.ParkedRows(ctx, 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(parked) != 1 || parked[0].ID != "bad" || !strings.Contains(parked[0].Error, "no stream captures subject nowhere.orders") ||
		st.Parked != 1 {
		t.Fatalf("parked rows %+v, stats %+v", parked, st)
	}
	// The operator creates the missing stream and requeues the row: it is
	// sent, then the row of its key that waited behind it.
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "NOWHERE", Subjects: []string{"nowhere.>"}}); err != nil {
		t.Fatal(err)
	}
	if n, err := ob.RequeueParked(ctx, parked[0].Seq); n != 1 || err != nil {
		t.Fatalf("requeue: %d %v", n, err)
	}
	if n, err := r.Forward(ctx); n != 2 || err != nil {
		t.Fatalf("after the requeue: forwarded %d, %v", n, err)
	}
	if got := storedIDs(t, js, "NOWHERE"); len(got) != 1 || got[0] != "bad" {
		t.Fatalf("NOWHERE holds %v", got)
	}
	stored = map[string]int{}
	for _, id := range storedIDs(t, js, "S") {
		stored[id]++
	}
	if stored["A-behind"] != 1 || len(stored) != 6 {
		t.Fatalf("S holds %v", stored)
	}
	if st, err := ob.Stats(ctx); err != nil || st.Unsent != 0 || st.Parked != 0 {
		t.Fatalf("stats %+v %v", st, err)
	}
}

// TestPublishUnpublishable: what JetStream refuses for good is reported
// wrapping outbox.ErrUnpublishable, with the index of the refused message.
func TestPublishUnpublishable(t *testing.T) {
	ctx := context.Background()
	js := embedded(t, "ok.>")
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "SMALL", Subjects: []string{"small.>"}, MaxMsgSize: 64}); err != nil {
		t.Fatal(err)
	}
	ok := outbox.Envelope{Topic: "ok.x", Message: eos.Message{ID: "ok"}}
	for _, cfg := range publisherConfigs {
		pub, err := NewPublisher(js, cfg)
		if err != nil {
			t.Fatal(err)
		}
		for name, bad := range map[string]outbox.Envelope{
			"no stream":            {Topic: "nowhere.x", Message: eos.Message{ID: "a"}},
			"stream's MaxMsgSize":  {Topic: "small.x", Message: eos.Message{ID: "b", Payload: make([]byte, 200)}},
			"server's max_payload": {Topic: "ok.x", Message: eos.Message{ID: "c", Payload: make([]byte, js.Conn().MaxPayload()+1)}},
		} {
			acked, err := pub.Publish(ctx, []outbox.Envelope{ok, bad, ok})
			if acked != 1 || !errors.Is(err, outbox.ErrUnpublishable) {
				t.Errorf("%s, %s: acked %d, %v", configName(cfg), name, acked, err)
			}
		}
		if cfg.Batch == BatchAuto && pub.Fallbacks() == 0 {
			t.Errorf("%s: no atomic batch was tried", configName(cfg))
		}
	}
}

// TestNoRespondersIsPermanentOnlyWithoutStream: JetStream answers a publish
// with "no responders" both when no stream captures the subject and while
// the stream that does is not ready (a restart, a leader election). Only
// the first is permanent, and only the JetStream API's answer tells them
// apart: a stream's name, or no answer at all, leaves it transient.
func TestNoRespondersIsPermanentOnlyWithoutStream(t *testing.T) {
	ctx := context.Background()
	js := embedded(t, "ok.>")
	p, err := NewPublisher(js, PublisherConfig{AckTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	noResponders := fmt.Errorf("natsjs: publish m: %w", jetstream.ErrNoStreamResponse)
	check := func(what, subject string, in error, permanent bool) {
		t.Helper()
		err := p.permanent(ctx, subject, in)
		if errors.Is(err, outbox.ErrUnpublishable) != permanent || !errors.Is(err, in) {
			t.Errorf("%s: %v (permanent: want %v)", what, err, permanent)
		}
	}
	check("no stream captures the subject", "nowhere.x", noResponders, true)
	check("a stream captures the subject, not ready", "ok.x", noResponders, false)
	check("a timeout", "nowhere.x", errors.New("no ack within 1s"), false)
	canceled, cancel := context.WithCancel(ctx)
	cancel()
	if err := p.permanent(canceled, "nowhere.x", noResponders); errors.Is(err, outbox.ErrUnpublishable) {
		t.Errorf("with ctx canceled: %v", err)
	}
	js.Conn().Close() // the JetStream API cannot answer now
	check("no connection", "nowhere.x", noResponders, false)
}
