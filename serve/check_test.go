package serve_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/eoskit/eos/inbox"
	"github.com/eoskit/eos/metrics"
	"github.com/eoskit/eos/serve"
	"github.com/eoskit/eos/service"
)

type blockingRunner struct{}

func (blockingRunner) Run(ctx context.Context) error {
	<-ctx.Done()
	return nil
}

// TestServiceCheck follows a real service through its states: ready only
// while it runs unpaused.
func TestServiceCheck(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	svc, err := service.New(service.Config{Runners: []service.Runner{blockingRunner{}}})
	if err != nil {
		t.Fatal(err)
	}
	check := serve.ServiceCheck(svc)
	expect := func(step, state string) {
		t.Helper()
		err := check(ctx)
		switch {
		case state == "" && err != nil:
			t.Errorf("%s: %v, want ready", step, err)
		case state != "" && (!errors.Is(err, serve.ErrNotReady) || !strings.Contains(err.Error(), state)):
			t.Errorf("%s: %v, want ErrNotReady naming %q", step, err, state)
		}
	}
	expect("before Start", "stopped")
	if err := svc.Start(ctx); err != nil {
		t.Fatal(err)
	}
	expect("started", "")
	svc.Pause()
	expect("paused", "paused")
	svc.Resume()
	expect("resumed", "")
	if err := svc.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	expect("stopped", "stopped")
}

// TestMaxConcurrent: with one slot taken by a request stuck in a check,
// another request waits its turn, and gives up with 503 when it ends
// first; /healthz needs no slot.
func TestMaxConcurrent(t *testing.T) {
	entered, release := make(chan struct{}, 2), make(chan struct{})
	h := newHandler(t, serve.Config{Gatherer: prometheus.NewRegistry(), MaxConcurrent: 1, CheckTimeout: time.Minute,
		Checks: []serve.Check{{Name: "slow", Func: func(context.Context) error {
			entered <- struct{}{}
			<-release
			return nil
		}}}})
	first := make(chan int, 1)
	go func() {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/readyz", nil))
		first <- w.Code
	}()
	<-entered
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/status.json", nil).WithContext(ctx))
	if w.Code != http.StatusServiceUnavailable {
		t.Errorf("second request while the slot is taken: %d, want 503", w.Code)
	}
	if res := get(t, h, "/healthz", ""); res.StatusCode != http.StatusOK {
		t.Errorf("/healthz while the slot is taken: %d", res.StatusCode)
	}
	close(release)
	if code := <-first; code != http.StatusOK {
		t.Errorf("first request: %d", code)
	}
	if len(entered) != 0 {
		t.Error("the waiting request ran the check")
	}
}

// TestStalledCheck reads eos_inbox_stalled as metrics.WatchInbox exports
// it: ready while no processor is stalled.
func TestStalledCheck(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := metrics.New(reg, metrics.Config{})
	if err != nil {
		t.Fatal(err)
	}
	var a inbox.Activity
	if err := m.WatchInbox("orders", func() inbox.Activity { return a }); err != nil {
		t.Fatal(err)
	}
	check := serve.StalledCheck(reg)
	if err := check(context.Background()); err != nil {
		t.Errorf("nothing stalled: %v", err)
	}
	a.Stalled = 1
	if err := check(context.Background()); !errors.Is(err, serve.ErrNotReady) || !strings.Contains(err.Error(), "orders") {
		t.Errorf("orders stalled: %v, want ErrNotReady naming orders", err)
	}
}
