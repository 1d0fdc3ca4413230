package faults

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"net/url"
	"time"

	"github.com/eoskit/eos/internal/ctxtime"
	"github.com/eoskit/eos/torture/faultproxy"
)

// ProxySchedule is the default of Proxies.Run: the first fault comes early
// (short runs get one too), the next ones 0.5–2.5 s after the last one
// ended; latency and blackholes last 1–4 s.
func ProxySchedule() Schedule {
	return Schedule{
		First: Span{200 * time.Millisecond, 200 * time.Millisecond},
		Gap:   Span{500 * time.Millisecond, 2 * time.Second},
		Hold:  Span{time.Second, 3 * time.Second},
	}
}

// maxLatency bounds the latency a proxy adds.
const maxLatency = 200 * time.Millisecond

// Proxies are fault proxies in front of named services.
type Proxies struct {
	list  []*faultproxy.Proxy
	names []string
}

// Front puts a proxy in front of the service at rawURL (a URL whose host
// has port defaultPort when it names none) and returns the URL that goes
// through it.
func (p *Proxies) Front(name, rawURL, defaultPort string) (string, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return "", fmt.Errorf("proxy for %s: %w", name, err)
	}
	target := u.Host
	if u.Port() == "" {
		target = net.JoinHostPort(u.Hostname(), defaultPort)
	}
	px, err := faultproxy.New(target)
	if err != nil {
		return "", fmt.Errorf("proxy for %s: %w", name, err)
	}
	p.list, p.names = append(p.list, px), append(p.names, name)
	u.Host = px.Addr()
	return u.String(), nil
}

// Fronts reports whether a proxy sits in front of service name.
func (p *Proxies) Fronts(name string) bool {
	for _, n := range p.names {
		if n == name {
			return true
		}
	}
	return false
}

// Counts sums the faults the proxies injected.
func (p *Proxies) Counts() faultproxy.Counts {
	var c faultproxy.Counts
	for _, px := range p.list {
		n := px.Counts()
		c.Resets += n.Resets
		c.Latency += n.Latency
		c.Blackholes += n.Blackholes
	}
	return c
}

// Run injects faults through a proxy drawn from rnd on s's schedule until
// ctx ends, and heals every proxy when it returns.
func (p *Proxies) Run(ctx context.Context, rnd *rand.Rand, s Schedule) {
	defer func() {
		for _, px := range p.list {
			px.Heal()
		}
	}()
	if len(p.list) == 0 {
		return
	}
	s.every(ctx, rnd, func() bool { return p.strike(ctx, rnd, s.Hold) })
}

// strike injects one fault through a proxy drawn from rnd, waiting out a
// fault that lasts; false if ctx ended meanwhile.
func (p *Proxies) strike(ctx context.Context, rnd *rand.Rand, hold Span) bool {
	px := p.list[rnd.IntN(len(p.list))]
	d := hold.draw(rnd)
	switch rnd.IntN(3) {
	case 0: // every current connection reset
		px.Reset()
		return true
	case 1: // slow network
		px.SetLatency(time.Millisecond + time.Duration(rnd.Int64N(int64(maxLatency))))
		defer px.SetLatency(0)
	default: // outage: the service is unreachable, connections hang
		px.Blackhole(true)
		defer px.Blackhole(false)
	}
	return ctxtime.Sleep(ctx, d)
}

// Close closes the proxies and their connections.
func (p *Proxies) Close() {
	for _, px := range p.list {
		px.Close()
	}
}
