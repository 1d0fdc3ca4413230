// Package faultproxy is a TCP proxy that injects network faults between a
// client and a server: it listens on 127.0.0.1 and forwards every accepted
// connection to a target address, and on demand resets all current
// connections, delays every forwarded byte, or blackholes the link
// (connections are accepted but nothing is forwarded, and existing ones go
// silent, until it is lifted). eos torture puts one in front of PostgreSQL
// and one in front of NATS.
package faultproxy

import (
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Counts are the faults a proxy injected.
type Counts struct {
	Resets     int // Reset calls (each closes every current connection)
	Latency    int // SetLatency calls with a positive delay
	Blackholes int // Blackhole(true) calls that started a blackhole
}

// Total is the number of faults.
func (c Counts) Total() int { return c.Resets + c.Latency + c.Blackholes }

// Proxy forwards TCP connections from Addr to a target.
type Proxy struct {
	ln     net.Listener
	target string
	dial   func(network, addr string) (net.Conn, error)

	latency atomic.Int64 // nanoseconds added to every chunk forwarded

	mu     sync.Mutex
	gate   chan struct{} // closed while the link is open; open otherwise (blackhole)
	conns  map[*link]struct{}
	counts Counts
	closed bool

	wg     sync.WaitGroup
	onHold func()
}

// link is one proxied connection: the client's side and the server's.
type link struct {
	client net.Conn
	dead   chan struct{} // closed by close

	mu     sync.Mutex
	server net.Conn // nil until dialed
	closed bool
}

// setServer records the server's side; false if the link is closed.
func (l *link) setServer(s net.Conn) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return false
	}
	l.server = s
	return true
}

// close closes both sides; the peers see a reset (linger 0), not an
// orderly close.
func (l *link) close() {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return
	}
	l.closed = true
	close(l.dead)
	s := l.server
	l.mu.Unlock()
	for _, c := range []net.Conn{l.client, s} {
		if c == nil {
			continue
		}
		if tc, ok := c.(*net.TCPConn); ok {
			tc.SetLinger(0)
		}
		c.Close()
	}
}

// New starts a proxy on 127.0.0.1 (a free port) forwarding to target
// (host:port).
func New(target string) (*Proxy, error) { return newProxy(target, nil) }

// newProxy is New with a hook called whenever a connection or a chunk is
// held back by a blackhole (for tests).
func newProxy(target string, onHold func()) (*Proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	open := make(chan struct{})
	close(open)
	p := &Proxy{ln: ln, target: target, gate: open, onHold: onHold, conns: map[*link]struct{}{},
		dial: func(network, addr string) (net.Conn, error) { return net.DialTimeout(network, addr, 10*time.Second) }}
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

// Addr is the proxy's address (127.0.0.1:port).
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Target is the address the proxy forwards to.
func (p *Proxy) Target() string { return p.target }

// Counts returns the faults injected so far.
func (p *Proxy) Counts() Counts {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.counts
}

// Conns is the number of current connections.
func (p *Proxy) Conns() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.conns)
}

// Reset closes every current connection (both sides, with a TCP reset) and
// returns how many it closed. New connections are accepted as before.
func (p *Proxy) Reset() int {
	p.mu.Lock()
	links := make([]*link, 0, len(p.conns))
	for l := range p.conns {
		links = append(links, l)
	}
	p.counts.Resets++
	p.mu.Unlock()
	for _, l := range links {
		l.close()
	}
	return len(links)
}

// SetLatency delays every chunk forwarded from now on by d, in both
// directions (0: none).
func (p *Proxy) SetLatency(d time.Duration) {
	if d > 0 {
		p.mu.Lock()
		p.counts.Latency++
		p.mu.Unlock()
	}
	p.latency.Store(int64(max(d, 0)))
}

// Blackhole starts (on) or lifts (!on) a blackhole: while it lasts the
// proxy accepts connections but dials nothing and forwards nothing, and
// existing connections stay open and silent. What was sent meanwhile is
// delivered when it is lifted.
func (p *Proxy) Blackhole(on bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-p.gate: // open
		if on {
			p.gate = make(chan struct{})
			p.counts.Blackholes++
		}
	default: // blackholed
		if !on {
			close(p.gate)
		}
	}
}

// Heal lifts the blackhole and the latency.
func (p *Proxy) Heal() {
	p.Blackhole(false)
	p.latency.Store(0)
}

// Close stops accepting, closes every connection and waits for the
// proxy's goroutines.
func (p *Proxy) Close() error {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	err := p.ln.Close()
	p.Heal()
	p.mu.Lock()
	links := make([]*link, 0, len(p.conns))
	for l := range p.conns {
		links = append(links, l)
	}
	p.mu.Unlock()
	for _, l := range links {
		l.close()
	}
	p.wg.Wait()
	return err
}

// currentGate is the channel to wait on before forwarding.
func (p *Proxy) currentGate() chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.gate
}

// waitOpen waits until the link is not blackholed or done is closed; it
// reports whether the link is open.
func (p *Proxy) waitOpen(done <-chan struct{}) bool {
	for {
		g := p.currentGate()
		select {
		case <-g:
			return true
		default:
		}
		if p.onHold != nil {
			p.onHold()
		}
		select {
		case <-g:
			// A blackhole may have begun since: look again.
			if p.currentGate() == g {
				return true
			}
		case <-done:
			return false
		}
	}
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		l := &link{client: c, dead: make(chan struct{})}
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			c.Close()
			return
		}
		p.conns[l] = struct{}{}
		p.mu.Unlock()
		p.wg.Add(1)
		go p.serve(l)
	}
}

// serve dials the target once the link is open and forwards both ways
// until either side closes or the link is reset.
func (p *Proxy) serve(l *link) {
	defer p.wg.Done()
	defer func() {
		p.mu.Lock()
		delete(p.conns, l)
		p.mu.Unlock()
		l.close()
	}()
	// During a blackhole the connection is accepted and left waiting.
	if !p.waitOpen(l.dead) {
		return
	}
	s, err := p.dial("tcp", p.target)
	if err != nil {
		return
	}
	if !l.setServer(s) {
		s.Close()
		return
	}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); p.pipe(l, s, l.client) }()
	go func() { defer wg.Done(); p.pipe(l, l.client, s) }()
	wg.Wait()
}

type chunk struct {
	b  []byte
	at time.Time
}

// pipe forwards from src to dst: a reader puts chunks with their arrival
// time on a queue, the writer holds each until arrival+latency and while
// the link is blackholed.
func (p *Proxy) pipe(l *link, dst, src net.Conn) {
	q := make(chan chunk, 64)
	stop := make(chan struct{})
	go func() {
		defer close(q)
		for {
			b := make([]byte, 32<<10)
			n, err := src.Read(b)
			if n > 0 {
				select {
				case q <- chunk{b[:n], time.Now()}:
				case <-stop:
					return
				}
			}
			if err != nil {
				return
			}
		}
	}()
	defer func() {
		close(stop)
		l.close()
	}()
	for c := range q {
		if !p.waitOpen(l.dead) {
			return
		}
		if d := time.Duration(p.latency.Load()); d > 0 {
			if wait := time.Until(c.at.Add(d)); wait > 0 {
				t := time.NewTimer(wait)
				select {
				case <-t.C:
				case <-l.dead:
					t.Stop()
					return
				}
			}
		}
		if _, err := dst.Write(c.b); err != nil {
			return
		}
	}
}
