package natsembed_test

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/eoskit/eos/transport/natsjs/natsembed"
)

// TestRestart checks that a stream survives a restart on the same
// directory, and that a connection to a stopped server closes at once
// instead of trying to reconnect to it.
func TestRestart(t *testing.T) {
	cfg := natsembed.Config{Dir: t.TempDir()}
	srv, err := natsembed.Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if srv.ClientURL() != "" {
		t.Errorf("ClientURL %q without Listen", srv.ClientURL())
	}
	closed := make(chan struct{})
	nc, err := srv.Connect(nats.ClosedHandler(func(*nats.Conn) { close(closed) }))
	if err != nil {
		t.Fatal(err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "S", Subjects: []string{"s"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(ctx, "s", []byte("kept")); err != nil {
		t.Fatal(err)
	}
	srv.Shutdown()
	select {
	case <-closed:
	case <-ctx.Done():
		t.Fatalf("connection not closed after Shutdown (status %v)", nc.Status())
	}

	srv, err = natsembed.Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown()
	nc, err = srv.Connect()
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if js, err = jetstream.New(nc); err != nil {
		t.Fatal(err)
	}
	s, err := js.Stream(ctx, "S")
	if err != nil {
		t.Fatalf("stream after restart: %v", err)
	}
	m, err := s.GetLastMsgForSubject(ctx, "s")
	if err != nil || string(m.Data) != "kept" {
		t.Fatalf("after restart: %v, %v", m, err)
	}
}

// TestListen checks that a listening server takes connections by URL.
func TestListen(t *testing.T) {
	srv, err := natsembed.Start(natsembed.Config{Dir: t.TempDir(), Listen: true})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown()
	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	nc.Close()
}
