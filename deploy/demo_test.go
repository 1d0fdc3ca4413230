package deploy_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eoskit/eos/internal/promtest"
	"github.com/eoskit/eos/internal/testenv"
)

// TestPrometheusScrapesDemo has a real Prometheus, loaded with eos's rule
// files, scrape a short chaos run of eos demo --serve (the command, built
// for the test): every series reaches Prometheus, the rules evaluate, the
// SLIs the run produces are recorded, the duplicate counter's exemplars
// are stored, and no page-level alert fires on a correct run. Then, from
// the demo's report on (the demo reconciles the drained run before it),
// the reconciliation's SLIs are there at zero, and still no page fires;
// the demo keeps serving (--serve-linger) until the test interrupts it.
func TestPrometheusScrapesDemo(t *testing.T) {
	testenv.Tool(t, "prometheus") // before the run: skip (or fail) at once without it
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	demo := startDemo(ctx, t, "--orders", "3000", "--workers", "2", "--accounts", "200", "--seed", "1", "--chaos",
		// Published over about 12 s: Prometheus, scraping every second,
		// sees the counters move (a rate needs two samples that differ).
		"--rate", "250", "--timeout", "3m", "--serve", "127.0.0.1:0", "--serve-linger", "10m", "--json")
	prom := scrapeCheck{
		Target: demo.addr,
		Recorded: []string{
			"eos:inbox_applied:rate5m", "eos:inbox_messages:rate5m", "eos:end_to_end_seconds:p99_rate5m",
			"eos:relay_published:rate5m", "eos:outbox_oldest_unsent_seconds:max", "eos:duplicates_suppressed:rate5m",
			"eos:dead_lettered:rate5m", "eos:dedupe_store_errors:rate5m",
		},
		Exemplars: []string{"eos_duplicates_suppressed_total"},
	}.run(t)
	var rep struct {
		OK                   bool     `json:"ok"`
		Applied              int64    `json:"applied"`
		Kills                int      `json:"kills"`
		DuplicatesSuppressed int64    `json:"duplicates_suppressed"`
		Failures             []string `json:"failures"`
		IncompleteReason     string   `json:"incomplete_reason"`
	}
	if err := json.NewDecoder(demo.stdout).Decode(&rep); err != nil { // the report: the run has ended
		t.Fatalf("the demo's report: %v; stderr:\n%s", err, demo.stderr)
	}
	if !rep.OK {
		t.Errorf("the run failed its checks: %v (incomplete: %s)", rep.Failures, rep.IncompleteReason)
	}
	t.Logf("run: %d applied, %d kills, %d duplicates suppressed", rep.Applied, rep.Kills, rep.DuplicatesSuppressed)
	checkReconciled(ctx, t, prom)
	if code := demo.stop(); code != 0 {
		t.Errorf("eos demo exit %d after an interrupted linger, want 0; stderr:\n%s", code, demo.stderr)
	}
}

// demoProcess is a running eos demo --serve.
type demoProcess struct {
	addr   string    // host:port of its status endpoint
	stdout io.Reader // its report
	stderr *syncBuffer
	stop   func() int // interrupts it and returns its exit code
}

// startDemo builds the eos command and starts eos demo with args (which
// must hold --serve) in a directory of the test's, returning once it
// says where it serves.
func startDemo(ctx context.Context, t *testing.T, args ...string) *demoProcess {
	t.Helper()
	testenv.Tool(t, "go")
	bin := filepath.Join(t.TempDir(), "eos")
	if out, err := exec.CommandContext(ctx, "go", "build", "-o", bin, "github.com/eoskit/eos/cmd/eos").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	cmd := exec.CommandContext(ctx, bin, append([]string{"demo", "--dir", filepath.Join(t.TempDir(), "demo")}, args...)...)
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderrPipe, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	d := &demoProcess{stdout: stdout, stderr: &syncBuffer{}}
	found := make(chan string, 1)
	copied := make(chan struct{})
	go func() { // stderr to the buffer; the status page's address when it comes
		defer close(copied)
		sc := bufio.NewScanner(stderrPipe)
		for sc.Scan() {
			line := sc.Text()
			d.stderr.WriteLine(line)
			if _, url, ok := strings.Cut(line, "status page at "); ok {
				select {
				case found <- url:
				default:
				}
			}
		}
	}()
	var stopped bool
	d.stop = func() int {
		if !stopped {
			stopped = true
			cmd.Process.Signal(os.Interrupt)
			io.Copy(io.Discard, stdout)
			<-copied
			cmd.Wait()
		}
		return cmd.ProcessState.ExitCode()
	}
	t.Cleanup(func() { d.stop() })
	select {
	case url := <-found:
		d.addr = strings.TrimSuffix(strings.TrimPrefix(strings.TrimSpace(url), "http://"), "/")
	case <-copied:
		t.Fatalf("eos demo ended before serving; stderr:\n%s", d.stderr)
	case <-ctx.Done():
		t.Fatalf("eos demo did not say where it serves: %v; stderr:\n%s", ctx.Err(), d.stderr)
	}
	return d
}

// syncBuffer is a command's output, read while it is written.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) WriteLine(line string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.b.WriteString(line)
	s.b.WriteByte('\n')
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// checkReconciled waits for Prometheus to see the SLIs of the demo's
// reconciliation of its drained run at zero, and the burn rates they feed
// recorded, with still no page-level alert.
func checkReconciled(ctx context.Context, t *testing.T, prom *promtest.Server) {
	t.Helper()
	for _, expr := range []string{
		`eos_missed_apply_total{consumer="orders"}`, `eos_missed_apply_total{consumer="payments"}`,
		`eos_duplicate_effects_total{consumer="orders"}`, `eos_partial_commits_total{outbox="orders"}`,
		`eos:missed_applies:burn_rate5m{consumer="orders"}`, `eos:duplicate_effects:burn_rate5m{consumer="orders"}`,
	} {
		err := promtest.Eventually(ctx, func(ctx context.Context) error {
			got, err := prom.Query(ctx, expr)
			switch {
			case err != nil:
				return err
			case len(got) == 0:
				return fmt.Errorf("%w: %s has no sample", promtest.ErrNotYet, expr)
			case got[0].Value != 0:
				return fmt.Errorf("%s = %v on a correct run, want 0", expr, got[0].Value)
			}
			return nil
		})
		if err != nil {
			t.Error(err)
		}
	}
	checkNoPage(ctx, t, prom)
}
