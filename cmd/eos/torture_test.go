package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/eoskit/eos/internal/testenv"
)

// runTortureJSON runs eos torture with --json and returns its result.
func runTortureJSON(t *testing.T, args ...string) tortureResult {
	t.Helper()
	start := time.Now()
	// A run ends when the pipeline is idle; the bound only stops a stuck
	// one. It is generous: a loaded machine (load 5 on 2 vCPUs) needed over
	// 60 s for 1,500 events with every fault, all applied in the end.
	r := runCmd(t, 4*time.Minute, append([]string{"torture", "--json", "--timeout", "150s", "--dir", filepath.Join(t.TempDir(), "torture")}, args...)...)
	t.Logf("torture took %s; stderr:\n%s", time.Since(start).Round(time.Millisecond), r.stderr)
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if len(lines) != 1 {
		t.Fatalf("exit %d; stdout has %d lines, want one JSON object:\n%s", r.code, len(lines), r.stdout)
	}
	var res tortureResult
	if err := json.Unmarshal([]byte(lines[0]), &res); err != nil {
		t.Fatalf("stdout is not a result: %v\n%s", err, r.stdout)
	}
	if r.code != exitOK {
		t.Errorf("exit code %d, want 0; failures: %v", r.code, res.Total.Failures)
	}
	return res
}

// checkTorture asserts the invariants of every run and that the faults
// were really injected, the proxy's in front of proxied.
func checkTorture(t *testing.T, res tortureResult, runs, events int, proxied string) {
	t.Helper()
	tot := res.Total
	if len(res.Runs) != runs || !tot.OK || len(tot.Failures) > 0 {
		t.Fatalf("%d runs, ok=%v, failures: %v", len(res.Runs), tot.OK, tot.Failures)
	}
	want := int64(runs * events)
	if tot.Attempted != want || tot.Acknowledged != want || tot.Applied != want || tot.ChargedOnce != want {
		t.Errorf("attempted %d, acknowledged %d, applied %d, charged once %d; want %d each",
			tot.Attempted, tot.Acknowledged, tot.Applied, tot.ChargedOnce, want)
	}
	if tot.Lost != 0 || tot.Duplicated != 0 || tot.Unexpected != 0 || tot.ChargeAnomalies != 0 || tot.PartialCommits != 0 || !tot.Conservation {
		t.Errorf("lost %d, duplicated %d, unexpected %d, charge anomalies %d, partial commits %d, conservation %v",
			tot.Lost, tot.Duplicated, tot.Unexpected, tot.ChargeAnomalies, tot.PartialCommits, tot.Conservation)
	}
	if tot.DedupeStoreErrors == 0 {
		t.Error("dedupe_store_errors 0: the injected inbox errors were not seen")
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
	if tot.Republished == 0 || tot.BrokerDuplicates == 0 {
		t.Errorf("republished %d, broker duplicates %d: the duplicates were not made", tot.Republished, tot.BrokerDuplicates)
	}
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
// below (0.9*0.95*0.95)^47 < 1e-4, that no injected store error does
// below (1-0.9*0.2)^47 < 1e-4; the order workers' and the relay's
// batches come on top.
const testFailpoints = "inbox.after_claim=crash@0.1,inbox.after_handler=delay:10ms@0.05,inbox.before_commit=error@0.2," +
	"driver.commit=crash@0.05,inbox.after_commit_before_ack=crash@0.05,relay.after_publish_before_mark=crash@0.05," +
	"natsjs.publish_ack_lost=error@0.01,natsjs.ack_lost=error@0.01"

func TestTortureSQLiteEmbeddedAllFaults(t *testing.T) {
	res := runTortureJSON(t, "--runs", "2", "--events", "1500", "--faults", "all", "--seed", "7", "--failpoint-spec", testFailpoints)
	checkTorture(t, res, 2, 1500, "nats")
	if res.Total.Restarts == 0 {
		t.Error("restarts = 0: the embedded broker was not restarted")
	}
	if res.Total.Store != "sqlite" || res.Total.Broker != "nats-embedded" {
		t.Errorf("ran on %s + %s", res.Total.Store, res.Total.Broker)
	}
}

func TestTorturePostgresNATS(t *testing.T) {
	pg, nats := testenv.PostgresURL(t), testenv.NATSURL(t)
	res := runTortureJSON(t, "--runs", "2", "--events", "1500", "--faults", "kill,failpoints,duplicates,poison,proxy", "--seed", "8",
		"--failpoint-spec", testFailpoints, "--postgres", pg, "--nats", nats, "--rate", "1000")
	checkTorture(t, res, 2, 1500, "postgres,nats")
	if res.Total.Store != "postgres" || res.Total.Broker != "nats" || res.Total.Restarts != 0 {
		t.Errorf("ran on %s + %s with %d broker restarts", res.Total.Store, res.Total.Broker, res.Total.Restarts)
	}
	if res.Total.Rate != 1000 {
		t.Errorf("rate %d, want the 1000 asked for", res.Total.Rate)
	}
}

// broker-restart does not apply to an external server: reported, not run.
func TestTortureBrokerRestartNotApplicableWithNATS(t *testing.T) {
	o, err := parseTortureFlags([]string{"--nats", "nats://127.0.0.1:4222"})
	if err != nil {
		t.Fatal(err)
	}
	faults, na := o.plannedFaults()
	if slices.Contains(faults, faultBrokerRestart) || len(na) != 1 || !strings.HasPrefix(na[0], faultBrokerRestart) {
		t.Errorf("faults %v, not applicable %v", faults, na)
	}
	o, err = parseTortureFlags(nil)
	if err != nil {
		t.Fatal(err)
	}
	if faults, na := o.plannedFaults(); !slices.Equal(faults, allFaults) || len(na) != 0 {
		t.Errorf("embedded: faults %v, not applicable %v", faults, na)
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

// The proxy sits in front of the networked services only.
func TestTortureProxiedServices(t *testing.T) {
	for _, c := range []struct {
		postgres, nats string
		want           string
	}{
		{"", "", "nats"},
		{"postgres://h/db", "", "postgres,nats"},
		{"postgres://h/db", "nats://h:4222", "postgres,nats"},
		{"", "nats://h:4222", "nats"},
		{"postgres://h/db", "tls://h:4222", "postgres"},
		{"", "tls://h:4222", ""},
	} {
		if got := strings.Join(proxiedServices(c.postgres, c.nats), ","); got != c.want {
			t.Errorf("proxiedServices(%q, %q) = %q, want %q", c.postgres, c.nats, got, c.want)
		}
	}
	o, err := parseTortureFlags([]string{"--nats", "tls://127.0.0.1:4222", "--faults", "proxy"})
	if err != nil {
		t.Fatal(err)
	}
	if faults, na := o.plannedFaults(); len(faults) != 0 || len(na) != 1 || !strings.HasPrefix(na[0], faultProxy) {
		t.Errorf("SQLite + NATS over TLS: faults %v, not applicable %v", faults, na)
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
	} {
		t.Run(c.name, func(t *testing.T) {
			r := runCmd(t, 30*time.Second, append(c.args, "--dir", filepath.Join(t.TempDir(), "torture"))...)
			checkUsageError(t, r, c.want)
		})
	}
}

// TestTortureVerdict checks the summing and the table of a failed run: the
// total fails, each failure names its run, and the table says how to rerun
// the run alone.
func TestTortureVerdict(t *testing.T) {
	good := tortureRun{Run: 1, Seed: 10, Attempted: 5, Acknowledged: 5, Applied: 5, Conservation: true, OK: true}
	bad := tortureRun{Run: 2, Seed: 11, Attempted: 5, Acknowledged: 5, Applied: 4, Lost: 1, Conservation: true,
		Failures: []string{"1 acknowledged orders lost (never applied)"}}
	res := tortureResult{Runs: []tortureRun{good, bad}}
	res.Total.sum(res.Runs)
	if res.Total.OK || res.Total.Lost != 1 || res.Total.Applied != 9 || !res.Total.Conservation {
		t.Errorf("total %+v", res.Total.tortureRun)
	}
	if len(res.Total.Failures) != 1 || !strings.HasPrefix(res.Total.Failures[0], "run 2: ") {
		t.Errorf("failures %q, want one naming run 2", res.Total.Failures)
	}
	table := res.table()
	for _, want := range []string{"FAILED: run 2: 1 acknowledged orders lost", "rerun run 2 alone: the same flags with --runs 1 --seed 11", "verdict: FAILED"} {
		if !strings.Contains(table, want) {
			t.Errorf("table lacks %q:\n%s", want, table)
		}
	}
	if strings.Contains(table, "rerun run 1") {
		t.Errorf("table offers to rerun a run that held:\n%s", table)
	}
	res.Total = tortureTotal{}
	res.Total.sum(nil)
	if res.Total.OK {
		t.Error("no runs: ok, want not ok")
	}

	// A run that timed out: INCOMPLETE comes first, and without a failed
	// check the verdict is INCOMPLETE.
	slow := tortureRun{Run: 3, Seed: 12, Attempted: 5, Acknowledged: 5, Applied: 2, Conservation: true, Incomplete: true,
		IncompleteReason: "timed out after 1m0s before the pipeline drained"}
	res = tortureResult{Runs: []tortureRun{good, slow}}
	res.Total.sum(res.Runs)
	table = res.table()
	lines := strings.Split(table, "\n")
	if res.Total.OK || res.Total.IncompleteRuns != 1 || !strings.HasPrefix(lines[1], "  INCOMPLETE: run 3: timed out after 1m0s") ||
		strings.Contains(table, "FAILED") || !strings.Contains(table, "verdict: INCOMPLETE") {
		t.Errorf("incomplete run: ok %v, incomplete runs %d; table:\n%s", res.Total.OK, res.Total.IncompleteRuns, table)
	}
	res = tortureResult{Runs: []tortureRun{bad, slow}}
	res.Total.sum(res.Runs)
	table = res.table()
	if i, j := strings.Index(table, "INCOMPLETE: run 3"), strings.Index(table, "FAILED: run 2"); i < 0 || j < i || !strings.Contains(table, "verdict: FAILED") {
		t.Errorf("failed and incomplete runs:\n%s", table)
	}
}

// Every fault injected on a schedule strikes at least once however fast
// the run: a run of 20 events would otherwise finish before the first
// broker restart (1-3 s in) and perhaps before the first kill.
func TestTortureFaultsStrikeInShortRuns(t *testing.T) {
	res := runTortureJSON(t, "--runs", "1", "--events", "20", "--faults", "kill,broker-restart,proxy", "--seed", "3")
	if tot := res.Total; !tot.OK || tot.Kills == 0 || tot.Restarts == 0 || tot.ProxyFaults == 0 {
		t.Errorf("ok %v, kills %d, broker restarts %d, proxy faults %d; want each fault at least once", tot.OK, tot.Kills, tot.Restarts, tot.ProxyFaults)
	}
}

// TestFailpointStream checks that each start of each worker draws its own
// failpoint stream, the same one for the same seed.
func TestFailpointStream(t *testing.T) {
	seen := map[uint64]string{}
	for _, name := range []string{"orders-0", "orders-1", "relay"} {
		for _, start := range []string{"1", "2", "12"} {
			s := failpointStream(name, start)
			if prev, ok := seen[s]; ok {
				t.Errorf("%s start %s draws the stream of %s", name, start, prev)
			}
			seen[s] = name + "/" + start
			if failpointStream(name, start) != s {
				t.Errorf("%s start %s: stream not stable", name, start)
			}
		}
	}
	if failpointStream("orders-1", "2") == failpointStream("orders-12", "") {
		t.Error("name and start run together")
	}
}

func TestCountLines(t *testing.T) {
	path := filepath.Join(t.TempDir(), "workers.log")
	log := `time=1 level=ERROR msg="eos inbox: store failure, stalling (nothing acknowledged)" worker=orders-0
time=2 level=WARN msg="eos inbox: store recovered, processing resumed"
time=3 level=ERROR msg="eos inbox: store failure, stalling (nothing acknowledged)" worker=payments
time=4 level=ERROR msg="eos relay: forwarding failed, retrying" error="store failure"
`
	if err := os.WriteFile(path, []byte(log), 0o644); err != nil {
		t.Fatal(err)
	}
	if n, err := countLines(path, storeFailureLog); n != 2 || err != nil {
		t.Errorf("countLines = %d, %v; want 2", n, err)
	}
	if _, err := countLines(filepath.Join(t.TempDir(), "missing"), storeFailureLog); err == nil {
		t.Error("missing file: no error")
	}
}
