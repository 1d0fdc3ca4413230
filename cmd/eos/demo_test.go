package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/eoskit/eos/internal/testenv"
	"github.com/eoskit/eos/torture/check"
	"github.com/eoskit/eos/torture/scenario"
	"github.com/eoskit/eos/torture/worker"
)

// TestMain lets the test binary serve as the demo's workers: the demo runs
// its own executable with the hidden worker command, and under go test its
// own executable is this binary.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == worker.Command {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
		stop()
		os.Exit(code)
	}
	os.Exit(m.Run())
}

type result struct {
	code           int
	stdout, stderr string
}

func runCmd(t *testing.T, timeout time.Duration, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var out, errb bytes.Buffer
	code := run(ctx, args, strings.NewReader(""), &out, &errb)
	return result{code: code, stdout: out.String(), stderr: errb.String()}
}

// runJSON runs a command with --json, decodes its one line of JSON into
// out and returns its exit code.
func runJSON(t *testing.T, timeout time.Duration, out any, args ...string) int {
	t.Helper()
	start := time.Now()
	r := runCmd(t, timeout, append(args[:1:1], append([]string{"--json"}, args[1:]...)...)...)
	t.Logf("%s took %s; stderr:\n%s", args[0], time.Since(start).Round(time.Millisecond), r.stderr)
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if len(lines) != 1 {
		t.Fatalf("exit %d; stdout has %d lines, want one JSON object:\n%s", r.code, len(lines), r.stdout)
	}
	if err := json.Unmarshal([]byte(lines[0]), out); err != nil {
		t.Fatalf("stdout is not a report: %v\n%s", err, r.stdout)
	}
	return r.code
}

// runDemoJSON runs the demo with --json and returns its report.
func runDemoJSON(t *testing.T, args ...string) *scenario.Result {
	t.Helper()
	var rep scenario.Result
	if code := runJSON(t, 90*time.Second, &rep, append([]string{"demo", "--timeout", "60s"}, args...)...); code != exitOK {
		t.Errorf("exit code %d, want 0; failures: %v", code, rep.Failures)
	}
	return &rep
}

// checkChaosRun asserts the done criteria of the demo.
func checkChaosRun(t *testing.T, rep *scenario.Result, orders int64) {
	t.Helper()
	checkHeld(t, rep.Run, orders)
	if rep.Kills == 0 {
		t.Error("kills = 0 with --chaos")
	}
	if rep.DeadLettered != rep.Poison || rep.Poison == 0 {
		t.Errorf("dead_lettered %d, poison %d", rep.DeadLettered, rep.Poison)
	}
	checkDuplicates(t, rep.Run, rep.Broker, true)
}

// checkDuplicates asserts that the producer's duplicates were made and
// suppressed: on NATS the broker drops the retries inside its window and
// the inbox the copies past it; Kafka drops nothing by id, and the inbox
// suppresses both. exact: every suppressed duplicate is one of the
// producer's copies (a run without broker restarts or proxy faults, which
// add relay re-publishes of their own).
func checkDuplicates(t *testing.T, r check.Run, broker string, exact bool) {
	t.Helper()
	kafka := strings.HasPrefix(broker, "kafka")
	switch {
	case r.Republished == 0:
		t.Error("republished 0: no copy was made past the broker's window")
	case kafka && (r.BrokerDuplicates != 0 || r.DuplicatesSuppressed <= r.Republished):
		t.Errorf("on Kafka: broker duplicates %d (want 0), duplicates suppressed %d (want the %d copies and the retries)",
			r.BrokerDuplicates, r.DuplicatesSuppressed, r.Republished)
	case !kafka && exact && r.DuplicatesSuppressed != r.Republished:
		t.Errorf("republished %d, duplicates_suppressed %d: want the copies past the broker's window, all suppressed",
			r.Republished, r.DuplicatesSuppressed)
	case !kafka && r.BrokerDuplicates == 0:
		t.Error("broker_duplicates = 0: the producer's retries did not reach the broker's dedupe")
	}
}

// checkHeld asserts that every order of a run (or a total) was applied
// and charged once, and nothing else happened.
func checkHeld(t *testing.T, r check.Run, orders int64) {
	t.Helper()
	if !r.OK || len(r.Failures) > 0 {
		t.Errorf("ok=%v, failures: %v", r.OK, r.Failures)
	}
	if r.Attempted != orders || r.Acknowledged != orders || r.Applied != orders || r.ChargedOnce != orders {
		t.Errorf("attempted %d, acknowledged %d, applied %d, charged once %d; want %d each",
			r.Attempted, r.Acknowledged, r.Applied, r.ChargedOnce, orders)
	}
	if r.Duplicated != 0 || r.Lost != 0 || r.Unexpected != 0 || r.MissedApplies != 0 || r.ChargeAnomalies != 0 || r.PartialCommits != 0 || !r.Conservation {
		t.Errorf("duplicated %d, lost %d, unexpected %d, missed applies %d, charge anomalies %d, partial commits %d, conservation %v",
			r.Duplicated, r.Lost, r.Unexpected, r.MissedApplies, r.ChargeAnomalies, r.PartialCommits, r.Conservation)
	}
}

func TestDemoSQLiteEmbeddedChaos(t *testing.T) {
	// The per-message handler here; the other demo and torture tests run
	// the default, the batch handler.
	rep := runDemoJSON(t, "--dir", filepath.Join(t.TempDir(), "demo"), "--orders", "2000", "--chaos", "--seed", "42",
		"--handler", "message")
	checkChaosRun(t, rep, 2000)
	if rep.Store != "sqlite" || rep.Broker != "nats-embedded" || rep.Handler != "message" {
		t.Errorf("ran on %s + %s with the %s handler", rep.Store, rep.Broker, rep.Handler)
	}
}

func TestDemoPostgresNATSChaos(t *testing.T) {
	pg, nats := testenv.PostgresURL(t), testenv.NATSURL(t)
	rep := runDemoJSON(t, "--dir", filepath.Join(t.TempDir(), "demo"), "--orders", "2000", "--chaos", "--seed", "43",
		"--postgres", pg, "--nats", nats)
	checkChaosRun(t, rep, 2000)
	if rep.Store != "postgres" || rep.Broker != "nats" || rep.Handler != "batch" {
		t.Errorf("ran on %s + %s with the %s handler", rep.Store, rep.Broker, rep.Handler)
	}
}

// The demo on Kafka: an embedded kfake cluster, order workers sharing one
// consumer group that every kill of one of them rebalances.
func TestDemoKafkaChaos(t *testing.T) {
	rep := runDemoJSON(t, "--dir", filepath.Join(t.TempDir(), "demo"), "--orders", "2000", "--chaos", "--seed", "44",
		"--transport", "kafka")
	checkChaosRun(t, rep, 2000)
	if rep.Store != "sqlite" || rep.Broker != "kafka-embedded" {
		t.Errorf("ran on %s + %s", rep.Store, rep.Broker)
	}
}

// A second run in the same directory replaces the first one's files (the
// first with the per-message handler, the second with the default).
func TestDemoRerunsInItsDirectory(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "demo")
	for i, handler := range []string{"message", "batch"} {
		args := []string{"--dir", dir, "--orders", "200", "--workers", "2"}
		if handler == "message" {
			args = append(args, "--handler", handler)
		}
		rep := runDemoJSON(t, args...)
		if !rep.OK || rep.Applied != 200 || rep.Handler != handler {
			t.Fatalf("run %d: ok=%v applied=%d handler %q %v", i, rep.OK, rep.Applied, rep.Handler, rep.Failures)
		}
	}
}

// Bad flags and unreachable services: exit 2 and one line on stderr.
func TestDemoBadInputExits2WithOneLine(t *testing.T) {
	notOurs := t.TempDir()
	if err := os.WriteFile(filepath.Join(notOurs, "precious.txt"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		args []string
		want string
	}{
		{"unknown flag", []string{"demo", "--bogus"}, "flag provided but not defined: -bogus"},
		{"bad number", []string{"demo", "--orders", "many"}, `invalid value "many" for flag -orders`},
		{"zero orders", []string{"demo", "--orders", "0"}, "--orders: want 1..10000000, got 0"},
		{"too many workers", []string{"demo", "--workers", "65"}, "--workers: want 1..64"},
		{"unknown handler", []string{"demo", "--handler", "bulk"}, `--handler: unknown order handler "bulk": want batch or message`},
		{"argument", []string{"demo", "now"}, `unexpected argument "now"`},
		{"postgres not a URL", []string{"demo", "--postgres", "mysql://x"}, "--postgres: want a URL"},
		{"nats not a URL", []string{"demo", "--nats", "127.0.0.1:4222"}, "--nats: want a URL"},
		{"unknown transport", []string{"demo", "--transport", "kinesis"}, `--transport: want nats or kafka, got "kinesis"`},
		{"kafka without its transport", []string{"demo", "--kafka", "127.0.0.1:9092"}, "--kafka: needs --transport kafka"},
		{"nats with kafka", []string{"demo", "--transport", "kafka", "--nats", "nats://127.0.0.1:4222"}, "--nats: not with --transport kafka"},
		{"kafka not host:port", []string{"demo", "--transport", "kafka", "--kafka", "127.0.0.1:9092,kafka://h"}, `--kafka: want host:port[,host:port…], got "kafka://h"`},
		{"postgres unreachable", []string{"demo", "--postgres", "postgres://eos:secret@127.0.0.1:1/none?connect_timeout=3"}, "cannot connect to PostgreSQL at postgres://eos:xxxxx@127.0.0.1:1/none"},
		{"postgres password parameter", []string{"demo", "--postgres", "postgres://eos@127.0.0.1:1/none?password=secret&connect_timeout=3"},
			"cannot connect to PostgreSQL at postgres://xxxxx@127.0.0.1:1/none?password=xxxxx&connect_timeout=3"},
		{"postgres sslpassword parameter", []string{"demo", "--postgres", "postgres://127.0.0.1:1/none?sslpassword=secret&connect_timeout=3"},
			"cannot connect to PostgreSQL at postgres://127.0.0.1:1/none?sslpassword=xxxxx&connect_timeout=3"},
		{"postgres bad URL with a password", []string{"demo", "--postgres", "postgres://eos:secret@127.0.0.1:port/none"}, "--postgres: want a URL"},
		{"nats unreachable", []string{"demo", "--nats", "nats://127.0.0.1:1"}, "cannot connect to NATS at nats://127.0.0.1:1"},
		{"nats token unreachable", []string{"demo", "--nats", "nats://secret@127.0.0.1:1"}, "cannot connect to NATS at nats://xxxxx@127.0.0.1:1"},
		{"nats token parameter", []string{"demo", "--nats", "nats://127.0.0.1:1?token=secret"}, "cannot connect to NATS at nats://127.0.0.1:1?token=xxxxx"},
		{"foreign directory", []string{"demo", "--dir", notOurs}, "is not empty and was not made by eos demo"},
		{"unknown command", []string{"frobnicate"}, `unknown command "frobnicate"`},
		{"worker without demo", []string{worker.Command}, "internal to eos demo"},
	} {
		t.Run(c.name, func(t *testing.T) {
			args := c.args
			if args[0] == "demo" && !strings.Contains(strings.Join(args, " "), "--dir") {
				args = append(args, "--dir", filepath.Join(t.TempDir(), "demo"))
			}
			r := runCmd(t, 30*time.Second, args...)
			checkUsageError(t, r, c.want)
			if strings.Contains(r.stderr, "secret") || strings.Contains(r.stderr, "goroutine") {
				t.Errorf("stderr leaks a password or a stack trace: %q", r.stderr)
			}
		})
	}
}

// The help spells every flag with two dashes, as the usage text and the
// docs do.
func TestHelpSpellsFlagsWithTwoDashes(t *testing.T) {
	for _, c := range []struct{ command, flag string }{{"demo", "--chaos"}, {"torture", "--faults"}, {"migrate up", "--postgres"}, {"reconcile", "--partial-after"}} {
		r := runCmd(t, 10*time.Second, append(strings.Fields(c.command), "-h")...)
		if r.code != exitOK || !strings.Contains(r.stdout, "\n  "+c.flag+"\n") && !strings.Contains(r.stdout, "\n  "+c.flag+" ") {
			t.Errorf("%s -h: exit %d, no %s in:\n%s", c.command, r.code, c.flag, r.stdout)
		}
		for _, line := range strings.Split(r.stdout, "\n") {
			if strings.HasPrefix(line, "  -") && !strings.HasPrefix(line, "  --") {
				t.Errorf("%s -h: %q has one dash", c.command, line)
			}
			if len(line) > reportWidth {
				t.Errorf("%s -h: line of %d columns: %q", c.command, len(line), line)
			}
		}
	}
}

// checkUsageError asserts a bad-input exit: status 2, nothing on stdout,
// one line on stderr containing want.
func checkUsageError(t *testing.T, r result, want string) {
	t.Helper()
	if r.code != exitUsage {
		t.Errorf("exit code %d, want %d", r.code, exitUsage)
	}
	if r.stdout != "" {
		t.Errorf("stdout: %q", r.stdout)
	}
	lines := strings.Split(strings.TrimSuffix(r.stderr, "\n"), "\n")
	if len(lines) != 1 || !strings.Contains(lines[0], want) {
		t.Errorf("stderr %q, want one line with %q", r.stderr, want)
	}
}

// Error text shown by the command masks the secrets of any connection
// string it quotes (the workers' log lines: see torture/worker).
func TestSecretsMaskedInMessages(t *testing.T) {
	err := fmt.Errorf("worker orders-0 failed: connect to nats://secret@127.0.0.1:4222: %w",
		errors.New("cannot parse `host=h password=secret`"))
	if got := oneLine(err); strings.Contains(got, "secret") {
		t.Errorf("oneLine = %q", got)
	}
}

// A run that times out before the pipeline drained says so first, fails
// none of the checks that need it drained, and exits 3. The producer alone
// takes longer than the timeout: it waits past the broker's dedupe window
// to publish its copies.
func TestDemoTimeoutIsIncomplete(t *testing.T) {
	r := runCmd(t, time.Minute, "demo", "--dir", filepath.Join(t.TempDir(), "demo"), "--orders", "2000", "--seed", "42", "--timeout", "1s")
	lines := strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n")
	if r.code != exitIncomplete || !strings.HasPrefix(lines[0], "INCOMPLETE: timed out after 1s") ||
		strings.Contains(r.stdout, "FAILED") || lines[len(lines)-1] != "verdict: INCOMPLETE" {
		t.Errorf("exit %d, want %d; stdout:\n%s\nstderr:\n%s", r.code, exitIncomplete, r.stdout, r.stderr)
	}
}

// A failed check wins over an incomplete run; an incomplete run is not OK.
func TestReportCode(t *testing.T) {
	for _, c := range []struct {
		ok, failed, incomplete bool
		want                   int
	}{
		{true, false, false, exitOK},
		{false, true, false, exitFailed},
		{false, false, false, exitFailed},
		{false, false, true, exitIncomplete},
		{false, true, true, exitFailed},
	} {
		if got := reportCode(c.ok, c.failed, c.incomplete); got != c.want {
			t.Errorf("reportCode(ok %v, failed %v, incomplete %v) = %d, want %d", c.ok, c.failed, c.incomplete, got, c.want)
		}
	}
}
