package scenario_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/eoskit/eos/torture/scenario"
	"github.com/eoskit/eos/torture/worker"
)

// TestMain lets the test binary serve as the scenario's workers: a run
// starts its own executable with the hidden worker command, and under go
// test its own executable is this binary.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == worker.Command {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		err := worker.Serve(ctx, os.Stdin, os.Stderr)
		stop()
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestLossReportedWhenIdle steals an order from the consumer the order
// workers share (fetched and acknowledged, never applied): the run must
// end as soon as the pipeline is idle and report the loss, not wait for
// its timeout and call the run incomplete.
func TestLossReportedWhenIdle(t *testing.T) {
	skipShort(t)
	stolen := make(chan string, 1)
	o := scenario.Options{Dir: filepath.Join(t.TempDir(), "run"), Orders: 300, Workers: 2, Accounts: 100, Seed: 5,
		Timeout: 90 * time.Second, NoDuplicates: true, NoPoison: true, Stderr: testWriter{t}}
	o.OnStart = func(ctx context.Context, s *scenario.Scenario) {
		cons, err := s.JetStream().Consumer(ctx, s.Topology().OrdersStream, worker.OrdersDurable)
		if err != nil {
			t.Error(err)
			return
		}
		for ctx.Err() == nil {
			batch, err := cons.Fetch(1, jetstream.FetchMaxWait(time.Second))
			if err != nil {
				continue
			}
			for m := range batch.Messages() {
				if err := m.DoubleAck(ctx); err != nil {
					t.Error(err)
				}
				stolen <- m.Headers().Get(jetstream.MsgIDHeader)
				return
			}
		}
	}
	s, err := scenario.New(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	start := time.Now()
	r, err := s.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("run took %s: %+v", time.Since(start).Round(time.Millisecond), r)
	select {
	case id := <-stolen:
		t.Logf("stolen: %s", id)
	default:
		t.Fatal("nothing was stolen")
	}
	if r.Incomplete || r.OK || r.Lost != 1 || r.Applied != 299 {
		t.Errorf("incomplete %v (%s), ok %v, lost %d, applied %d; want a complete run with 1 lost and 299 applied",
			r.Incomplete, r.IncompleteReason, r.OK, r.Lost, r.Applied)
	}
	if !slices.ContainsFunc(r.Failures, func(f string) bool { return strings.Contains(f, "1 acknowledged orders lost") }) {
		t.Errorf("failures %q, want the loss", r.Failures)
	}
}

// skipShort skips a test that makes a whole run of worker processes when
// -short is set: CI's race step sets it, the README's test command (which
// runs these) does not. TestGathererMonotonicUnderKills, whose scrapes
// race the run, always runs.
func skipShort(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("a whole run of worker processes; run without -short")
	}
}

// A run's directories are 0700 and the files it creates 0600: they hold
// the workers' logs, the intent log and the provider's records. A second
// run replaces the first one's files; a directory no run made is refused.
func TestFilesArePrivate(t *testing.T) {
	root := filepath.Join(t.TempDir(), "torture")
	o := scenario.Options{Dir: filepath.Join(root, "run-1"), Orders: 10, Workers: 1, Accounts: 10, Timeout: time.Minute}
	for range 2 {
		s, err := scenario.New(context.Background(), o)
		if err != nil {
			t.Fatal(err)
		}
		for _, dir := range []string{root, s.Dir()} {
			if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
				t.Errorf("%s: %v, %v; want a 0700 directory", dir, fi.Mode(), err)
			}
		}
		for _, name := range []string{".eos-demo", scenario.WorkersLog, "intents.jsonl", "provider.db"} {
			fi, err := os.Stat(filepath.Join(s.Dir(), name))
			if err != nil {
				t.Errorf("%s: %v", name, err)
				continue
			}
			if fi.Mode().Perm() != 0o600 {
				t.Errorf("%s: mode %v, want 0600", name, fi.Mode().Perm())
			}
		}
		s.Close()
	}
	notOurs := t.TempDir()
	if err := os.WriteFile(filepath.Join(notOurs, "precious.txt"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	o.Dir = notOurs
	if _, err := scenario.New(context.Background(), o); err == nil || !strings.Contains(err.Error(), "was not made by eos demo") {
		t.Errorf("a foreign directory: %v", err)
	}
	if _, err := os.Stat(filepath.Join(notOurs, "precious.txt")); errors.Is(err, os.ErrNotExist) {
		t.Error("a foreign directory was emptied")
	}
}

// testWriter sends what the run writes to stderr to the test log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
