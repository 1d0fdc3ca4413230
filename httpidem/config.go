package httpidem

import (
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/eoskit/eos"
	"github.com/eoskit/eos/dedupe"
	"github.com/eoskit/eos/internal/config"
)

// Defaults of Config.
const (
	// DefaultLease is how long a claim holds a key before another request
	// may take it over; the middleware renews it while the handler runs.
	DefaultLease = time.Minute
	// MinLease is the shortest Config.Lease: renewed every third of it,
	// a shorter one would keep the store busy renewing.
	MinLease = 3 * time.Millisecond
	// DefaultMaxBody bounds the body read to fingerprint a request (1 MiB).
	DefaultMaxBody = 1 << 20
	// DefaultMaxResult bounds a stored response: the store's default
	// dedupe.DefaultMaxResultSize.
	DefaultMaxResult = dedupe.DefaultMaxResultSize
)

// DefaultMethods are the methods the middleware applies to: the draft's
// non-idempotent ones.
var DefaultMethods = []string{http.MethodPost, http.MethodPatch}

// alwaysStored are the response headers every stored response keeps.
var alwaysStored = []string{"Content-Type", "Location"}

// neverStored are refused in Policy.Headers: a replay must not hand one
// client's session to another request, nor repeat framing the server
// computes.
var neverStored = []string{"Set-Cookie", "Content-Length", "Transfer-Encoding", "Connection", "Idempotent-Replayed"}

// Config configures a Middleware. WithDefaults applies the defaults.
type Config struct {
	// Scope returns the namespace of the request's key: the tenant or
	// authenticated subject (and, if keys are per route, the route). Keys
	// of different scopes never meet, so one tenant can neither replay
	// nor block another's request. Required. An error answers the request
	// without running the handler: a *Problem as itself, any other as 500.
	Scope func(*http.Request) (string, error)
	// Route names the operation in the fingerprint. Default: the URL path.
	Route func(*http.Request) string
	// Methods the middleware applies to; others pass through. Default
	// DefaultMethods.
	Methods []string
	// Required answers a request without a key with 400 instead of
	// passing it through unprotected.
	Required bool
	// Lenient accepts unquoted keys besides the draft's quoted String.
	Lenient bool
	// Lease is how long a claim holds the key; it is renewed every third
	// of it while the handler runs. Default DefaultLease.
	Lease time.Duration
	// Wait is how long a request whose key is held by a running request
	// waits for that one to finish (then gets its response replayed)
	// before it is answered 409. Default 0: 409 at once.
	Wait time.Duration
	// FingerprintHeaders are request headers hashed into the fingerprint
	// besides method, route and body (e.g. a version header whose value
	// changes what the request means).
	FingerprintHeaders []string
	// MaxBody bounds the request body read to fingerprint it; a larger body
	// is answered 413. Default DefaultMaxBody.
	MaxBody int64
	// MaxResult bounds an encoded stored response; set it to the store's
	// dedupe.Config.MaxResultSize. A larger response is sent but not
	// stored (the key is released, so a retry runs the handler again), or,
	// with NewTx, rolled back. Default DefaultMaxResult.
	MaxResult int
	// Policy decides which responses are stored and what of them.
	Policy Policy
	// Hooks observe each request's outcome (metrics.HTTPIdemHook feeds
	// Prometheus from them).
	Hooks []Hook
	// Logger, default slog.Default().
	Logger *slog.Logger
	// Test holds failpoints: "httpidem.before_complete" (the process dies
	// after the handler, before the response is stored: the key stays
	// claimed until its lease expires).
	Test eos.TestConfig
}

// Policy decides what of a response is kept for retries.
type Policy struct {
	// Store reports whether a response with this status is stored and
	// replayed to retries. When it is not, the key is released and a
	// retry runs the handler again. Default StoreStatus.
	Store func(status int) bool
	// Headers are response headers stored besides Content-Type and
	// Location. Set-Cookie and framing headers are refused.
	Headers []string
}

// StoreStatus is the default Policy.Store: every status but 5xx and 429.
// A server error or a rate limit says "not done, try again", so the
// key is released and the retry does the work; anything else is the
// request's answer.
func StoreStatus(status int) bool {
	return status < 500 && status != http.StatusTooManyRequests
}

// WithDefaults returns a copy of c with the defaults applied, or a
// *eos.ConfigError naming the first invalid field.
func (c Config) WithDefaults() (Config, error) {
	if c.Scope == nil {
		return c, &eos.ConfigError{Field: "httpidem.Config.Scope", Reason: "required: keys must be scoped (tenant, subject, route)"}
	}
	if c.Route == nil {
		c.Route = func(r *http.Request) string { return r.URL.Path }
	}
	if len(c.Methods) == 0 {
		c.Methods = DefaultMethods
	}
	c.Methods = slices.Clone(c.Methods)
	for i, m := range c.Methods {
		c.Methods[i] = strings.ToUpper(m)
	}
	if err := config.Durations("httpidem.Config.",
		config.DurationField{Name: "Lease", P: &c.Lease, Default: DefaultLease},
		config.DurationField{Name: "Wait", P: &c.Wait},
	); err != nil {
		return c, err
	}
	if c.Lease < MinLease {
		return c, &eos.ConfigError{Field: "httpidem.Config.Lease", Reason: fmt.Sprintf("%v, want at least %v", c.Lease, MinLease)}
	}
	switch {
	case c.MaxBody < 0:
		return c, &eos.ConfigError{Field: "httpidem.Config.MaxBody", Reason: fmt.Sprintf("negative (%d)", c.MaxBody)}
	case c.MaxBody == 0:
		c.MaxBody = DefaultMaxBody
	}
	if err := config.Int("httpidem.Config.MaxResult", &c.MaxResult, DefaultMaxResult, 64<<20); err != nil {
		return c, err
	}
	if c.Policy.Store == nil {
		c.Policy.Store = StoreStatus
	}
	headers := slices.Clone(alwaysStored)
	for _, h := range c.Policy.Headers {
		h = http.CanonicalHeaderKey(h)
		if slices.Contains(neverStored, h) {
			return c, &eos.ConfigError{Field: "httpidem.Config.Policy.Headers", Reason: h + " is never stored"}
		}
		if !slices.Contains(headers, h) {
			headers = append(headers, h)
		}
	}
	c.Policy.Headers = headers
	c.FingerprintHeaders = slices.Clone(c.FingerprintHeaders)
	if err := checkHooks(c.Hooks); err != nil {
		return c, &eos.ConfigError{Field: "httpidem.Config.Hooks", Reason: err.Error()}
	}
	c.Hooks = slices.Clone(c.Hooks)
	c.Logger = config.Logger(c.Logger)
	c.Test = c.Test.WithDefaults()
	return c, nil
}
