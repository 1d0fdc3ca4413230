package faults

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/eoskit/eos/internal/ctxtime"
	"github.com/eoskit/eos/transport/natsjs/natsembed"
)

// BrokerSchedule is the default of Broker.Run: a restart every 1–3 s.
func BrokerSchedule() Schedule {
	every := Span{time.Second, 2 * time.Second}
	return Schedule{First: every, Gap: every}
}

// Broker is an embedded NATS server that can be restarted on the same
// port and files, as a broker restart fault: clients with reconnects on
// reconnect.
type Broker struct {
	cfg natsembed.Config

	mu       sync.Mutex
	srv      *natsembed.Server // nil after a failed restart or Shutdown
	restarts int
}

// StartBroker starts an embedded server that listens (cfg.Listen is set).
func StartBroker(cfg natsembed.Config) (*Broker, error) {
	cfg.Listen = true
	srv, err := natsembed.Start(cfg)
	if err != nil {
		return nil, err
	}
	u, err := url.Parse(srv.ClientURL())
	if err == nil {
		cfg.Port, err = strconv.Atoi(u.Port())
	}
	if err != nil {
		srv.Shutdown()
		return nil, fmt.Errorf("embedded NATS server: port of %s: %w", srv.ClientURL(), err)
	}
	return &Broker{cfg: cfg, srv: srv}, nil
}

// ClientURL is the URL the server listens at, the same across restarts.
func (b *Broker) ClientURL() string { return "nats://127.0.0.1:" + strconv.Itoa(b.cfg.Port) }

// Connect opens an in-process connection to the server as it runs now; it
// does not survive a restart (connect to ClientURL with reconnects for
// that).
func (b *Broker) Connect() (*nats.Conn, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.srv == nil {
		return nil, fmt.Errorf("embedded NATS server: down")
	}
	return b.srv.Connect()
}

// Restarts returns the restarts so far.
func (b *Broker) Restarts() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.restarts
}

// Restart shuts the server down and starts it again on the same port and
// files.
func (b *Broker) Restart() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.srv == nil {
		return fmt.Errorf("broker restart: the server is down")
	}
	b.srv.Shutdown()
	b.srv = nil
	return startAgain("broker restart", &b.restarts, func() (err error) {
		b.srv, err = natsembed.Start(b.cfg)
		return err
	})
}

// startAgain calls start until it succeeds, 50 tries 100 ms apart (the
// ports of what just stopped may take a moment to free), and counts the
// restart; what names the restart in the error of the last try.
func startAgain(what string, restarts *int, start func() error) error {
	for try := 0; ; try++ {
		err := start()
		if err == nil {
			*restarts++
			return nil
		}
		if try == 50 {
			return fmt.Errorf("%s: %w", what, err)
		}
		ctxtime.Sleep(context.Background(), 100*time.Millisecond)
	}
}

// Run restarts the server on s's schedule until ctx ends, and returns the
// error of a restart that failed.
func (b *Broker) Run(ctx context.Context, rnd *rand.Rand, s Schedule) error {
	return restarts(ctx, rnd, s, b.Restart)
}

// restarts calls restart on s's schedule until ctx ends or it fails, and
// returns its error.
func restarts(ctx context.Context, rnd *rand.Rand, s Schedule, restart func() error) error {
	var err error
	s.every(ctx, rnd, func() bool {
		err = restart()
		return err == nil
	})
	return err
}

// Shutdown stops the server.
func (b *Broker) Shutdown() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.srv != nil {
		b.srv.Shutdown()
		b.srv = nil
	}
}
