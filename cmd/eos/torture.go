package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/eoskit/eos/examples/payments"
	"github.com/eoskit/eos/torture/check"
	"github.com/eoskit/eos/torture/faults"
	"github.com/eoskit/eos/torture/scenario"
	"github.com/eoskit/eos/torture/worker"
)

const tortureUsage = `Usage: eos torture [flags]

Runs the payments scenario (see eos demo) several times under faults and
checks each run with a checker that trusts no worker counter: the producer
first appends what it is about to publish to its own log (JSON lines,
fsync'd), and after the run drains the checker compares that log with the
broker's stream and the databases: nothing lost, nothing applied twice,
nothing applied that was never sent, money conserved, every order charged
exactly once at the provider.

Faults (--faults, comma-separated, or all):
  kill            SIGKILL order workers, the relay and the payment worker at random
  failpoints      crash / error / delay at the inbox's and relay's failpoints,
                  store failures when the workers begin a transaction, crashes
                  inside the driver's commit, lost PubAcks and lost acks in the
                  NATS or Kafka transport
  broker-restart  restart the embedded NATS server or Kafka cluster mid-run (not
                  with --nats or --kafka)
  duplicates      publish retries inside, and copies past, the broker's dedupe window
                  (Kafka has none: it stores every retry and copy)
  poison          malformed messages mixed into the orders
  proxy           a TCP fault proxy between the workers and the producer on one
                  side and PostgreSQL (with --postgres) and the broker on the other
                  resets every connection, adds latency or blackholes the link
                  (store/broker outage) for 1-4 s

With --transport kafka every kill of an order worker also rebalances the
order workers' consumer group: the partitions the killed member held move
on once its session times out, and move again when it rejoins.

Besides lost, duplicated and unexpected, each run reports indeterminate
(orders whose publish ended without a PubAck, so the producer sent them
again) and recovered (those of them applied), and in flight at fault
(orders created before and applied after a worker's kill or crash).

Run i uses seed+i, and the seed fixes the orders, the duplicates, the
poison, and the schedules and draws of every fault; which messages a fault
hits depends on timing. To rerun run i alone: --runs 1 --seed <its seed>.

A run ends when every order is applied and charged, or as soon as the
pipeline is idle without being complete (a loss is reported then, not at
the timeout), and not before each scheduled fault (kill, broker restart,
proxy) struck once. The exit status is 0 when every run holds, 1 when one
loses, duplicates, breaks conservation or fails another check, 2 for bad
flags or unreachable services, 3 when a run timed out before its pipeline
drained and none failed (INCOMPLETE, reported first).

Flags:
`

// tortureOptions are the torture's flags.
type tortureOptions struct {
	dir       string
	runs      int
	events    int
	faultsRaw string
	faults    faults.Set
	workers   int
	seed      uint64
	json      bool
	postgres  string
	natsURL   string
	// --transport and --kafka (kafka: their check's seed brokers)
	transport, kafkaRaw string
	kafka               []string
	failpoints          string
	rate                int
	timeout             time.Duration
	verbose             bool
	handler             string
}

func tortureFlagSet(o *tortureOptions) *flag.FlagSet {
	fs := flag.NewFlagSet("eos torture", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&o.dir, "dir", "eos-torture", "directory for the runs' files (one subdirectory per run)")
	fs.IntVar(&o.runs, "runs", 3, "number of runs")
	fs.IntVar(&o.events, "events", 10_000, "orders per run")
	fs.StringVar(&o.faultsRaw, "faults", "all", "faults to inject: all, or a comma-separated list of "+strings.Join(faults.All(), ", "))
	fs.IntVar(&o.workers, "workers", 4, "order worker processes")
	fs.Uint64Var(&o.seed, "seed", 0, "seed of the first run; run i uses seed+i (0: pick one)")
	fs.BoolVar(&o.json, "json", false, "print the result as one JSON object on stdout")
	fs.StringVar(&o.postgres, "postgres", "", "PostgreSQL URL (postgres://…) instead of SQLite")
	fs.StringVar(&o.natsURL, "nats", "", "NATS URL (nats://…) instead of the embedded server")
	transportFlags(fs, &o.transport, &o.kafkaRaw)
	fs.StringVar(&o.failpoints, "failpoint-spec", "", "failpoints armed in the workers by the failpoints fault (default: "+
		faults.DefaultFailpoints+"; with --transport kafka, kafka.publish_ack_lost and kafka.ack_lost in place of the natsjs ones)")
	fs.IntVar(&o.rate, "rate", 0, "orders the producer publishes per second (0: as fast as the broker takes them;\n"+
		"then p50/p99 measure the backlog, not the pipeline)")
	fs.DurationVar(&o.timeout, "timeout", 0, "give up on a run after this long (0: 2m plus 6ms per event, 20ms on Kafka,\n"+
		"plus the publishing time --rate sets)")
	fs.BoolVar(&o.verbose, "verbose", false, "workers log at info level to stderr")
	handlerFlag(fs, &o.handler)
	return fs
}

func parseTortureFlags(args []string) (tortureOptions, error) {
	var o tortureOptions
	fs := tortureFlagSet(&o)
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	// The demo's checks of the shared flags.
	if _, err := parseDemoFlags([]string{"--dir", o.dir, "--orders", fmt.Sprint(o.events), "--workers", fmt.Sprint(o.workers),
		"--postgres", o.postgres, "--nats", o.natsURL, "--transport", o.transport, "--kafka", o.kafkaRaw, "--rate", fmt.Sprint(o.rate), "--timeout", o.timeout.String(), "--handler", o.handler}); err != nil {
		return o, errors.New(strings.ReplaceAll(err.Error(), "--orders", "--events"))
	}
	switch {
	case fs.NArg() > 0:
		return o, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	case o.runs < 1 || o.runs > 1000:
		return o, fmt.Errorf("--runs: want 1..1000, got %d", o.runs)
	}
	var err error
	if o.faults, err = faults.Parse(o.faultsRaw); err != nil {
		return o, fmt.Errorf("--faults: %w", err)
	}
	if o.kafka, err = checkTransport(o.transport, o.natsURL, o.kafkaRaw); err != nil {
		return o, err
	}
	if o.failpoints == "" {
		o.failpoints = faults.DefaultFailpointSpec(o.transport)
	}
	if o.faults[faults.Failpoints] {
		if err := faults.CheckFailpointSpec(o.failpoints, o.transport); err != nil {
			return o, fmt.Errorf("--failpoint-spec: %w", err)
		}
	}
	// The bound on a run's drain: PostgreSQL + NATS runs of 100,000 orders
	// took 5-5.6 min alone on 2 vCPUs and over 7 min beside another run.
	// On Kafka every cluster restart and every kill of an order worker
	// rebalances a group: SQLite + embedded Kafka runs of 20,000 orders
	// under every fault took 3.1-3.7 min, about 10ms an order.
	if o.timeout == 0 {
		perEvent := 6 * time.Millisecond
		if o.transport == worker.TransportKafka {
			perEvent = 20 * time.Millisecond
		}
		o.timeout = 2*time.Minute + time.Duration(o.events)*perEvent + publishTime(o.events, o.rate)
	}
	return o, nil
}

// runOptions are the scenario options of run i.
func (o tortureOptions) runOptions(i int) scenario.Options {
	inject, _ := o.faults.Plan(o.services())
	so := scenario.Options{Dir: filepath.Join(o.dir, fmt.Sprintf("run-%d", i+1)), Orders: o.events, Workers: o.workers, Accounts: 1000,
		Seed: o.seed + uint64(i), Transport: o.transport, Postgres: o.postgres, NATSURL: o.natsURL, Kafka: o.kafka, Rate: o.rate, Timeout: o.timeout, Verbose: o.verbose,
		Handler: o.handler,
		Chaos:   o.faults[faults.Kill], BrokerRestart: slices.Contains(inject, faults.BrokerRestart), Proxy: slices.Contains(inject, faults.Proxy),
		NoDuplicates: !o.faults[faults.Duplicates], NoPoison: !o.faults[faults.Poison]}
	if o.faults[faults.Failpoints] {
		so.Failpoints = o.failpoints
	}
	return so
}

// tortureResult is the JSON result: the runs and their total.
type tortureResult struct {
	Runs  []check.Run  `json:"runs"`
	Total tortureTotal `json:"total"`
}

// tortureTotal is the total and what the runs ran on.
type tortureTotal struct {
	check.Total
	Proxy         string   `json:"proxy"` // the services behind fault proxies, or "off"
	Faults        []string `json:"faults"`
	NotApplicable []string `json:"not_applicable,omitempty"`
	Store         string   `json:"store"`
	Broker        string   `json:"broker"`
	Handler       string   `json:"handler"` // the order workers' handler: batch or message
	// Rate is the producer's orders per second; 0: unthrottled, and then
	// P50/P99 measure how long orders waited in the backlog.
	Rate int `json:"rate"`
}

func runTorture(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	o, err := parseTortureFlags(args)
	if errors.Is(err, flag.ErrHelp) {
		return printUsage(stdout, tortureUsage, tortureFlagSet(&tortureOptions{}))
	}
	if err != nil {
		fmt.Fprintf(stderr, "eos torture: %s (see eos torture -h)\n", oneLine(err))
		return exitUsage
	}
	if o.seed == 0 {
		o.seed = uint64(time.Now().UnixNano()%1_000_000) + 1
	}
	res := tortureResult{Runs: []check.Run{}, Total: o.labels()}
	for i := 0; i < o.runs; i++ {
		so := o.runOptions(i)
		so.Stderr = stderr
		var bar *progressBar
		if !o.json {
			bar = newProgressBar(stderr, fmt.Sprintf("eos torture %d/%d: ", i+1, o.runs))
			so.OnProgress = bar.update
		}
		r, code, err := checkedRun(ctx, so)
		if bar != nil {
			bar.finish()
		}
		if err != nil {
			if ctx.Err() != nil {
				fmt.Fprintln(stderr, "eos torture: interrupted")
				return exitSignaled
			}
			fmt.Fprintf(stderr, "eos torture: run %d: %s\n", i+1, oneLine(err))
			return code
		}
		r.Run.Run = i + 1
		if !o.json {
			fmt.Fprintf(stderr, "eos torture: run %d/%d done: ok %v\n", i+1, o.runs, r.OK)
		}
		res.Runs = append(res.Runs, r.Run)
	}
	res.Total.Total = check.Sum(res.Runs)
	tot := res.Total
	if o.json {
		printTorture(stderr, res)
		if err := json.NewEncoder(stdout).Encode(res); err != nil {
			fmt.Fprintf(stderr, "eos torture: writing the result: %v\n", err)
			return exitFailed
		}
	} else {
		printTorture(stdout, res)
	}
	return reportCode(tot.OK, len(tot.Failures) > 0, tot.IncompleteRuns > 0)
}

// labels says what the runs run on.
func (o tortureOptions) labels() tortureTotal {
	t := tortureTotal{Proxy: "off", Store: string(payments.SQLite), Broker: "nats-embedded", Handler: o.handler, Rate: o.rate}
	if o.postgres != "" {
		t.Store = string(payments.Postgres)
	}
	switch {
	case o.transport == worker.TransportKafka && len(o.kafka) > 0:
		t.Broker = "kafka"
	case o.transport == worker.TransportKafka:
		t.Broker = "kafka-embedded"
	case o.natsURL != "":
		t.Broker = "nats"
	}
	t.Faults, t.NotApplicable = o.faults.Plan(o.services())
	if slices.Contains(t.Faults, faults.Proxy) {
		t.Proxy = strings.Join(faults.ProxiedServices(o.services()), ",")
	}
	return t
}

// services names what the runs run on.
func (o tortureOptions) services() faults.Services {
	return faults.Services{Postgres: o.postgres, Transport: o.transport, NATS: o.natsURL, Kafka: o.kafka}
}

// printTorture renders the result for people: what ran, the runs' table
// (a column per run, in blocks that fit reportWidth), the failures and the
// verdict.
func printTorture(w io.Writer, res tortureResult) {
	t := res.Total
	rate := "unthrottled (p50/p99 include the backlog)"
	if t.Rate > 0 {
		rate = fmt.Sprintf("%d orders/s", t.Rate)
	}
	fmt.Fprintf(w, "eos torture: %s + %s, %s handler, %d runs\n", t.Store, t.Broker, t.Handler, len(res.Runs))
	// The cause first: an incomplete run's counts are not verdicts.
	for _, r := range res.Runs {
		if r.Incomplete {
			printWrapped(w, fmt.Sprintf("  INCOMPLETE: run %d: ", r.Run), incompleteText(r.IncompleteReason))
		}
	}
	printWrapped(w, "  faults: ", cmp.Or(strings.Join(t.Faults, ", "), "none"))
	for _, na := range t.NotApplicable {
		printWrapped(w, "  not applicable: ", na)
	}
	fmt.Fprintf(w, "  proxy faults: %d (resets %d, latency %d, blackholes %d; proxied: %s)\n",
		t.ProxyFaults, t.ProxyResets, t.ProxyLatency, t.ProxyBlackholes, t.Proxy)
	fmt.Fprintf(w, "  producer: %s\n", rate)
	printRuns(w, res.Runs, t.Run)
	for _, f := range t.Failures {
		printWrapped(w, "  FAILED: ", f)
	}
	for _, r := range res.Runs {
		if !r.OK {
			fmt.Fprintf(w, "  rerun run %d alone: the same flags with --runs 1 --seed %d\n", r.Run, r.Seed)
		}
	}
	fmt.Fprintf(w, "verdict: %s (duplicate effects per million %.1f)\n",
		verdict(t.OK, len(t.Failures) > 0, t.IncompleteRuns > 0), t.DuplicateEffectsPerMillion)
}
