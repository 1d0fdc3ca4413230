package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/eoskit/eos/serve"
	"github.com/eoskit/eos/torture/observe"
	"github.com/eoskit/eos/torture/scenario"
	"github.com/eoskit/eos/torture/worker"
)

const demoUsage = `Usage: eos demo [flags]

Runs the payments scenario end to end and checks it: a producer emits
orders into stream ORDERS (some publishes retried with the same id, some
orders published again after the stream's dedupe window, a few malformed
messages), announcing each publish in its intent log first; order workers
apply each order once (debit, ledger row, outbox charge in one
transaction); a relay forwards the charges to stream PAYMENTS; a payment
worker charges each order once at a provider simulator (HTTP,
Idempotency-Key). Workers are child processes; --chaos SIGKILLs and
restarts them at random. The run ends when every order is applied and
charged, or as soon as the pipeline is idle (nothing pending, nothing
moving) without being complete; then the intent log, the ORDERS stream,
the databases and the provider's records are read and every invariant
checked. The exit status is 0 when all hold, 1 when one fails, 2 for bad
flags or unreachable services, 3 when the run timed out before the
pipeline drained and nothing failed so far (the report says INCOMPLETE
first; the checks that need a drained pipeline are skipped).

By default everything runs here: SQLite and an embedded NATS JetStream
server with their files in --dir. --postgres and --nats use real servers
(a fresh schema and fresh streams per run, removed afterwards unless
--keep).

--transport kafka runs the pipeline on Kafka instead: topics in place of
the streams, consumer groups in place of the durable consumers (the order
workers share one group; a kill rebalances it), an embedded Kafka cluster
(franz-go's kfake, in this process, its data in --dir) unless --kafka
names a real one. Kafka drops no copy by id: every retry and copy the
producer sends is stored, and the inboxes suppress them.

--serve ADDR serves the run's status page, /metrics, /healthz and /readyz
during the run (see eos serve -h); the report says where.

Flags:
`

// demoOptions are the demo's flags.
type demoOptions struct {
	dir      string
	orders   int
	workers  int
	accounts int
	chaos    bool
	seed     uint64
	json     bool
	postgres string
	natsURL  string
	// --transport and --kafka (kafka: their check's seed brokers)
	transport, kafkaRaw string
	kafka               []string
	rate                int
	timeout             time.Duration
	keep                bool
	verbose             bool
	handler             string
	// workerMetrics: the workers export their metrics to the harness
	// (off: to measure what that costs).
	workerMetrics bool
	// --serve, --serve-linger, --token-file
	serve       string
	serveLinger time.Duration
	tokenFile   string
}

func demoFlagSet(o *demoOptions) *flag.FlagSet {
	fs := flag.NewFlagSet("eos demo", flag.ContinueOnError)
	fs.SetOutput(io.Discard) // errors are reported in one line by runDemo
	fs.StringVar(&o.dir, "dir", "eos-demo", "directory for the demo's files (SQLite, NATS, provider records, worker logs)")
	fs.IntVar(&o.orders, "orders", 100_000, "number of orders")
	fs.IntVar(&o.workers, "workers", 4, "order worker processes")
	fs.IntVar(&o.accounts, "accounts", 1000, "number of accounts")
	fs.BoolVar(&o.chaos, "chaos", false, "SIGKILL workers at random and restart them; make the provider fail now and then")
	fs.Uint64Var(&o.seed, "seed", 0, "seed of the workload and the chaos (0: pick one; the report shows it)")
	fs.BoolVar(&o.json, "json", false, "print the report as one JSON object on stdout")
	fs.StringVar(&o.postgres, "postgres", "", "PostgreSQL URL (postgres://…) instead of SQLite")
	fs.StringVar(&o.natsURL, "nats", "", "NATS URL (nats://…) instead of the embedded server")
	transportFlags(fs, &o.transport, &o.kafkaRaw)
	fs.IntVar(&o.rate, "rate", 0, "orders published per second (0: as fast as the broker takes them)")
	fs.DurationVar(&o.timeout, "timeout", 0, "give up after this long (0: 2m plus 3ms per order, plus the publishing time --rate sets)")
	fs.BoolVar(&o.keep, "keep", false, "keep the PostgreSQL schema and NATS streams of the run")
	fs.BoolVar(&o.verbose, "verbose", false, "workers log at info level, to stderr as well as DIR/workers.log (default: warnings, to the file only)")
	handlerFlag(fs, &o.handler)
	fs.BoolVar(&o.workerMetrics, "worker-metrics", true, "workers export their metrics to the harness, which sums them (false: to measure their cost)")
	fs.StringVar(&o.serve, "serve", "", "serve the run's status page, /metrics, /healthz and /readyz on this address during the run "+
		"(e.g. 127.0.0.1:9464; beyond loopback only with a token; see eos serve -h)")
	fs.DurationVar(&o.serveLinger, "serve-linger", 0, "with --serve: keep serving this long after the report, the run's store and broker open "+
		"(an interrupt stops it sooner and keeps the report's exit status)")
	tokenFlag(fs, &o.tokenFile)
	return fs
}

// publishTime is how long publishing n orders at rate per second takes
// (0 when rate is 0: unthrottled).
func publishTime(n, rate int) time.Duration {
	if rate <= 0 {
		return 0
	}
	return time.Duration(n) * time.Second / time.Duration(rate)
}

func parseDemoFlags(args []string) (demoOptions, error) {
	var o demoOptions
	fs := demoFlagSet(&o)
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	switch {
	case fs.NArg() > 0:
		return o, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	case o.dir == "":
		return o, errors.New("--dir: empty")
	case o.orders < 1 || o.orders > 10_000_000:
		return o, fmt.Errorf("--orders: want 1..10000000, got %d", o.orders)
	case o.workers < 1 || o.workers > 64:
		return o, fmt.Errorf("--workers: want 1..64, got %d", o.workers)
	case o.accounts < 1 || o.accounts > 1_000_000:
		return o, fmt.Errorf("--accounts: want 1..1000000, got %d", o.accounts)
	case o.rate < 0:
		return o, fmt.Errorf("--rate: negative (%d)", o.rate)
	case o.timeout < 0:
		return o, fmt.Errorf("--timeout: negative (%s)", o.timeout)
	case o.serveLinger < 0:
		return o, fmt.Errorf("--serve-linger: negative (%s)", o.serveLinger)
	case o.serveLinger > 0 && o.serve == "":
		return o, errors.New("--serve-linger: needs --serve")
	}
	if _, err := worker.CheckHandler(o.handler); err != nil {
		return o, fmt.Errorf("--handler: %w", err)
	}
	if err := checkServiceURLs(o.postgres, o.natsURL); err != nil {
		return o, err
	}
	var err error
	if o.kafka, err = checkTransport(o.transport, o.natsURL, o.kafkaRaw); err != nil {
		return o, err
	}
	if o.timeout == 0 {
		o.timeout = 2*time.Minute + time.Duration(o.orders)*3*time.Millisecond + publishTime(o.orders, o.rate)
	}
	return o, nil
}

// scenario returns the run the flags describe.
func (o demoOptions) scenario() scenario.Options {
	return scenario.Options{Dir: o.dir, Orders: o.orders, Workers: o.workers, Accounts: o.accounts, Seed: o.seed,
		Transport: o.transport, Postgres: o.postgres, NATSURL: o.natsURL, Kafka: o.kafka, Keep: o.keep, Rate: o.rate, Timeout: o.timeout, Handler: o.handler,
		Chaos: o.chaos, Verbose: o.verbose, NoWorkerMetrics: !o.workerMetrics}
}

// handlerFlag defines --handler, the order workers' handler.
func handlerFlag(fs *flag.FlagSet, handler *string) {
	fs.StringVar(handler, "handler", worker.HandlerBatch, "the order workers' handler: "+worker.HandlerBatch+
		" (set-based: a few statements per batch) or "+worker.HandlerMessage+" (a few statements per order)")
}

// printUsage writes a command's usage text and its flags.
func printUsage(w io.Writer, usage string, fs *flag.FlagSet) int {
	fmt.Fprint(w, usage)
	printFlags(w, fs)
	return exitOK
}

func runDemo(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	o, err := parseDemoFlags(args)
	if errors.Is(err, flag.ErrHelp) {
		return printUsage(stdout, demoUsage, demoFlagSet(&demoOptions{}))
	}
	var token string
	if err == nil && o.serve != "" {
		if token, err = readToken(o.tokenFile); err == nil {
			err = serve.RequireToken(o.serve, token)
		}
	}
	if err != nil {
		fmt.Fprintf(stderr, "eos demo: %s (see eos demo -h)\n", oneLine(err))
		return exitUsage
	}
	so := o.scenario()
	so.Stderr = stderr
	bar := newProgressBar(stderr, "eos demo: ")
	so.OnProgress = bar.update
	s, err := scenario.New(ctx, so)
	if err != nil {
		bar.finish()
		return demoError(ctx, stderr, err, exitUsage)
	}
	defer s.Close()
	var (
		status *observe.Server
		obs    *observe.Observer
	)
	if o.serve != "" {
		if obs, status, err = startStatus(s, o.serve, token, stderr); err != nil {
			bar.finish()
			return demoError(ctx, stderr, err, exitUsage)
		}
		defer status.Close(context.Background())
		fmt.Fprintf(stderr, "eos demo: status page at %s\n", status.URL())
	}
	res, err := s.Run(ctx)
	bar.finish()
	if err != nil {
		return demoError(ctx, stderr, err, exitFailed)
	}
	if status != nil {
		res.StatusURL = status.URL()
		reconcileRun(ctx, obs, stderr)
	}
	out := stdout
	if o.json {
		out = stderr
	}
	printDemo(out, res, o.orders)
	if o.json {
		if err := json.NewEncoder(stdout).Encode(res); err != nil {
			fmt.Fprintf(stderr, "eos demo: writing the report: %v\n", err)
			return exitFailed
		}
	}
	if status != nil {
		linger(ctx, status, o.serveLinger, stderr)
	}
	return reportCode(res.OK, len(res.Failures) > 0, res.Incomplete)
}

// demoError reports a run that could not be made or checked.
func demoError(ctx context.Context, stderr io.Writer, err error, code int) int {
	if ctx.Err() != nil {
		fmt.Fprintln(stderr, "eos demo: interrupted")
		return exitSignaled
	}
	fmt.Fprintf(stderr, "eos demo: %s\n", oneLine(err))
	return code
}

// startStatus serves the run's status page, /metrics and probes on addr
// (--serve).
func startStatus(s *scenario.Scenario, addr, token string, stderr io.Writer) (*observe.Observer, *observe.Server, error) {
	obs, err := s.Observe(observe.Config{Token: token, Logger: worker.NewLogger(stderr, slog.LevelWarn)})
	if err != nil {
		return nil, nil, err
	}
	srv, err := observe.Listen(addr, token, obs.Handler)
	if err != nil {
		return nil, nil, fmt.Errorf("--serve: %w", err)
	}
	return obs, srv, nil
}

// reconcileRun reconciles the finished run once, as eos serve does on a
// schedule, so that the served page and /metrics show its findings
// (eos_missed_apply_total and the rest, at zero on a correct run). The
// demo's own checks stay the verdict; a finding or a failure here is
// reported on stderr.
func reconcileRun(ctx context.Context, obs *observe.Observer, stderr io.Writer) {
	reps, err := obs.Reconcile(ctx, observe.ReconcileConfig{PartialAfter: time.Minute})
	for _, r := range reps {
		if r != nil && !r.OK() {
			fmt.Fprintf(stderr, "eos demo: reconcile %s: %d findings (see the status page, or eos reconcile)\n", r.Consumer, r.Findings())
		}
	}
	if err != nil {
		fmt.Fprintf(stderr, "eos demo: %s\n", oneLine(err))
	}
}

// linger keeps the status page up after the report for d (--serve-linger),
// or until ctx ends (an interrupt), whichever comes first: the run's
// final numbers stay there to read or scrape.
func linger(ctx context.Context, srv *observe.Server, d time.Duration, stderr io.Writer) {
	if d <= 0 {
		return
	}
	fmt.Fprintf(stderr, "eos demo: serving %s for %s more (interrupt to stop)\n", srv.URL(), d)
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	case <-srv.Done():
	}
}

// checkedRun sets up the run of so, runs and checks it. The exit code
// goes with an error: unreachable services are a usage error.
func checkedRun(ctx context.Context, so scenario.Options) (*scenario.Result, int, error) {
	s, err := scenario.New(ctx, so)
	if err != nil {
		return nil, exitUsage, err
	}
	defer s.Close()
	res, err := s.Run(ctx)
	if err != nil {
		return nil, exitFailed, err
	}
	return res, exitOK, nil
}

// printDemo writes the report of a demo run.
func printDemo(w io.Writer, res *scenario.Result, orders int) {
	if res.Incomplete {
		printWrapped(w, "INCOMPLETE: ", incompleteText(res.IncompleteReason))
	}
	fmt.Fprintf(w, "eos demo: payments, %d orders, %s + %s, chaos %v, seed %d\n",
		orders, res.Store, res.Broker, res.Chaos, res.Seed)
	fmt.Fprintf(w, "  order workers: %d, %s handler\n", res.Workers, res.Handler)
	if res.Store == "postgres" || res.Broker == "nats" || res.Broker == "kafka" {
		fmt.Fprintf(w, "  run id: %s (eos serve --run %s watches it)\n", res.RunID, res.RunID)
	}
	if res.StatusURL != "" {
		fmt.Fprintf(w, "  status page: %s\n", res.StatusURL)
	}
	printRun(w, res.Run)
	for _, d := range res.DeadLetters {
		printWrapped(w, "  dead letter ", fmt.Sprintf("%s/%s: %s", d.Consumer, d.ID, d.Error))
	}
	for _, f := range res.Failures {
		printWrapped(w, "  FAILED: ", f)
	}
	fmt.Fprintf(w, "verdict: %s\n", verdict(res.OK, len(res.Failures) > 0, res.Incomplete))
}
