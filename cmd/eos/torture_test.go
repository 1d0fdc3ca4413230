package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/eoskit/eos/internal/testenv"
	"github.com/eoskit/eos/torture/check"
	"github.com/eoskit/eos/torture/faults"
	"github.com/eoskit/eos/torture/scenario"
)

// runTortureJSON runs eos torture with --json and returns its result.
func runTortureJSON(t *testing.T, args ...string) tortureResult {
	t.Helper()
	var res tortureResult
	// A run ends when the pipeline is idle; the bound only stops a stuck
	// one. It is generous: a loaded machine (load 5 on 2 vCPUs) needed over
	// 60 s for 1,500 events with every fault, all applied in the end.
	dir := filepath.Join(t.TempDir(), "torture")
	args = append([]string{"torture", "--timeout", "150s", "--dir", dir}, args...)
	if code := runJSON(t, 4*time.Minute, &res, args...); code != exitOK {
		t.Errorf("exit code %d, want 0; failures: %v", code, res.Total.Failures)
		logProducerStacks(t, dir)
	}
	return res
}

// logProducerStacks logs the producer's goroutines of each run that timed
// out (the harness dumps every goroutine then, in the run's directory,
// which the test's temp dir takes away): what a stuck producer waits on.
func logProducerStacks(t *testing.T, dir string) {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(dir, "run-*", "goroutines.txt"))
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		var keep []string
		for _, g := range strings.Split(string(b), "\n\n") {
			if strings.Contains(g, "torture/producer") {
				keep = append(keep, g)
			}
		}
		t.Logf("%s, the producer's goroutines:\n%s", f, strings.Join(keep, "\n\n"))
	}
}

// checkTorture asserts the invariants of every run and that the faults
// were really injected, the proxy's in front of proxied.
func checkTorture(t *testing.T, res tortureResult, runs, events int, proxied string) {
	t.Helper()
	tot := res.Total
	if len(res.Runs) != runs {
		t.Fatalf("%d runs, want %d; failures: %v", len(res.Runs), runs, tot.Failures)
	}
	checkHeld(t, tot.Run, int64(runs*events))
	if tot.DedupeStoreErrors == 0 {
		t.Error("dedupe_store_errors 0: the store failures injected at driver.begin were not reported")
	}
	if tot.Recovered != tot.Indeterminate {
		t.Errorf("recovered %d of %d indeterminate publishes", tot.Recovered, tot.Indeterminate)
	}
	if tot.Poison == 0 || tot.DeadLettered != tot.Poison {
		t.Errorf("poison %d, dead-lettered %d", tot.Poison, tot.DeadLettered)
	}
	// A run ends only once each scheduled fault (kill, broker restart,
	// proxy) struck; failpoints fire by chance per batch (testFailpoints).
	if tot.Kills == 0 || tot.FailpointCrashes == 0 {
		t.Errorf("kills %d, failpoint crashes %d: the faults were not injected", tot.Kills, tot.FailpointCrashes)
	}
	checkDuplicates(t, tot.Run, tot.Broker, false)
	if tot.ProxyFaults == 0 || tot.Proxy != proxied {
		t.Errorf("proxy_faults %d, proxy %q (want > 0, %q): the proxy faults were not injected", tot.ProxyFaults, tot.Proxy, proxied)
	}
	if tot.ProxyFaults != tot.ProxyResets+tot.ProxyLatency+tot.ProxyBlackholes {
		t.Errorf("proxy_faults %d != resets %d + latency %d + blackholes %d", tot.ProxyFaults, tot.ProxyResets, tot.ProxyLatency, tot.ProxyBlackholes)
	}
	sum := 0
	for _, r := range res.Runs {
		sum += r.ProxyFaults
	}
	if sum != tot.ProxyFaults {
		t.Errorf("runs' proxy faults sum to %d, total %d", sum, tot.ProxyFaults)
	}
}

// A failpoint spec with probabilities high enough to fire in short runs on
// any machine. Their chances are per batch, and how many batches a run
// makes depends on the machine, but not below a bound: the payment worker
// takes at most 64 orders a batch, so two runs of 1,500 events make at
// least 47 payment batches. The chance that no crash fires in them is
// below (0.9*0.95*0.95)^47 < 1e-4, that no store failure is injected at
// driver.begin (evaluated once per batch at least, before any crash)
// below 0.8^47 < 1e-4; the order workers' and the relay's batches come on
// top.
const testFailpoints = "inbox.after_claim=crash@0.1,inbox.after_handler=delay:10ms@0.05,inbox.before_commit=error@0.2," +
	"driver.begin=error@0.2,driver.commit=crash@0.05,inbox.after_commit_before_ack=crash@0.05,relay.after_publish_before_mark=crash@0.05," +
	"natsjs.publish_ack_lost=error@0.01,natsjs.ack_lost=error@0.01"

// testKafkaFailpoints is testFailpoints on the Kafka transport.
var testKafkaFailpoints = strings.ReplaceAll(testFailpoints, "natsjs.", "kafka.")

func TestTortureSQLiteEmbeddedAllFaults(t *testing.T) {
	res := runTortureJSON(t, "--runs", "2", "--events", "1500", "--faults", "all", "--seed", "7", "--failpoint-spec", testFailpoints)
	checkTorture(t, res, 2, 1500, "nats")
	if res.Total.BrokerRestarts == 0 {
		t.Error("broker restarts = 0: the embedded broker was not restarted")
	}
	if res.Total.Store != "sqlite" || res.Total.Broker != "nats-embedded" || res.Total.Handler != "batch" {
		t.Errorf("ran on %s + %s with the %s handler", res.Total.Store, res.Total.Broker, res.Total.Handler)
	}
}

func TestTorturePostgresNATS(t *testing.T) {
	pg, nats := testenv.PostgresURL(t), testenv.NATSURL(t)
	res := runTortureJSON(t, "--runs", "2", "--events", "1500", "--faults", "kill,failpoints,duplicates,poison,proxy", "--seed", "8",
		"--failpoint-spec", testFailpoints, "--postgres", pg, "--nats", nats, "--rate", "1000")
	checkTorture(t, res, 2, 1500, "postgres,nats")
	if res.Total.Store != "postgres" || res.Total.Broker != "nats" || res.Total.BrokerRestarts != 0 || res.Total.Handler != "batch" {
		t.Errorf("ran on %s + %s with %d broker restarts, the %s handler", res.Total.Store, res.Total.Broker, res.Total.BrokerRestarts,
			res.Total.Handler)
	}
	if res.Total.Rate != 1000 {
		t.Errorf("rate %d, want the 1000 asked for", res.Total.Rate)
	}
}

// Every fault on PostgreSQL and the embedded Kafka cluster: kills (each of
// an order worker rebalances their group), failpoints with Kafka's lost
// acks, cluster restarts, proxies in front of PostgreSQL and every broker.
func TestTorturePostgresKafkaAllFaults(t *testing.T) {
	pg := testenv.PostgresURL(t)
	res := runTortureJSON(t, "--runs", "2", "--events", "1500", "--faults", "all", "--seed", "9",
		"--failpoint-spec", testKafkaFailpoints, "--postgres", pg, "--transport", "kafka")
	checkTorture(t, res, 2, 1500, "postgres,kafka")
	if res.Total.Store != "postgres" || res.Total.Broker != "kafka-embedded" || res.Total.BrokerRestarts == 0 {
		t.Errorf("ran on %s + %s with %d broker restarts", res.Total.Store, res.Total.Broker, res.Total.BrokerRestarts)
	}
}

// broker-restart does not apply to an external server, nor the proxy to
// SQLite with NATS over TLS: reported, not run.
func TestTortureFaultsNotApplicable(t *testing.T) {
	for _, c := range []struct {
		args []string
		na   string
	}{
		{[]string{"--nats", "nats://127.0.0.1:4222"}, faults.BrokerRestart},
		{[]string{"--nats", "tls://127.0.0.1:4222", "--faults", "proxy"}, faults.Proxy},
		{[]string{"--transport", "kafka", "--kafka", "127.0.0.1:9092"}, faults.BrokerRestart},
		{nil, ""},
		{[]string{"--transport", "kafka"}, ""},
	} {
		o, err := parseTortureFlags(c.args)
		if err != nil {
			t.Fatal(err)
		}
		tot := o.labels()
		so := o.runOptions(0)
		switch {
		case c.na == "" && (!slices.Equal(tot.Faults, faults.All()) || len(tot.NotApplicable) != 0 || !so.BrokerRestart || !so.Proxy):
			t.Errorf("embedded: faults %v, not applicable %v", tot.Faults, tot.NotApplicable)
		case c.na != "" && (slices.Contains(tot.Faults, c.na) || len(tot.NotApplicable) != 1 || !strings.HasPrefix(tot.NotApplicable[0], c.na) ||
			(c.na == faults.BrokerRestart && so.BrokerRestart) || (c.na == faults.Proxy && so.Proxy)):
			t.Errorf("%v: faults %v, not applicable %v, options %+v", c.args, tot.Faults, tot.NotApplicable, so)
		}
	}
}

// The default bound on a run leaves room for the publishing a rate sets.
func TestTortureDefaultTimeout(t *testing.T) {
	for _, c := range []struct {
		args []string
		want time.Duration
	}{
		{[]string{"--events", "10000"}, 2*time.Minute + 60*time.Second},
		{[]string{"--events", "10000", "--rate", "100"}, 2*time.Minute + 60*time.Second + 100*time.Second},
		{[]string{"--events", "10000", "--rate", "100", "--timeout", "30s"}, 30 * time.Second},
		{[]string{"--events", "10000", "--transport", "kafka"}, 2*time.Minute + 200*time.Second},
	} {
		o, err := parseTortureFlags(c.args)
		if err != nil {
			t.Fatal(err)
		}
		if o.timeout != c.want {
			t.Errorf("%v: timeout %s, want %s", c.args, o.timeout, c.want)
		}
	}
}

func TestTortureBadInputExits2WithOneLine(t *testing.T) {
	for _, c := range []struct {
		name string
		args []string
		want string
	}{
		{"unknown fault", []string{"torture", "--faults", "kill,meteor"}, `--faults: unknown fault "meteor"`},
		{"zero runs", []string{"torture", "--runs", "0"}, "--runs: want 1..1000, got 0"},
		{"zero events", []string{"torture", "--events", "0"}, "--events: want 1..10000000, got 0"},
		{"bad failpoint", []string{"torture", "--failpoint-spec", "inbox.after_claim=explode"}, `unknown action "explode"`},
		{"unknown flag", []string{"torture", "--bogus"}, "flag provided but not defined: -bogus"},
		{"argument", []string{"torture", "now"}, `unexpected argument "now"`},
		{"nats not a URL", []string{"torture", "--nats", "127.0.0.1:4222"}, "--nats: want a URL"},
		{"negative rate", []string{"torture", "--rate", "-5"}, "--rate: negative (-5)"},
		{"unknown handler", []string{"torture", "--handler", "Batch"}, `--handler: unknown order handler "Batch"`},
		{"nats failpoint on kafka", []string{"torture", "--transport", "kafka", "--failpoint-spec", "natsjs.ack_lost=error@0.5"},
			"--failpoint-spec: "},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := runCmd(t, 30*time.Second, append(c.args, "--dir", filepath.Join(t.TempDir(), "torture"))...)
			checkUsageError(t, r, c.want)
		})
	}
}

// TestTortureTable checks the table of failed and incomplete runs: each
// failure names its run, the table says how to rerun a failed run alone,
// INCOMPLETE comes first, and no line is wider than reportWidth.
func TestTortureTable(t *testing.T) {
	good := check.Run{Run: 1, Seed: 10, Report: check.Report{Attempted: 5, Acknowledged: 5, Applied: 5, Conservation: true, OK: true}}
	bad := check.Run{Run: 2, Seed: 11, Report: check.Report{Attempted: 5, Acknowledged: 5, Applied: 4, Lost: 1, Conservation: true,
		Failures: []string{"1 acknowledged orders lost (1 never applied, 0 applied and never paid)"}}}
	slow := check.Run{Run: 3, Seed: 12, Report: check.Report{Attempted: 5, Acknowledged: 5, Applied: 2, Conservation: true, Incomplete: true,
		IncompleteReason: "timed out after 1m0s before the pipeline drained"}}
	table := func(runs ...check.Run) string {
		o, err := parseTortureFlags(nil)
		if err != nil {
			t.Fatal(err)
		}
		res := tortureResult{Runs: runs, Total: o.labels()}
		res.Total.Total = check.Sum(runs)
		var b bytes.Buffer
		printTorture(&b, res)
		return b.String()
	}
	got := table(good, bad)
	for _, want := range []string{"eos torture: sqlite + nats-embedded, batch handler, 2 runs", "FAILED: run 2: 1 acknowledged orders lost", "rerun run 2 alone: the same flags with --runs 1 --seed 11", "verdict: FAILED"} {
		if !strings.Contains(got, want) {
			t.Errorf("table lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "rerun run 1") {
		t.Errorf("table offers to rerun a run that held:\n%s", got)
	}
	// A run that timed out: INCOMPLETE comes first, and without a failed
	// check the verdict is INCOMPLETE.
	got = table(good, slow)
	lines := strings.Split(got, "\n")
	if !strings.HasPrefix(lines[1], "  INCOMPLETE: run 3: timed out after 1m0s") || strings.Contains(got, "FAILED") || !strings.Contains(got, "verdict: INCOMPLETE") {
		t.Errorf("incomplete run:\n%s", got)
	}
	got = table(bad, slow)
	if i, j := strings.Index(got, "INCOMPLETE: run 3"), strings.Index(got, "FAILED: run 2"); i < 0 || j < i || !strings.Contains(got, "verdict: FAILED") {
		t.Errorf("failed and incomplete runs:\n%s", got)
	}

	// Many runs with large counts still fit: the runs go in blocks.
	var many []check.Run
	for i := range 12 {
		r := bad
		r.Run, r.Seed = i+1, 999_990+uint64(i)
		r.Attempted, r.Applied, r.P99ms, r.ElapsedS = 10_000_000, 9_999_999, 123456.7, 99999.9
		many = append(many, r)
	}
	got = table(many...)
	for _, line := range strings.Split(got, "\n") {
		if len(line) > reportWidth {
			t.Errorf("line of %d columns: %q", len(line), line)
		}
	}
	for i := 1; i <= 12; i++ {
		if !strings.Contains(got, fmt.Sprintf("run %d ", i)) && !strings.Contains(got, fmt.Sprintf("run %d\n", i)) {
			t.Errorf("run %d missing:\n%s", i, got)
		}
	}
}

// The demo's report fits reportWidth too, notes included.
func TestDemoReportFits(t *testing.T) {
	r := check.Run{Seed: 42, Report: check.Report{Attempted: 10_000_000, Applied: 10_000_000, P50ms: 123456.7, P99ms: 1234567.8,
		Incomplete: true, IncompleteReason: "timed out after 2h0m0s before the pipeline drained (applied 9999999 of 10000000 orders, " +
			"charged 9999998) (last progress read failed: context deadline exceeded)",
		Failures:    []string{strings.Repeat("a very long failure ", 10)},
		DeadLetters: []check.DeadLetterInfo{{Consumer: "orders", ID: "bad-not-json", Error: strings.Repeat("payments: invalid order ", 8)}}}}
	var b bytes.Buffer
	printDemo(&b, &scenario.Result{Run: r, Setup: scenario.Setup{Store: "postgres", Broker: "nats-embedded", Workers: 64, Handler: "message", Chaos: true}}, 10_000_000)
	for _, line := range strings.Split(b.String(), "\n") {
		if len(line) > reportWidth {
			t.Errorf("line of %d columns: %q", len(line), line)
		}
	}
	if !strings.HasPrefix(b.String(), "INCOMPLETE: timed out after 2h0m0s") || !strings.HasSuffix(b.String(), "verdict: FAILED\n") {
		t.Errorf("report:\n%s", b.String())
	}
}

// Every fault injected on a schedule strikes at least once however fast
// the run: a run of 20 events would otherwise finish before the first
// broker restart (1-3 s in) and perhaps before the first kill.
func TestTortureFaultsStrikeInShortRuns(t *testing.T) {
	res := runTortureJSON(t, "--runs", "1", "--events", "20", "--faults", "kill,broker-restart,proxy", "--seed", "3")
	if tot := res.Total; !tot.OK || tot.Kills == 0 || tot.BrokerRestarts == 0 || tot.ProxyFaults == 0 {
		t.Errorf("ok %v, kills %d, broker restarts %d, proxy faults %d; want each fault at least once", tot.OK, tot.Kills, tot.BrokerRestarts, tot.ProxyFaults)
	}
}

// A progress line stays within maxLine columns whatever the counts, so
// that it never wraps where no terminal says its width.
func TestProgressLineFits(t *testing.T) {
	big := scenario.Progress{Orders: 10_000_000, Published: 10_000_000, Applied: 9_999_999, Charged: 9_999_998, DeadLettered: 123_456, Kills: 99_999}
	line := "eos torture 1000/1000: " + progressLine(big, 9_999_999, 99*time.Hour+59*time.Minute+59*time.Second)
	if len(line) > maxLine {
		t.Errorf("line of %d columns: %q", len(line), line)
	}
	for _, c := range []struct {
		n    int64
		want string
	}{{0, "0"}, {9999, "9999"}, {10_000, "10.0k"}, {999_999, "999.9k"}, {1_000_000, "1.0M"}, {10_000_000, "10.0M"}, {2_500_000_000, "2.5G"}} {
		if got := count(c.n); got != c.want {
			t.Errorf("count(%d) = %q, want %q", c.n, got, c.want)
		}
	}
}
