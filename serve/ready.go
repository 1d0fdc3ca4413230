package serve

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/eoskit/eos/internal/redact"
	"github.com/eoskit/eos/internal/storable"
	"github.com/eoskit/eos/service"
)

// ErrNotReady is matched by the error of ServiceCheck for a service that
// is not running, or is stalled on its store.
var ErrNotReady = errors.New("serve: service not ready")

// ServiceCheck returns a readiness check of an eos service: ready when it
// is Running (every part runs and no inbox is stalled on its store).
// Otherwise its error matches ErrNotReady and names the state, the
// stalled consumers and the last store error.
func ServiceCheck(svc interface{ Health() service.Health }) CheckFunc {
	return func(context.Context) error {
		h := svc.Health()
		if h.Ready() {
			return nil
		}
		msg := h.State.String()
		if len(h.Stalled) > 0 {
			msg += fmt.Sprintf(" (consumers %q)", h.Stalled)
		}
		if h.Err != nil {
			return fmt.Errorf("%w: %s: %w", ErrNotReady, msg, h.Err)
		}
		return fmt.Errorf("%w: %s", ErrNotReady, msg)
	}
}

// StalledCheck returns a readiness check over the metrics g gathers: not
// ready while eos_inbox_stalled is above 0 for a consumer (a processor
// retrying a batch after a store failure; metrics.Metrics.WatchInbox
// exports it), the error naming those consumers and matching ErrNotReady.
// For a process that watches inboxes running elsewhere; in the process
// that runs them, ServiceCheck reads the same without gathering. A Gather
// that fails is not ready either.
func StalledCheck(g prometheus.Gatherer) CheckFunc {
	return func(context.Context) error {
		mfs, err := g.Gather()
		if err != nil {
			return err
		}
		fams := families(mfs)
		var stalled []string
		for _, c := range fams.labelValues("consumer", "eos_inbox_stalled") {
			if v := fams.sum("eos_inbox_stalled", map[string]string{"consumer": c}); v != nil && *v > 0 {
				stalled = append(stalled, fmt.Sprintf("%s (%g processes)", c, *v))
			}
		}
		if len(stalled) > 0 {
			return fmt.Errorf("%w: stalled on the store: %s", ErrNotReady, strings.Join(stalled, ", "))
		}
		return nil
	}
}

// maxErrorText bounds the error text of a check or a read shown to a
// client.
const maxErrorText = 512

// CheckResult is the outcome of one readiness check.
type CheckResult struct {
	Name  string `json:"name"`
	OK    bool   `json:"ok"`
	Error string `json:"error,omitempty"` // sanitized and bounded
}

// Readiness is what /readyz answers.
type Readiness struct {
	Ready  bool          `json:"ready"`
	Checks []CheckResult `json:"checks"`
}

// readiness runs every check at once, each within CheckTimeout.
func (h *Handler) readiness(ctx context.Context) Readiness {
	out := Readiness{Ready: true, Checks: make([]CheckResult, len(h.cfg.Checks))}
	var wg sync.WaitGroup
	for i, c := range h.cfg.Checks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cctx, cancel := context.WithTimeout(ctx, h.cfg.CheckTimeout)
			defer cancel()
			err := runCheck(cctx, c.Func)
			out.Checks[i] = CheckResult{Name: c.Name, OK: err == nil}
			if err != nil {
				out.Checks[i].Error = sanitize(err.Error(), maxErrorText)
			}
		}()
	}
	wg.Wait()
	for _, c := range out.Checks {
		out.Ready = out.Ready && c.OK
	}
	return out
}

// runCheck runs f, and returns ctx's error when f outlasts ctx: a check
// that ignores its context fails at the timeout rather than holding the
// probe.
func runCheck(ctx context.Context, f CheckFunc) error {
	done := make(chan error, 1)
	go func() {
		defer func() {
			if p := recover(); p != nil {
				done <- fmt.Errorf("check panicked: %v", p)
			}
		}()
		done <- f(ctx)
	}()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return fmt.Errorf("no answer within the timeout: %w", ctx.Err())
	}
}

func (h *Handler) readyz(w http.ResponseWriter, r *http.Request) {
	rd := h.readiness(r.Context())
	code := http.StatusOK
	if !rd.Ready {
		code = http.StatusServiceUnavailable
	}
	writeJSON(w, code, rd)
}

// writeJSON answers v as JSON with code.
func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

// sanitize makes outside text fit to show: secrets masked, valid UTF-8
// without NUL, at most max bytes.
func sanitize(s string, max int) string { return storable.Text(redact.Text(s), max) }

// promLogger passes promhttp's errors (a collector that failed) to slog.
type promLogger struct{ log *slog.Logger }

func (l promLogger) Println(v ...any) {
	l.log.Warn("serve: gathering metrics", "error", sanitize(fmt.Sprint(v...), maxErrorText))
}
