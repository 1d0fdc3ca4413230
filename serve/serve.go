package serve

import (
	"crypto/sha256"
	"crypto/subtle"
	"net/http"
	"net/url"
	"strings"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Handler serves eos's operator endpoints; see the package documentation.
// Safe for concurrent use.
type Handler struct {
	cfg     Config
	token   [sha256.Size]byte // of cfg.Token, compared in constant time
	metrics http.Handler
	slots   chan struct{} // one per request reading the store or the broker (Config.MaxConcurrent)
	routes  map[string]http.HandlerFunc
}

// New returns the handler cfg describes, or a *eos.ConfigError.
func New(cfg Config) (*Handler, error) {
	cfg, err := cfg.WithDefaults()
	if err != nil {
		return nil, err
	}
	h := &Handler{cfg: cfg, token: sha256.Sum256([]byte(cfg.Token)), slots: make(chan struct{}, cfg.MaxConcurrent)}
	h.metrics = promhttp.HandlerFor(cfg.Gatherer, promhttp.HandlerOpts{
		EnableOpenMetrics: true, // exemplars are exposed in OpenMetrics only
		ErrorHandling:     promhttp.ContinueOnError,
		ErrorLog:          promLogger{cfg.Logger},
	})
	h.routes = map[string]http.HandlerFunc{"/": h.page, "/status.json": h.statusJSON, "/metrics": h.metrics.ServeHTTP, "/readyz": h.readyz}
	return h, nil
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	path := r.URL.Path
	if path == "/healthz" {
		h.healthz(w, r)
		return
	}
	if !h.authorized(r) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="eos"`)
		http.Error(w, "unauthorized: send Authorization: Bearer <token>", http.StatusUnauthorized)
		return
	}
	if path == "" {
		// Mounted at a prefix without its slash (StripPrefix("/eos") and
		// a request for /eos): the page's relative links need the slash.
		http.Redirect(w, r, redirectTarget(r), http.StatusMovedPermanently)
		return
	}
	route, ok := h.routes[path]
	if !ok {
		http.NotFound(w, r)
		return
	}
	// Every other route reads the store or the broker: MaxConcurrent at
	// once, the others wait their turn.
	select {
	case h.slots <- struct{}{}:
		defer func() { <-h.slots }()
	case <-r.Context().Done():
		http.Error(w, "busy", http.StatusServiceUnavailable)
		return
	}
	route(w, r)
}

// redirectTarget is the request's own path with a slash added: the path
// as the client sent it (before any StripPrefix), which RequestURI keeps.
// It always starts with exactly one slash, so that it never names another
// host ("//host/…").
func redirectTarget(r *http.Request) string {
	var p, q string
	if u, err := url.ParseRequestURI(r.RequestURI); err == nil {
		p, q = u.EscapedPath(), u.RawQuery
	}
	target := "/" + strings.TrimLeft(p, "/")
	if !strings.HasSuffix(target, "/") {
		target += "/"
	}
	if q != "" {
		target += "?" + q
	}
	return target
}

// authorized reports whether r may see the endpoints: no token is set, or
// r carries it as a bearer token.
func (h *Handler) authorized(r *http.Request) bool {
	if h.cfg.Token == "" {
		return true
	}
	scheme, given, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return false
	}
	// Hashes of equal length: the comparison reveals neither the token's
	// length nor where the first difference lies.
	sum := sha256.Sum256([]byte(strings.TrimSpace(given)))
	return subtle.ConstantTimeCompare(sum[:], h.token[:]) == 1
}

func (h *Handler) healthz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Write([]byte("ok\n"))
}
