package observe

import (
	"context"
	"errors"
	"net"
	"net/http"
	"time"

	"github.com/eoskit/eos/serve"
)

// Server serves a handler on a listener of its own.
type Server struct {
	srv  *http.Server
	ln   net.Listener
	done chan error
}

// Listen serves h on addr, refusing an address beyond loopback without a
// token (serve.RequireToken): the caller passes the token it gave h.
func Listen(addr, token string, h http.Handler) (*Server, error) {
	if err := serve.RequireToken(addr, token); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	s := &Server{ln: ln, done: make(chan error, 1),
		srv: &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: time.Minute}}
	go func() { s.done <- s.srv.Serve(ln) }()
	return s, nil
}

// URL is where the status page is.
func (s *Server) URL() string { return "http://" + s.ln.Addr().String() + "/" }

// Done receives, once, why the server stopped serving:
// http.ErrServerClosed after Close, or the listener's failure.
func (s *Server) Done() <-chan error { return s.done }

// Close stops the server: requests in flight get until ctx ends.
func (s *Server) Close(ctx context.Context) error {
	err := s.srv.Shutdown(ctx)
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		err = s.srv.Close()
	}
	return err
}
