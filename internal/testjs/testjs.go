// Package testjs gives a test an embedded NATS JetStream server of its own
// (files in the test's temp dir, shut down at its end) and a JetStream
// context on it, so that tests of any package use the real broker without
// repeating the setup.
package testjs

import (
	"path/filepath"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/eoskit/eos/transport/natsjs/natsembed"
)

// Start starts an embedded server for t and returns a JetStream context
// connected to it, and the server.
func Start(t testing.TB) (jetstream.JetStream, *natsembed.Server) {
	t.Helper()
	srv, err := natsembed.Start(natsembed.Config{Dir: filepath.Join(t.TempDir(), "nats")})
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
	return js, srv
}
