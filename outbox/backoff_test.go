package outbox_test

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/eoskit/eos/internal/testdb"
	"github.com/eoskit/eos/outbox"
	"github.com/eoskit/eos/outbox/outboxtest"
)

// retryWaits records the retry_in of the relay's failure logs and ends the
// run after n of them.
type retryWaits struct {
	mu     sync.Mutex
	waits  []time.Duration
	n      int
	cancel context.CancelFunc
}

func (h *retryWaits) Enabled(context.Context, slog.Level) bool { return true }
func (h *retryWaits) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *retryWaits) WithGroup(string) slog.Handler            { return h }
func (h *retryWaits) Handle(_ context.Context, r slog.Record) error {
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "retry_in" {
			h.mu.Lock()
			defer h.mu.Unlock()
			h.waits = append(h.waits, a.Value.Duration())
			if len(h.waits) == h.n {
				h.cancel()
			}
		}
		return true
	})
	return nil
}

// The relay's waits after failures are jittered: drawn from [0, bound]
// with the bound doubling, not the bound itself, so that relays failing
// on one outage do not retry in lockstep.
func TestRelayBackoffJittered(t *testing.T) {
	e := testdb.SQLite(t)
	ob := newOutbox(t, e, outbox.Config{})
	enqueue(t, e, ob, true, msgs("m", 1)...)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	h := &retryWaits{n: 8, cancel: cancel}
	down := outboxtest.NewPublisher()
	down.Down(errors.New("connection refused"))
	r := newRelay(t, e, down, outbox.RelayConfig{RetryBackoff: time.Millisecond, MaxRetryBackoff: 4 * time.Millisecond, Logger: slog.New(h)})
	if err := r.Run(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Run: %v", err)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	bound, jittered := time.Millisecond, 0
	for i, w := range h.waits {
		if w < 0 || w > bound {
			t.Errorf("wait %d: %v outside [0, %v]", i+1, w, bound)
		}
		if w != bound {
			jittered++
		}
		bound = min(2*bound, 4*time.Millisecond)
	}
	if jittered < len(h.waits)/2 {
		t.Errorf("waits %v: only %d of %d drawn below their bound", h.waits, jittered, len(h.waits))
	}
}
