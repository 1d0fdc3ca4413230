package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

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
	rate     int
	timeout  time.Duration
	keep     bool
	verbose  bool
	handler  string
	// workerMetrics: the workers export their metrics to the harness
	// (off: to measure what that costs).
	workerMetrics bool
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
	fs.IntVar(&o.rate, "rate", 0, "orders published per second (0: as fast as the broker takes them)")
	fs.DurationVar(&o.timeout, "timeout", 0, "give up after this long (0: 2m plus 3ms per order, plus the publishing time --rate sets)")
	fs.BoolVar(&o.keep, "keep", false, "keep the PostgreSQL schema and NATS streams of the run")
	fs.BoolVar(&o.verbose, "verbose", false, "workers log at info level, to stderr as well as DIR/workers.log (default: warnings, to the file only)")
	handlerFlag(fs, &o.handler)
	fs.BoolVar(&o.workerMetrics, "worker-metrics", true, "workers export their metrics to the harness, which sums them (false: to measure their cost)")
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
	}
	if _, err := worker.CheckHandler(o.handler); err != nil {
		return o, fmt.Errorf("--handler: %w", err)
	}
	if err := checkServiceURLs(o.postgres, o.natsURL); err != nil {
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
		Postgres: o.postgres, NATSURL: o.natsURL, Keep: o.keep, Rate: o.rate, Timeout: o.timeout, Handler: o.handler,
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
	if err != nil {
		fmt.Fprintf(stderr, "eos demo: %s (see eos demo -h)\n", oneLine(err))
		return exitUsage
	}
	so := o.scenario()
	so.Stderr = stderr
	bar := newProgressBar(stderr, "eos demo: ")
	so.OnProgress = bar.update
	res, code, err := checkedRun(ctx, so)
	bar.finish()
	if err != nil {
		if ctx.Err() != nil {
			fmt.Fprintln(stderr, "eos demo: interrupted")
			return exitSignaled
		}
		fmt.Fprintf(stderr, "eos demo: %s\n", oneLine(err))
		return code
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
	return reportCode(res.OK, len(res.Failures) > 0, res.Incomplete)
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
	printRun(w, res.Run)
	for _, d := range res.DeadLetters {
		printWrapped(w, "  dead letter ", fmt.Sprintf("%s/%s: %s", d.Consumer, d.ID, d.Error))
	}
	for _, f := range res.Failures {
		printWrapped(w, "  FAILED: ", f)
	}
	fmt.Fprintf(w, "verdict: %s\n", verdict(res.OK, len(res.Failures) > 0, res.Incomplete))
}
