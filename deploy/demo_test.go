package deploy_test

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/eoskit/eos/internal/promtest"
	"github.com/eoskit/eos/internal/testenv"
	"github.com/eoskit/eos/torture/observe"
	"github.com/eoskit/eos/torture/scenario"
	"github.com/eoskit/eos/torture/worker"
)

// TestMain lets this test binary serve as the demo's workers: a scenario
// runs its own executable with the hidden worker command.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == worker.Command {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		err := worker.Serve(ctx, os.Stdin, os.Stderr)
		stop()
		if err != nil {
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestPrometheusScrapesDemo has a real Prometheus, loaded with eos's rule
// files, scrape a short chaos run of the payments demo served as eos demo
// --serve serves it (the observer over the run's store and broker, with
// the workers' metrics summed): every series reaches Prometheus, the rules
// evaluate, the SLIs the run produces are recorded, the duplicate
// counter's exemplars are stored, and no page-level alert fires on a
// correct run. The scrapes start during the run and go on after it, the
// run's store and broker still open, as with --serve-linger.
func TestPrometheusScrapesDemo(t *testing.T) {
	testenv.Tool(t, "prometheus") // before the run: skip (or fail) at once without it
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	s, err := scenario.New(ctx, scenario.Options{Dir: t.TempDir(), Orders: 3000, Workers: 2, Accounts: 200, Seed: 1,
		Chaos: true, Timeout: 3 * time.Minute,
		// Published over about 12 s: Prometheus, scraping every second,
		// sees the counters move (a rate needs two samples that differ).
		Rate: 250})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	obs, err := s.Observe(observe.Config{})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := observe.Listen("127.0.0.1:0", "", obs.Handler)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close(context.Background())
	type result struct {
		res *scenario.Result
		err error
	}
	done := make(chan result, 1)
	go func() {
		res, err := s.Run(ctx)
		done <- result{res, err}
	}()
	// Whatever the run produced by the first scrape: the checks wait for
	// the series the target announces, and the counters exist once the
	// workers took their first batch.
	prom := scrapeCheck{
		Target: strings.TrimSuffix(strings.TrimPrefix(srv.URL(), "http://"), "/"),
		Recorded: []string{
			"eos:inbox_applied:rate5m", "eos:inbox_messages:rate5m", "eos:end_to_end_seconds:p99_rate5m",
			"eos:relay_published:rate5m", "eos:outbox_oldest_unsent_seconds:max", "eos:duplicates_suppressed:rate5m",
			"eos:dead_lettered:rate5m", "eos:dedupe_store_errors:rate5m",
		},
		Exemplars: []string{"eos_duplicates_suppressed_total"},
	}.run(t)
	r := <-done
	if r.err != nil {
		t.Fatal(r.err)
	}
	if !r.res.OK {
		t.Errorf("the run failed its checks: %v (incomplete: %s)", r.res.Failures, r.res.IncompleteReason)
	}
	t.Logf("run: %d applied, %d kills, %d duplicates suppressed", r.res.Applied, r.res.Kills, r.res.DuplicatesSuppressed)
	checkReconciled(ctx, t, prom, obs)
}

// checkReconciled reconciles the finished run as eos demo --serve does
// (eos serve, on a schedule) and waits for Prometheus to see the
// reconciliation's SLIs at zero and the burn rates they feed recorded,
// with still no page-level alert.
func checkReconciled(ctx context.Context, t *testing.T, prom *promtest.Server, obs *observe.Observer) {
	t.Helper()
	reps, err := obs.Reconcile(ctx, observe.ReconcileConfig{PartialAfter: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range reps {
		if !r.OK() {
			t.Errorf("reconcile %s: %d findings: %+v", r.Consumer, r.Findings(), r)
		}
	}
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
