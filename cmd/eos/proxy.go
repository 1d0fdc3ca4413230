package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/eoskit/eos/torture/faultproxy"
)

// namedProxy is a fault proxy in front of one service.
type namedProxy struct {
	name string // "postgres" or "nats"
	*faultproxy.Proxy
}

// proxiedServices lists what the proxy fault sits in front of: PostgreSQL
// (SQLite has no network) and NATS unless it speaks TLS (the workers would
// check the server's certificate against the proxy's address).
func proxiedServices(postgres, natsURL string) []string {
	var s []string
	if postgres != "" {
		s = append(s, "postgres")
	}
	if natsURL == "" || !strings.HasPrefix(natsURL, "tls:") {
		s = append(s, "nats")
	}
	return s
}

// withDefaultPort returns u's host:port, port def if u has none.
func withDefaultPort(u *url.URL, def string) string {
	if u.Port() != "" {
		return u.Host
	}
	return net.JoinHostPort(u.Hostname(), def)
}

// startProxies puts a fault proxy between the workers and each service of
// proxiedServices and points the workers' configuration at it. The demo's
// own connections (setup, progress, the checker) go straight to the
// services.
func (d *demo) startProxies() error {
	for _, name := range proxiedServices(d.opts.postgres, d.opts.natsURL) {
		raw := d.workerNATS
		def := "4222"
		if name == "postgres" {
			raw, def = d.workerStore.URL, "5432"
		}
		u, err := url.Parse(raw)
		if err != nil {
			return fmt.Errorf("proxy for %s: %w", name, err)
		}
		p, err := faultproxy.New(withDefaultPort(u, def))
		if err != nil {
			return fmt.Errorf("proxy for %s: %w", name, err)
		}
		d.proxies = append(d.proxies, namedProxy{name, p})
		u.Host = p.Addr()
		if name == "postgres" {
			d.workerStore.URL = u.String()
		} else {
			d.workerNATS = u.String()
		}
	}
	return nil
}

// proxyCounts sums the faults the proxies injected.
func (d *demo) proxyCounts() faultproxy.Counts {
	var c faultproxy.Counts
	for _, p := range d.proxies {
		n := p.Counts()
		c.Resets += n.Resets
		c.Latency += n.Latency
		c.Blackholes += n.Blackholes
	}
	return c
}

// Proxy fault schedule: the first fault comes early (short runs get one
// too), the next ones 0.5–2.5 s after the last one ended; latency and
// blackholes last 1–4 s.
const (
	proxyFirstFault = 200 * time.Millisecond
	proxyGapMin     = 500 * time.Millisecond
	proxyGapSpread  = 2 * time.Second
	proxyHoldMin    = time.Second
	proxyHoldSpread = 3 * time.Second
	proxyLatencyMax = 200 * time.Millisecond
)

// proxyFaults injects faults through a random proxy at random times
// (drawn from rnd) until ctx ends, and heals every proxy when it returns.
func (d *demo) proxyFaults(ctx context.Context, rnd *rand.Rand) {
	defer func() {
		for _, p := range d.proxies {
			p.Heal()
		}
	}()
	if len(d.proxies) == 0 {
		return
	}
	wait := proxyFirstFault + time.Duration(rnd.Int64N(int64(proxyFirstFault)))
	for {
		if sleepUntil(ctx, time.Now().Add(wait)) != nil {
			return
		}
		p := d.proxies[rnd.IntN(len(d.proxies))]
		hold := proxyHoldMin + time.Duration(rnd.Int64N(int64(proxyHoldSpread)))
		switch rnd.IntN(3) {
		case 0: // every current connection reset
			p.Reset()
		case 1: // slow network
			p.SetLatency(time.Millisecond + time.Duration(rnd.Int64N(int64(proxyLatencyMax))))
			err := sleepUntil(ctx, time.Now().Add(hold))
			p.SetLatency(0)
			if err != nil {
				return
			}
		case 2: // outage: the service is unreachable, connections hang
			p.Blackhole(true)
			err := sleepUntil(ctx, time.Now().Add(hold))
			p.Blackhole(false)
			if err != nil {
				return
			}
		}
		wait = proxyGapMin + time.Duration(rnd.Int64N(int64(proxyGapSpread)))
	}
}

// closeProxies closes the proxies and their connections.
func (d *demo) closeProxies() {
	for _, p := range d.proxies {
		p.Close()
	}
}

// producerJetStream is what the producer publishes with: the demo's own
// connection, or, when a fault proxy sits in front of NATS, a connection
// of its own through it, so that lost PubAcks and timeouts hit real
// publishes (the producer logs them as resends; see intentResend).
func (d *demo) producerJetStream() (jetstream.JetStream, error) {
	if !slices.ContainsFunc(d.proxies, func(p namedProxy) bool { return p.name == "nats" }) {
		return d.js, nil
	}
	if d.prodNC == nil {
		nc, err := nats.Connect(d.workerNATS, nats.Name("eos-demo-producer"), nats.MaxReconnects(-1),
			nats.ReconnectWait(100*time.Millisecond), nats.Timeout(5*time.Second), nats.IgnoreDiscoveredServers(),
			// The proxy's resets are the point: the publishes' errors
			// tell the producer, nats.go need not print them.
			nats.ErrorHandler(func(*nats.Conn, *nats.Subscription, error) {}))
		if err != nil {
			return nil, fmt.Errorf("producer: connect to NATS through the fault proxy: %w", err)
		}
		d.prodNC = nc
	}
	return jetstream.New(d.prodNC)
}
