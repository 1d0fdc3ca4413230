package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/eoskit/eos/examples/payments"
	"github.com/eoskit/eos/reconcile"
	"github.com/eoskit/eos/serve"
	"github.com/eoskit/eos/torture/observe"
	"github.com/eoskit/eos/torture/scenario"
	"github.com/eoskit/eos/torture/worker"
)

const serveUsage = `Usage: eos serve [flags]

Serves the status of a demo's pipeline over HTTP, watching it from
outside: / (a status page that reloads itself), /status.json (its data),
/metrics (Prometheus, OpenMetrics with exemplars), /healthz (the process
is up) and /readyz (the store and the broker answer). It reads the
outbox's backlog, the broker consumers' lag, and the dead letters and
quarantined messages through eos's admin API.

The store and broker flags are the demo's: by default the SQLite database
in --dir, and the run's embedded NATS server while the run is live (its
address is in DIR/nats.url), or one started over the run's files once it
has ended. A run on PostgreSQL (--postgres) or an external NATS server
(--nats) names its schema and streams after its run id (the demo's report
shows it): pass it as --run. eos demo --serve serves the same during the
run, from the demo itself.

Every --reconcile-every it reconciles the pipeline (package reconcile):
the ORDERS and PAYMENTS streams against what their consumers claimed,
the ledger for orders applied twice, the outbox for rows unsent past
--partial-after. Findings feed eos_missed_apply_total,
eos_duplicate_effects_total, eos_unexpected_applies_total and
eos_partial_commits_total, each finding counted once; messages younger
than --reconcile-settle are pending, not missed. eos reconcile does one
such pass and prints it.

Listening beyond loopback needs a bearer token (--token-file, or the
environment variable EOS_SERVE_TOKEN): every route but /healthz then asks
for "Authorization: Bearer <token>".

Flags:
`

// serveOptions are eos serve's flags.
type serveOptions struct {
	dir       string
	postgres  string
	natsURL   string
	run       string
	addr      string
	tokenFile string

	reconcileEvery  time.Duration
	reconcileSettle time.Duration
	partialAfter    time.Duration
}

// DefaultServeAddr is where eos serve listens by default: loopback only.
const DefaultServeAddr = "127.0.0.1:9464"

// tokenEnv carries the bearer token when no --token-file is given.
const tokenEnv = "EOS_SERVE_TOKEN"

func serveFlagSet(o *serveOptions) *flag.FlagSet {
	fs := flag.NewFlagSet("eos serve", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&o.dir, "dir", "eos-demo", "the demo's directory (its SQLite database, and its embedded NATS server's address or files)")
	fs.StringVar(&o.postgres, "postgres", "", "PostgreSQL URL (postgres://…) of a demo run on PostgreSQL; needs --run")
	fs.StringVar(&o.natsURL, "nats", "", "NATS URL (nats://…) of a demo run on an external server; needs --run")
	fs.StringVar(&o.run, "run", "", "the run id of a demo on PostgreSQL or external NATS (its report shows it)")
	fs.StringVar(&o.addr, "addr", DefaultServeAddr, "address to listen on; beyond loopback only with a token")
	fs.DurationVar(&o.reconcileEvery, "reconcile-every", 5*time.Minute, "reconcile the pipeline this often (0: never)")
	fs.DurationVar(&o.reconcileSettle, "reconcile-settle", time.Minute,
		"when reconciling, unapplied messages younger than this are pending, not missed (the consumers' lag)")
	fs.DurationVar(&o.partialAfter, "partial-after", 5*time.Minute,
		"when reconciling, an outbox row unsent for longer is a partial commit (0: do not check the outbox)")
	tokenFlag(fs, &o.tokenFile)
	return fs
}

// tokenFlag defines --token-file.
func tokenFlag(fs *flag.FlagSet, file *string) {
	fs.StringVar(file, "token-file", "", "file holding the bearer token of the status endpoints (default: $"+tokenEnv+")")
}

func parseServeFlags(args []string) (serveOptions, error) {
	var o serveOptions
	fs := serveFlagSet(&o)
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	switch {
	case fs.NArg() > 0:
		return o, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	case (o.postgres != "" || o.natsURL != "") && o.run == "":
		return o, errors.New("--run: required with --postgres or --nats (the demo's report shows the run id)")
	case o.run != "" && !validRunID(o.run):
		return o, fmt.Errorf("--run: want the demo's run id (lower-case hex), got %q", o.run)
	case o.postgres == "" && o.dir == "":
		return o, errors.New("--dir: empty")
	case o.reconcileEvery < 0 || o.reconcileSettle < 0 || o.partialAfter < 0:
		return o, errors.New("--reconcile-every, --reconcile-settle and --partial-after must not be negative")
	case o.reconcileEvery > 0 && o.reconcileEvery < time.Second:
		return o, fmt.Errorf("--reconcile-every: at least 1s, got %s", o.reconcileEvery)
	}
	return o, checkServiceURLs(o.postgres, o.natsURL)
}

// validRunID reports whether id looks like a run id (what the schema and
// stream names are made of).
func validRunID(id string) bool {
	if len(id) == 0 || len(id) > 32 {
		return false
	}
	for _, c := range id {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// maxTokenFile bounds what --token-file reads.
const maxTokenFile = 4096

// readToken returns the bearer token: the first line of file, or
// $EOS_SERVE_TOKEN when file is empty; "" when neither is set. Its errors
// never hold the token.
func readToken(file string) (string, error) {
	if file == "" {
		return strings.TrimSpace(os.Getenv(tokenEnv)), nil
	}
	f, err := os.Open(file)
	if err != nil {
		return "", fmt.Errorf("--token-file: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxTokenFile+1))
	if err != nil {
		return "", fmt.Errorf("--token-file: %w", err)
	}
	if len(b) > maxTokenFile {
		return "", fmt.Errorf("--token-file %s: longer than %d bytes", file, maxTokenFile)
	}
	line, _, _ := strings.Cut(string(b), "\n")
	tok := strings.TrimSpace(line)
	if tok == "" {
		return "", fmt.Errorf("--token-file %s: empty", file)
	}
	return tok, nil
}

func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	o, err := parseServeFlags(args)
	if errors.Is(err, flag.ErrHelp) {
		return printUsage(stdout, serveUsage, serveFlagSet(&serveOptions{}))
	}
	if err == nil {
		err = o.serve(ctx, stderr)
	}
	if err != nil {
		fmt.Fprintf(stderr, "eos serve: %s\n", oneLine(err))
		return exitUsage
	}
	return exitOK
}

// serve opens the pipeline, serves its status until ctx ends, and closes
// everything.
func (o serveOptions) serve(ctx context.Context, stderr io.Writer) error {
	token, err := readToken(o.tokenFile)
	if err != nil {
		return err
	}
	if err := serve.RequireToken(o.addr, token); err != nil {
		return err // before opening anything: the rule is the first thing said
	}
	p, closeAll, err := o.open(ctx)
	if err != nil {
		return err
	}
	defer closeAll()
	obs, err := observe.New(p, observe.Config{Token: token, Title: "eos serve", Logger: worker.NewLogger(stderr, slog.LevelWarn)})
	if err != nil {
		return err
	}
	srv, err := observe.Listen(o.addr, token, obs.Handler)
	if err != nil {
		return err
	}
	if o.reconcileEvery > 0 {
		rc := observe.ReconcileConfig{Settle: o.reconcileSettle, PartialAfter: o.partialAfter,
			Hooks: []reconcile.Hook{reconcile.DoneFunc(func(r *reconcile.Report, err error) { printReconciled(stderr, r, err) })}}
		if err := obs.ScheduleReconcile(ctx, rc, o.reconcileEvery); err != nil {
			srv.Close(context.Background())
			return err
		}
	}
	fmt.Fprintf(stderr, "eos serve: status page at %s (interrupt to stop)\n", srv.URL())
	select {
	case <-ctx.Done():
	case err := <-srv.Done():
		return err
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return srv.Close(sctx)
}

// printReconciled writes one line about a scheduled reconciliation.
func printReconciled(w io.Writer, r *reconcile.Report, err error) {
	switch {
	case err != nil:
		fmt.Fprintf(w, "eos serve: reconcile %s failed: %s\n", r.Consumer, oneLine(err))
	case r.OK():
		fmt.Fprintf(w, "eos serve: reconciled %s: ok (%d messages, %d pending)\n", r.Consumer, r.SourceEntries, r.Pending)
	default:
		fmt.Fprintf(w, "eos serve: reconciled %s: %d findings (missed %d, unexpected %d, duplicates %d, partial commits %d)\n",
			r.Consumer, r.Findings(), r.Missed.Count, r.Unexpected.Count, r.Duplicates.Count, r.Partial.Count)
	}
}

// open connects to the store and the broker the flags name; closeAll
// releases them.
func (o serveOptions) open(ctx context.Context) (p observe.Pipeline, closeAll func(), err error) {
	var closers []func()
	closeAll = func() {
		for i := len(closers) - 1; i >= 0; i-- {
			closers[i]()
		}
	}
	defer func() {
		if err != nil {
			closeAll()
		}
	}()
	sc := worker.StoreConfig{Kind: payments.SQLite, Path: filepath.Join(o.dir, scenario.DBFile)}
	if o.postgres != "" {
		sc = worker.StoreConfig{Kind: payments.Postgres, URL: o.postgres, Schema: scenario.RunSchema(o.run)}
	} else if _, err := os.Stat(sc.Path); err != nil {
		return p, closeAll, fmt.Errorf("--dir %s: no demo database: %w", o.dir, err)
	}
	if p.Store, err = worker.OpenStore(ctx, sc, 2); err != nil {
		return p, closeAll, err
	}
	closers = append(closers, func() { p.Store.Close() })

	js, embedded, closeNATS, err := openDemoNATS("eos-serve", o.natsURL, o.dir)
	if err != nil {
		return p, closeAll, err
	}
	closers = append(closers, closeNATS)
	topo := scenario.EmbeddedTopology
	if !embedded {
		topo = scenario.RunTopology(o.run)
	}
	p.Broker = observe.NATS(js, topo)
	return p, closeAll, nil
}
