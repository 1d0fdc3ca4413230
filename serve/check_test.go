package serve_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

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
