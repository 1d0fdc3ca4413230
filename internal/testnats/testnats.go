package testnats

import (
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/eoskit/eos/transport/natsjs/natsembed"
)

// JetStream starts an embedded server with JetStream (files in a
// temporary directory of t, synced on every write) and returns a
// JetStream client on it; both end with t.
func JetStream(t testing.TB) jetstream.JetStream {
	t.Helper()
	srv, err := natsembed.Start(natsembed.Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	nc, err := srv.Connect()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return js
}
