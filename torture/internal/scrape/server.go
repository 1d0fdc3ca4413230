package scrape

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// pathPrefix starts the path a Server serves on; a random token follows,
// so that a scrape reaching another process that took over a dead
// worker's port finds nothing there rather than that process's metrics.
const pathPrefix = "/metrics/"

// tokenBytes is the size of that token.
const tokenBytes = 16

// Server serves one worker's registry on loopback for a Pool.
type Server struct {
	srv  *http.Server
	addr string
}

// Listen serves g on 127.0.0.1, on a port the system picks.
func Listen(g prometheus.Gatherer) (*Server, error) {
	var token [tokenBytes]byte
	rand.Read(token[:])
	path := pathPrefix + hex.EncodeToString(token[:])
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET "+path, promhttp.HandlerFor(g, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError}))
	s := &Server{srv: &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}, addr: ln.Addr().String() + path}
	go s.srv.Serve(ln)
	return s, nil
}

// Addr is what the worker announces (host:port/path), for Pool.Announce.
func (s *Server) Addr() string { return s.addr }

// Close stops serving.
func (s *Server) Close() error { return s.srv.Close() }

// errAddr is wrapped by the errors of parseAddr.
var errAddr = errors.New("invalid worker metrics address")

// parseAddr checks an announced address (a loopback IP, a port, the
// path of a Server) and returns the URL to scrape.
func parseAddr(addr string) (string, error) {
	hostPort, path, _ := strings.Cut(addr, "/")
	host, port, err := net.SplitHostPort(hostPort)
	if err != nil {
		return "", fmt.Errorf("%w: %q", errAddr, trim(addr))
	}
	ip := net.ParseIP(host)
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 || ip == nil || !ip.IsLoopback() {
		return "", fmt.Errorf("%w: %q is not a loopback address", errAddr, trim(addr))
	}
	token, ok := strings.CutPrefix("/"+path, pathPrefix)
	if raw, err := hex.DecodeString(token); !ok || err != nil || len(raw) != tokenBytes {
		return "", fmt.Errorf("%w: %q", errAddr, trim(addr))
	}
	return "http://" + net.JoinHostPort(ip.String(), port) + pathPrefix + token, nil
}

// trim bounds what an error quotes of an announcement.
func trim(s string) string {
	if len(s) > 100 {
		return s[:100] + "…"
	}
	return s
}
