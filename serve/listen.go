package serve

import (
	"errors"
	"fmt"
	"net"
	"strings"
)

// ErrNoToken is matched by the error RequireToken returns for an address
// beyond loopback without a token.
var ErrNoToken = errors.New("serve: listening beyond loopback needs a token")

// IsLoopback reports whether addr (host:port, as net.Listen takes it)
// listens on loopback only: a loopback IP or "localhost". An empty host
// (":8080") listens on every interface, and a host name other than
// localhost may resolve to anything: neither is loopback.
func IsLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// RequireToken returns nil when serving on addr is safe: addr is loopback,
// or token is set. Otherwise an error matching ErrNoToken that names the
// address (never the token).
func RequireToken(addr, token string) error {
	if token != "" || IsLoopback(addr) {
		return nil
	}
	return fmt.Errorf("%w: %q is not a loopback address; set a token, or listen on 127.0.0.1", ErrNoToken, addr)
}
