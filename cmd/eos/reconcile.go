package main

import (
	"context"
	"encoding/json"
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
	"github.com/eoskit/eos/torture/observe"
	"github.com/eoskit/eos/torture/scenario"
	"github.com/eoskit/eos/torture/worker"
)

const reconcileUsage = `Usage: eos reconcile [flags]

Compares what a consumer applied with what it was sent: reads a JetStream
stream (headers only) and the consumer's inbox claims, and reports missed
applies (in the stream, never applied), unexpected applies (applied, not
in the stream), duplicate effects (ids --duplicates finds applied more
than once) and partial commits (outbox rows unsent for longer than
--partial-after). The exit status is 0 when nothing is found, 1 on any
finding, 2 for bad flags, unreachable services or a failed read.

By default it reads an eos demo's files in --dir: the SQLite database,
and the ORDERS stream through the run's embedded NATS server while the
run is live (its address is in DIR/nats.url), or a server started over
the run's files once it has ended. --postgres (and --schema) and --nats
read real servers, e.g. a demo run with --keep (its schema is
eos_demo_<run id>).

Flags:
`

// reconcileOptions are eos reconcile's flags.
type reconcileOptions struct {
	dir          string
	postgres     string
	schema       string
	natsURL      string
	stream       string
	subject      string
	consumer     string
	firstSeq     uint64
	lastSeq      uint64
	from, to     string
	fromT, toT   time.Time
	partialAfter time.Duration
	retention    time.Duration
	settle       time.Duration
	duplicates   string
	sample       int
	json         bool
}

func reconcileFlagSet(o *reconcileOptions) *flag.FlagSet {
	fs := flag.NewFlagSet("eos reconcile", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&o.dir, "dir", "eos-demo", "directory of the demo's files (SQLite database, embedded NATS store)")
	fs.StringVar(&o.postgres, "postgres", "", "PostgreSQL URL (postgres://…) instead of the SQLite file in --dir")
	fs.StringVar(&o.schema, "schema", "", "PostgreSQL schema of eos's tables and the demo's (a demo's: eos_demo_<run id>; default: the connection's search_path)")
	fs.StringVar(&o.natsURL, "nats", "", "NATS URL (nats://…) instead of the embedded store in --dir")
	fs.StringVar(&o.stream, "stream", "ORDERS", "the stream the consumer reads")
	fs.StringVar(&o.subject, "subject", "", "only the stream's messages on this subject (wildcards allowed)")
	fs.StringVar(&o.consumer, "consumer", payments.OrdersConsumer, "the inbox consumer to check")
	fs.Uint64Var(&o.firstSeq, "first-seq", 0, "first stream sequence to check (0: the stream's first)")
	fs.Uint64Var(&o.lastSeq, "last-seq", 0, "last stream sequence to check (0: the stream's last)")
	fs.StringVar(&o.from, "from", "", "check only messages the stream stored at or after this time (RFC 3339)")
	fs.StringVar(&o.to, "to", "", "check only messages the stream stored at or before this time (RFC 3339)")
	fs.DurationVar(&o.partialAfter, "partial-after", time.Minute, "an outbox row unsent for longer is a partial commit (0: do not check the outbox)")
	fs.DurationVar(&o.retention, "retention", 0, "the compactor's inbox retention: older unapplied messages are uncheckable, not missed (0: never compacted)")
	fs.DurationVar(&o.settle, "settle", 0, "unapplied messages younger than this are pending, not missed (the consumer's lag)")
	fs.StringVar(&o.duplicates, "duplicates", "", "SQL query returning (id, count) of the consumer's effects; count > 1 is a duplicate "+
		"(default for the demo's orders consumer: its ledger)")
	fs.IntVar(&o.sample, "sample", reconcile.DefaultSampleSize, "ids listed per kind of finding")
	fs.BoolVar(&o.json, "json", false, "print the report as one JSON object on stdout")
	return fs
}

func parseReconcileFlags(args []string) (reconcileOptions, error) {
	var o reconcileOptions
	fs := reconcileFlagSet(&o)
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	switch {
	case fs.NArg() > 0:
		return o, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	case o.postgres == "" && o.dir == "", o.natsURL == "" && o.dir == "":
		return o, errors.New("--dir: empty")
	case o.stream == "":
		return o, errors.New("--stream: empty")
	case o.consumer == "":
		return o, errors.New("--consumer: empty")
	case o.partialAfter < 0 || o.retention < 0 || o.settle < 0:
		return o, errors.New("--partial-after, --retention and --settle must not be negative")
	case o.sample < 1 || o.sample > 10_000:
		return o, fmt.Errorf("--sample: want 1..10000, got %d", o.sample)
	case o.lastSeq != 0 && o.lastSeq < o.firstSeq:
		return o, fmt.Errorf("--last-seq %d is before --first-seq %d", o.lastSeq, o.firstSeq)
	case o.postgres == "" && o.schema != "":
		return o, errors.New("--schema: PostgreSQL only (with --postgres)")
	}
	for _, t := range []struct {
		flag, text string
		dst        *time.Time
	}{{"--from", o.from, &o.fromT}, {"--to", o.to, &o.toT}} {
		if t.text == "" {
			continue
		}
		var err error
		if *t.dst, err = time.Parse(time.RFC3339Nano, t.text); err != nil {
			return o, fmt.Errorf("%s: want a time like 2026-01-02T15:04:05Z, got %q", t.flag, t.text)
		}
	}
	if !o.fromT.IsZero() && !o.toT.IsZero() && o.toT.Before(o.fromT) {
		return o, fmt.Errorf("--to %s is before --from %s", o.to, o.from)
	}
	if err := checkServiceURLs(o.postgres, o.natsURL); err != nil {
		return o, err
	}
	if o.duplicates == "" && o.consumer == payments.OrdersConsumer {
		o.duplicates = observe.DuplicatesQuery(o.schema)
	}
	return o, nil
}

func runReconcile(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	o, err := parseReconcileFlags(args)
	if errors.Is(err, flag.ErrHelp) {
		return printUsage(stdout, reconcileUsage, reconcileFlagSet(&reconcileOptions{}))
	}
	fail := func(err error) int {
		fmt.Fprintf(stderr, "eos reconcile: %s\n", oneLine(err))
		return exitUsage
	}
	if err != nil {
		fmt.Fprintf(stderr, "eos reconcile: %s (see eos reconcile -h)\n", oneLine(err))
		return exitUsage
	}
	st, err := openReconcileStore(ctx, o)
	if err != nil {
		return fail(err)
	}
	defer st.Close()
	js, _, closeJS, err := openDemoNATS("eos-reconcile", o.natsURL, o.dir)
	if err != nil {
		return fail(err)
	}
	defer closeJS()
	src := reconcile.JetStreamSource{JS: js, Stream: o.stream, Subject: o.subject, FirstSeq: o.firstSeq, LastSeq: o.lastSeq,
		From: o.fromT, To: o.toT}
	last := time.Now()
	cfg := reconcile.Config{Consumer: o.consumer, PartialAfter: o.partialAfter, Retention: o.retention, Settle: o.settle,
		DB: st.Tables.DB, Duplicates: o.duplicates, SampleSize: o.sample,
		Logger: slog.New(slog.DiscardHandler), // the report says it all
		Progress: func(n int64) {
			if time.Since(last) >= 2*time.Second {
				last = time.Now()
				fmt.Fprintf(stderr, "eos reconcile: %d messages read\n", n)
			}
		}}
	r, err := reconcile.New(st.Driver, src, cfg)
	if err != nil {
		return fail(err)
	}
	rep, err := r.Run(ctx)
	if err != nil {
		if ctx.Err() != nil {
			fmt.Fprintln(stderr, "eos reconcile: interrupted")
			return exitSignaled
		}
		return fail(err)
	}
	if o.json {
		if err := json.NewEncoder(stdout).Encode(rep); err != nil {
			fmt.Fprintf(stderr, "eos reconcile: writing the report: %v\n", err)
			return exitFailed
		}
	} else {
		printReconcile(stdout, rep)
	}
	if !rep.OK() {
		return exitFailed
	}
	return exitOK
}

// openReconcileStore opens the database of o, refusing to create one.
func openReconcileStore(ctx context.Context, o reconcileOptions) (*worker.Store, error) {
	if o.postgres != "" {
		return worker.OpenStore(ctx, worker.StoreConfig{Kind: payments.Postgres, URL: o.postgres, Schema: o.schema}, 2)
	}
	path := filepath.Join(o.dir, scenario.DBFile)
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("--dir: no demo database: %w", err)
	}
	return worker.OpenStore(ctx, worker.StoreConfig{Kind: payments.SQLite, Path: path}, 1)
}

// printReconcile writes a report for people.
func printReconcile(w io.Writer, r *reconcile.Report) {
	fmt.Fprintf(w, "eos reconcile: consumer %s against %s\n", r.Consumer, r.Source)
	fmt.Fprintf(w, "  messages        %d (%d applied, %d without an id)\n", r.SourceEntries, r.Applied, r.SourceWithoutID)
	fmt.Fprintf(w, "  uncheckable     %d (older than --retention)\n", r.Uncheckable)
	fmt.Fprintf(w, "  pending         %d (younger than --settle)\n", r.Pending)
	finding := func(name string, f reconcile.Found, checked bool, why string) {
		if !checked {
			fmt.Fprintf(w, "  %-15s not checked (%s)\n", name, why)
			return
		}
		fmt.Fprintf(w, "  %-15s %d\n", name, f.Count)
		if len(f.Sample) > 0 {
			printWrapped(w, "    ", strings.Join(f.Sample, " "))
		}
	}
	finding("missed", r.Missed, true, "")
	finding("unexpected", r.Unexpected, r.UnexpectedChecked, "too many messages to remember")
	finding("duplicates", r.Duplicates, r.DuplicatesChecked, "no --duplicates query")
	finding("partial commits", r.Partial, r.PartialChecked, "--partial-after 0")
	v := "OK"
	if !r.OK() {
		v = fmt.Sprintf("FINDINGS (%d)", r.Findings())
	}
	fmt.Fprintf(w, "verdict: %s\n", v)
}
