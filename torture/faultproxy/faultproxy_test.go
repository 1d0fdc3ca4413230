package faultproxy

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"sync/atomic"
	"testing"
	"time"
)

// bound is the failure bound of every wait: nothing here should take long.
const bound = 10 * time.Second

// echoServer echoes every connection; it reports each accepted connection
// on accepted, every chunk it receives on got and each connection's end
// on ended. While sealed is set it counts in leaks each connection and
// chunk that reaches it.
type echoServer struct {
	ln       net.Listener
	accepted chan struct{}
	got      chan []byte
	ended    chan error
	sealed   atomic.Bool
	leaks    atomic.Int32
}

func startEcho(t *testing.T) *echoServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e := &echoServer{ln: ln, accepted: make(chan struct{}, 16), got: make(chan []byte, 64), ended: make(chan error, 16)}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			if e.sealed.Load() {
				e.leaks.Add(1)
			}
			e.accepted <- struct{}{}
			go func() {
				defer c.Close()
				b := make([]byte, 4096)
				for {
					n, err := c.Read(b)
					if n > 0 {
						if e.sealed.Load() {
							e.leaks.Add(1)
						}
						select { // reported while there is room (the 1 MB test overflows it)
						case e.got <- bytes.Clone(b[:n]):
						default:
						}
						if _, werr := c.Write(b[:n]); werr != nil {
							e.ended <- werr
							return
						}
					}
					if err != nil {
						e.ended <- err
						return
					}
				}
			}()
		}
	}()
	return e
}

func newTestProxy(t *testing.T, target string, onHold func()) *Proxy {
	t.Helper()
	p, err := newProxy(target, onHold)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

func dial(t *testing.T, p *Proxy) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", p.Addr(), bound)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(bound))
	return c
}

// roundTrip writes msg and reads it back.
func roundTrip(t *testing.T, c net.Conn, msg string) {
	t.Helper()
	if _, err := c.Write([]byte(msg)); err != nil {
		t.Fatalf("write: %v", err)
	}
	b := make([]byte, len(msg))
	if _, err := io.ReadFull(c, b); err != nil {
		t.Fatalf("read: %v", err)
	}
	if string(b) != msg {
		t.Fatalf("read %q, want %q", b, msg)
	}
}

func recv[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(bound):
		t.Fatalf("no %s within %s", what, bound)
	}
	var zero T
	return zero
}

func TestForwards(t *testing.T) {
	e := startEcho(t)
	p := newTestProxy(t, e.ln.Addr().String(), nil)
	c1, c2 := dial(t, p), dial(t, p)
	roundTrip(t, c1, "hello")
	roundTrip(t, c2, "world")
	big := bytes.Repeat([]byte("0123456789"), 100_000) // 1 MB, several chunks
	go c1.Write(big)
	back := make([]byte, len(big))
	if _, err := io.ReadFull(c1, back); err != nil || !bytes.Equal(back, big) {
		t.Fatalf("1 MB round trip: err %v, equal %v", err, bytes.Equal(back, big))
	}
	if n := p.Conns(); n != 2 {
		t.Errorf("Conns = %d, want 2", n)
	}
	if got := p.Counts(); got.Total() != 0 {
		t.Errorf("counts %+v, want none", got)
	}
}

func TestResetClosesConnections(t *testing.T) {
	e := startEcho(t)
	p := newTestProxy(t, e.ln.Addr().String(), nil)
	c1, c2 := dial(t, p), dial(t, p)
	roundTrip(t, c1, "a")
	roundTrip(t, c2, "b")
	if n := p.Reset(); n != 2 {
		t.Fatalf("Reset closed %d connections, want 2", n)
	}
	for _, c := range []net.Conn{c1, c2} {
		_, err := c.Read(make([]byte, 1))
		if err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("client read after reset: %v, want a closed connection", err)
		}
	}
	// Both server sides ended too.
	recv(t, e.ended, "server side end")
	recv(t, e.ended, "server side end")
	if got := p.Counts(); got.Resets != 1 || got.Total() != 1 {
		t.Errorf("counts %+v, want one reset", got)
	}
	// New connections work.
	roundTrip(t, dial(t, p), "again")
}

func TestBlackholeStopsBytesAndResumes(t *testing.T) {
	e := startEcho(t)
	held := make(chan struct{}, 16)
	p := newTestProxy(t, e.ln.Addr().String(), func() { held <- struct{}{} })
	c := dial(t, p)
	roundTrip(t, c, "before")
	recv(t, e.accepted, "accept")
	recv(t, e.got, "chunk")

	// Nothing may reach the server until the blackhole is lifted; the
	// server counts what does.
	e.sealed.Store(true)
	p.Blackhole(true)
	p.Blackhole(true) // already on: not a second fault
	if _, err := c.Write([]byte("during")); err != nil {
		t.Fatal(err)
	}
	recv(t, held, "chunk held by the blackhole")
	// A new connection is accepted but not forwarded.
	c2 := dial(t, p)
	recv(t, held, "connection held by the blackhole")
	// A hold reported is not yet a hold kept: a proxy could report it and
	// forward anyway a moment later. Restarted, the blackhole wakes every
	// holder; each must hold again, which it can only do if it was still
	// waiting, its chunk or connection not forwarded.
	restartBlackhole(p)
	recv(t, held, "chunk or connection held again after a restart")
	recv(t, held, "chunk or connection held again after a restart")

	e.sealed.Store(false)
	p.Blackhole(false)
	b := make([]byte, len("during"))
	if _, err := io.ReadFull(c, b); err != nil || string(b) != "during" {
		t.Fatalf("after the blackhole: read %q, %v", b, err)
	}
	roundTrip(t, c2, "new")
	// Both reached the server (c read its echo, c2 its own): every leak
	// would have been counted by now.
	if n := e.leaks.Load(); n != 0 {
		t.Errorf("%d connections or chunks reached the server during the blackhole", n)
	}
	if got := p.Counts(); got.Blackholes != 1 || got.Total() != 1 {
		t.Errorf("counts %+v, want one blackhole", got)
	}
}

// restartBlackhole ends the blackhole and begins another in one step, which
// no caller of Blackhole can do: every goroutine waiting for the link to
// open wakes, finds a new blackhole and reports holding again.
func restartBlackhole(p *Proxy) {
	p.mu.Lock()
	defer p.mu.Unlock()
	close(p.gate)
	p.gate = make(chan struct{})
}

func TestBlackholedConnectionIsReset(t *testing.T) {
	e := startEcho(t)
	held := make(chan struct{}, 16)
	p := newTestProxy(t, e.ln.Addr().String(), func() { held <- struct{}{} })
	p.Blackhole(true)
	c := dial(t, p)
	recv(t, held, "connection held by the blackhole")
	if n := p.Reset(); n != 1 {
		t.Fatalf("Reset closed %d, want 1", n)
	}
	if _, err := c.Read(make([]byte, 1)); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read after reset: %v", err)
	}
}

func TestLatencyAddsDelay(t *testing.T) {
	e := startEcho(t)
	p := newTestProxy(t, e.ln.Addr().String(), nil)
	c := dial(t, p)
	roundTrip(t, c, "warm")
	const d = 150 * time.Millisecond
	p.SetLatency(d)
	start := time.Now()
	roundTrip(t, c, "slow")
	// A floor the proxy guarantees (it holds each chunk d), not a speed.
	if rtt := time.Since(start); rtt < 2*d {
		t.Errorf("round trip with %s each way took %s, want at least %s", d, rtt, 2*d)
	}
	// Lifted latency is lifted for what is sent next: after an hour's
	// latency is set and lifted, a round trip completes within the
	// connection's deadline (bound) instead of waiting the hour.
	p.SetLatency(time.Hour)
	p.SetLatency(0)
	roundTrip(t, c, "fast")
	if got := p.Counts(); got.Latency != 2 || got.Total() != 2 {
		t.Errorf("counts %+v, want two latencies", got)
	}
}

func TestCloseEndsEverything(t *testing.T) {
	e := startEcho(t)
	p, err := New(e.ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c := dial(t, p)
	roundTrip(t, c, "x")
	p.Blackhole(true)
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Read(make([]byte, 1)); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read after Close: %v", err)
	}
	if _, err := net.DialTimeout("tcp", p.Addr(), bound); err == nil {
		t.Error("dial after Close succeeded")
	}
}
