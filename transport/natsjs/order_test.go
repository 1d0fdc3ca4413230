package natsjs

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/eoskit/eos"
	"github.com/eoskit/eos/outbox"
	"github.com/eoskit/eos/transport/natsjs/natsembed"
)

// TestKeyOrderAcrossRestart publishes a burst of one key the way the relay
// does (a batch, then the rest from the first unacknowledged message) while
// the broker restarts twice under it, then reads the stream back: every
// message once, in publish order. It does so message by message and in
// atomic batches.
func TestKeyOrderAcrossRestart(t *testing.T) {
	for _, batch := range []BatchMode{BatchOff, BatchAuto} {
		t.Run(fmt.Sprintf("batch=%v", batch == BatchAuto), func(t *testing.T) { testKeyOrderAcrossRestart(t, batch) })
	}
}

func testKeyOrderAcrossRestart(t *testing.T, batch BatchMode) {
	const n = 4000
	cfg := natsembed.Config{Dir: t.TempDir(), Listen: true}
	srv := startServer(t, cfg)
	u, err := url.Parse(srv.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Port, err = strconv.Atoi(u.Port()); err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(srv.ClientURL(), nats.MaxReconnects(-1), nats.ReconnectWait(time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if _, _, err := EnsureStream(ctx, js, StreamConfig{Name: "S", Subjects: []string{"ord.>"}}); err != nil {
		t.Fatal(err)
	}
	pub, err := NewPublisher(js, PublisherConfig{AckTimeout: 5 * time.Second, Batch: batch})
	if err != nil {
		t.Fatal(err)
	}
	envs := make([]outbox.Envelope, n)
	for i := range envs {
		envs[i] = outbox.Envelope{Topic: "ord.a", Message: eos.Message{ID: fmt.Sprintf("m%05d", i), Key: "k", Payload: []byte("x")}}
	}

	// The broker restarts when a quarter, then half of the burst is
	// acknowledged, while the publisher keeps going.
	progress := make(chan int, 1)
	restarted := make(chan error, 1)
	go func() {
		for _, at := range []int{n / 4, n / 2} {
			for done := range progress {
				if done >= at {
					break
				}
			}
			srv.Shutdown()
			next, err := natsembed.Start(cfg)
			if err != nil {
				srv = nil
				restarted <- err
				return
			}
			srv = next
		}
		restarted <- nil
	}()
	var stopped error
	stopRestarts := sync.OnceFunc(func() {
		close(progress)
		stopped = <-restarted
	})
	defer func() {
		stopRestarts()
		if srv != nil {
			srv.Shutdown()
		}
	}()
	for done := 0; done < n; {
		acked, err := pub.Publish(ctx, envs[done:min(done+256, n)])
		done += acked
		if err != nil {
			t.Logf("at %d: %v", done, err)
			if ctx.Err() != nil {
				t.Fatalf("%d of %d acknowledged: %v", done, n, err)
			}
		}
		select {
		case progress <- done:
		default:
		}
	}
	if stopRestarts(); stopped != nil {
		t.Fatal(stopped)
	}
	t.Logf("atomic batches %d, fallbacks %d, duplicates %d", pub.Batches(), pub.Fallbacks(), pub.Duplicates())
	if batch == BatchAuto && pub.Batches() == 0 {
		t.Errorf("no atomic batch was sent")
	}

	checkStored(ctx, t, js, "S", envs)
}

// TestKeyOrderWhenStreamStopsAnswering takes the stream's subject away
// (to a client, a stream restarting or electing a leader looks the same:
// no responders) just after the first message of a same-key burst is
// sent, and gives it back at once, while the publisher goes on the way the
// relay does.
func TestKeyOrderWhenStreamStopsAnswering(t *testing.T) {
	const n = 256
	js := embedded(t, "ord.>")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	setSubjects := func(subjects ...string) {
		t.Helper()
		s, err := js.Stream(ctx, "S")
		if err != nil {
			t.Fatal(err)
		}
		cfg := s.CachedInfo().Config
		cfg.Subjects = subjects
		if _, err := js.UpdateStream(ctx, cfg); err != nil {
			t.Fatal(err)
		}
	}
	sent := make(chan struct{}, 1)
	pub, err := NewPublisher(signalling{js, sent}, PublisherConfig{})
	if err != nil {
		t.Fatal(err)
	}
	envs := make([]outbox.Envelope, n)
	for i := range envs {
		envs[i] = outbox.Envelope{Topic: "ord.a", Message: eos.Message{ID: fmt.Sprintf("m%05d", i), Key: "k", Payload: []byte("x")}}
	}

	setSubjects("elsewhere")
	restored := make(chan struct{})
	go func() {
		defer close(restored)
		<-sent
		// The update travels on the publisher's connection, behind the
		// first message: the stream refuses that one.
		setSubjects("ord.>")
	}()
	for done := 0; done < n; {
		acked, err := pub.Publish(ctx, envs[done:])
		done += acked
		if err != nil {
			t.Logf("at %d: %v", done, err)
			if ctx.Err() != nil {
				t.Fatal(err)
			}
			<-restored
		}
	}
	<-restored
	checkStored(ctx, t, js, "S", envs)
}

// signalling is a JetStream context that signals each asynchronous publish
// on sent, without blocking.
type signalling struct {
	jetstream.JetStream
	sent chan<- struct{}
}

func (s signalling) PublishMsgAsync(m *nats.Msg, opts ...jetstream.PublishOpt) (jetstream.PubAckFuture, error) {
	f, err := s.JetStream.PublishMsgAsync(m, opts...)
	select {
	case s.sent <- struct{}{}:
	default:
	}
	return f, err
}

// checkStored reads stream back and fails the test unless it holds each of
// envs once, in their order.
func checkStored(ctx context.Context, t *testing.T, js jetstream.JetStream, stream string, envs []outbox.Envelope) {
	t.Helper()
	cons, err := js.OrderedConsumer(ctx, stream, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for {
		batch, err := cons.FetchNoWait(len(envs) + 1)
		if err != nil {
			t.Fatal(err)
		}
		k := len(got)
		for m := range batch.Messages() {
			got = append(got, m.Headers().Get(jetstream.MsgIDHeader))
		}
		if err := batch.Error(); err != nil {
			t.Fatal(err)
		}
		if len(got) == k {
			break
		}
	}
	for i, id := range got {
		if i >= len(envs) || id != envs[i].ID {
			want := "nothing"
			if i < len(envs) {
				want = envs[i].ID
			}
			t.Fatalf("stream position %d holds %s, want %s (publish order); %d stored for %d published", i+1, id, want, len(got), len(envs))
		}
	}
	if len(got) != len(envs) {
		t.Fatalf("stream holds %d messages, want %d", len(got), len(envs))
	}
}

// TestPublishHoldsKeyAfterRefusal publishes two interleaved keys where the
// stream refuses the first message of key b (no stream captures its
// subject): the second message of b must not be sent at all, while key a
// goes on; Publish reports the first message and names the refused one.
func TestPublishHoldsKeyAfterRefusal(t *testing.T) {
	js := embedded(t, "held.>")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	pub, err := NewPublisher(js, PublisherConfig{})
	if err != nil {
		t.Fatal(err)
	}
	msg := func(topic, id, key string) outbox.Envelope {
		return outbox.Envelope{Topic: topic, Message: eos.Message{ID: id, Key: key}}
	}
	envs := []outbox.Envelope{
		msg("held.a", "a1", "a"), msg("refused.b", "b1", "b"), msg("held.a", "a2", "a"), msg("held.b", "b2", "b"), msg("held.a", "a3", "a"),
	}
	n, err := pub.Publish(ctx, envs)
	if n != 1 || err == nil || !strings.Contains(err.Error(), "b1") {
		t.Errorf("Publish: %d acknowledged, %v; want 1 and the error of b1", n, err)
	}
	// A publish acknowledged on the same connection comes after everything
	// sent before it.
	if _, err := pub.PublishMessage(ctx, "held.a", eos.Message{ID: "fence"}); err != nil {
		t.Fatal(err)
	}
	s, err := js.Stream(ctx, "S")
	if err != nil {
		t.Fatal(err)
	}
	if m, err := s.GetLastMsgForSubject(ctx, "held.b"); err == nil {
		t.Errorf("%s was stored although the message before it with its key was refused", m.Header.Get(jetstream.MsgIDHeader))
	} else if !errors.Is(err, jetstream.ErrMsgNotFound) {
		t.Fatal(err)
	}
}
