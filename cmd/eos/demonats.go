package main

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/eoskit/eos/internal/redact"
	"github.com/eoskit/eos/torture/scenario"
	"github.com/eoskit/eos/transport/natsjs/natsembed"
)

// openDemoNATS connects a command (name, e.g. "eos-serve") to a demo's
// broker: natsURL when set; else the live run's embedded server in dir,
// whose address the run keeps in DIR/nats.url (never a second server over
// the files of a running one); else an embedded server started over the
// ended run's files. embedded says whether the demo ran on its embedded
// server (its topology is scenario.EmbeddedTopology). closeAll releases
// what it opened.
func openDemoNATS(name, natsURL, dir string) (js jetstream.JetStream, embedded bool, closeAll func(), err error) {
	var closers []func()
	closeAll = func() {
		for i := len(closers) - 1; i >= 0; i-- {
			closers[i]()
		}
	}
	defer func() {
		if err != nil {
			closeAll()
		}
	}()
	connect := func(url string) (*nats.Conn, error) {
		return nats.Connect(url, nats.Name(name), nats.MaxReconnects(-1), nats.Timeout(5*time.Second))
	}
	var nc *nats.Conn
	if natsURL != "" {
		if nc, err = connect(natsURL); err != nil {
			return nil, false, closeAll, fmt.Errorf("cannot connect to NATS at %s: %w", redact.URL(natsURL), err)
		}
	} else if live, lerr := liveBrokerURL(dir); lerr != nil {
		return nil, true, closeAll, lerr
	} else if live != "" {
		if nc, err = connect(live); err != nil {
			return nil, true, closeAll, fmt.Errorf("the demo in %s looks live (%s) but its NATS server does not answer "+
				"(a killed run leaves that file: remove it to read the run's files): %w", dir, scenario.BrokerURLFile(dir), err)
		}
	} else {
		files := filepath.Join(dir, scenario.NATSDir)
		if _, kerr := os.Stat(filepath.Join(dir, scenario.KafkaDir)); kerr == nil {
			return nil, true, closeAll, fmt.Errorf("--dir %s: a run on Kafka; this command reads runs on NATS only "+
				"(eos demo --transport kafka --serve serves a run on Kafka while it runs)", dir)
		}
		if _, err = os.Stat(files); err != nil {
			return nil, true, closeAll, fmt.Errorf("--dir %s: no embedded NATS files: %w", dir, err)
		}
		srv, serr := natsembed.Start(natsembed.Config{Dir: files})
		if serr != nil {
			return nil, true, closeAll, fmt.Errorf("start the embedded NATS server over %s: %w", files, serr)
		}
		closers = append(closers, srv.Shutdown)
		if nc, err = srv.Connect(); err != nil {
			return nil, true, closeAll, err
		}
	}
	closers = append(closers, nc.Close)
	js, err = jetstream.New(nc)
	return js, natsURL == "", closeAll, err
}

// liveBrokerURL returns the client URL of the embedded NATS server of a
// live run in dir, or "" when none is live.
func liveBrokerURL(dir string) (string, error) {
	b, err := os.ReadFile(scenario.BrokerURLFile(dir))
	if errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("--dir: %w", err)
	}
	u := strings.TrimSpace(string(b))
	if pu, err := url.Parse(u); err != nil || pu.Scheme != "nats" || len(u) > 256 {
		return "", fmt.Errorf("--dir: %s does not hold a NATS URL", scenario.BrokerURLFile(dir))
	}
	return u, nil
}
