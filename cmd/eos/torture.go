package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/eoskit/eos/examples/payments"
	"github.com/eoskit/eos/failpoint"
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
  failpoints      crash / error / delay at the inbox's and relay's failpoints
                  and inside the driver's commit, lost PubAcks and lost acks
                  in the NATS transport
  broker-restart  restart the embedded NATS server mid-run (not with --nats)
  duplicates      publish retries inside, and copies past, the broker's dedupe window
  poison          malformed messages mixed into the orders
  proxy           a TCP fault proxy between the workers and the producer on one
                  side and PostgreSQL (with --postgres) and NATS on the other
                  resets every connection, adds latency or blackholes the link
                  (store/broker outage) for 1-4 s

Besides lost, duplicated and unexpected, each run reports indeterminate
(orders whose publish ended without a PubAck, so the producer sent them
again) and recovered (those of them applied once), and in flight at fault
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

// Fault names.
const (
	faultKill          = "kill"
	faultFailpoints    = "failpoints"
	faultBrokerRestart = "broker-restart"
	faultDuplicates    = "duplicates"
	faultPoison        = "poison"
	faultProxy         = "proxy"
)

var allFaults = []string{faultKill, faultFailpoints, faultBrokerRestart, faultDuplicates, faultPoison, faultProxy}

// defaultFailpoints is what the failpoints fault arms in every worker: low
// probabilities per batch, crashes at each step of the inbox and the relay
// and inside the driver's commit (after every inbox step: an ack sent
// before the commit shows up as a loss); per message, lost PubAcks at the
// relay's publisher and lost acks at the consumers' subscribers.
const defaultFailpoints = "inbox.after_claim=crash@0.01,inbox.after_handler=delay:20ms@0.05," +
	"inbox.before_commit=error@0.05,driver.commit=crash@0.01,inbox.after_commit_before_ack=crash@0.01," +
	"relay.after_publish_before_mark=crash@0.02,natsjs.publish_ack_lost=error@0.001,natsjs.ack_lost=error@0.001"

// tortureOptions are the torture's flags.
type tortureOptions struct {
	dir        string
	runs       int
	events     int
	faultsRaw  string
	faults     map[string]bool
	workers    int
	seed       uint64
	json       bool
	postgres   string
	natsURL    string
	failpoints string
	rate       int
	timeout    time.Duration
	verbose    bool
}

func tortureFlagSet(o *tortureOptions) *flag.FlagSet {
	fs := flag.NewFlagSet("eos torture", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&o.dir, "dir", "eos-torture", "directory for the runs' files (one subdirectory per run)")
	fs.IntVar(&o.runs, "runs", 3, "number of runs")
	fs.IntVar(&o.events, "events", 10_000, "orders per run")
	fs.StringVar(&o.faultsRaw, "faults", "all", "faults to inject: all, or a comma-separated list of "+strings.Join(allFaults, ", "))
	fs.IntVar(&o.workers, "workers", 4, "order worker processes")
	fs.Uint64Var(&o.seed, "seed", 0, "seed of the first run; run i uses seed+i (0: pick one)")
	fs.BoolVar(&o.json, "json", false, "print the result as one JSON object on stdout")
	fs.StringVar(&o.postgres, "postgres", "", "PostgreSQL URL (postgres://…) instead of SQLite")
	fs.StringVar(&o.natsURL, "nats", "", "NATS URL (nats://…) instead of the embedded server")
	fs.StringVar(&o.failpoints, "failpoint-spec", defaultFailpoints, "failpoints armed in the workers by the failpoints fault")
	fs.IntVar(&o.rate, "rate", 0, "orders the producer publishes per second (0: as fast as the broker takes them;\n"+
		"then p50/p99 measure the backlog, not the pipeline)")
	fs.DurationVar(&o.timeout, "timeout", 0, "give up on a run after this long (0: 2m plus 6ms per event, plus the publishing time --rate sets)")
	fs.BoolVar(&o.verbose, "verbose", false, "workers log at info level to stderr")
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
		"--postgres", o.postgres, "--nats", o.natsURL, "--rate", fmt.Sprint(o.rate), "--timeout", o.timeout.String()}); err != nil {
		return o, errors.New(strings.ReplaceAll(err.Error(), "--orders", "--events"))
	}
	switch {
	case fs.NArg() > 0:
		return o, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	case o.runs < 1 || o.runs > 1000:
		return o, fmt.Errorf("--runs: want 1..1000, got %d", o.runs)
	}
	o.faults = map[string]bool{}
	for _, f := range strings.Split(o.faultsRaw, ",") {
		f = strings.TrimSpace(f)
		switch {
		case f == "all":
			for _, a := range allFaults {
				o.faults[a] = true
			}
		case f == "none" || f == "":
		case slices.Contains(allFaults, f):
			o.faults[f] = true
		default:
			return o, fmt.Errorf("--faults: unknown fault %q (want all, none or %s)", f, strings.Join(allFaults, ", "))
		}
	}
	if o.faults[faultFailpoints] {
		if err := checkFailpointSpec(o.failpoints); err != nil {
			return o, fmt.Errorf("--failpoint-spec: %w", err)
		}
	}
	// The bound on a run's drain: PostgreSQL + NATS runs of 100,000 orders
	// took 5-5.6 min alone on 2 vCPUs and over 7 min beside another run.
	if o.timeout == 0 {
		o.timeout = 2*time.Minute + time.Duration(o.events)*6*time.Millisecond + publishTime(o.events, o.rate)
	}
	return o, nil
}

// checkFailpointSpec parses spec as the workers will.
func checkFailpointSpec(spec string) error {
	_, err := failpoint.Parse(spec, rand.New(rand.NewPCG(1, 1)), workerFailpoints()...)
	return err
}

// plannedFaults splits the chosen faults into those the runs inject and
// those that do not apply to the chosen services.
func (o tortureOptions) plannedFaults() (faults, notApplicable []string) {
	faults = []string{}
	for _, f := range allFaults {
		if !o.faults[f] {
			continue
		}
		if f == faultBrokerRestart && o.natsURL != "" {
			notApplicable = append(notApplicable, f+" (external NATS)")
			continue
		}
		if f == faultProxy && len(proxiedServices(o.postgres, o.natsURL)) == 0 {
			notApplicable = append(notApplicable, f+" (SQLite has no network, NATS over TLS)")
			continue
		}
		faults = append(faults, f)
	}
	return faults, notApplicable
}

// tortureRun is the checker's verdict on one run. Every count comes from
// the producer's intent log, the broker's stream or the databases.
type tortureRun struct {
	Run  int    `json:"run,omitempty"`
	Seed uint64 `json:"seed,omitempty"`
	// Attempted: distinct orders the intent log announced; Acknowledged:
	// of those, the ones the broker stored (it acked the publish).
	Attempted    int64 `json:"attempted"`
	Acknowledged int64 `json:"acknowledged"`
	Applied      int64 `json:"applied"`    // attempted orders with a ledger row
	Lost         int64 `json:"lost"`       // acknowledged, never applied (or applied, never paid)
	Duplicated   int64 `json:"duplicated"` // ledger or payment rows beyond the first per order
	Unexpected   int64 `json:"unexpected"` // applied, never intended
	// Indeterminate: orders with a publish that ended without a PubAck
	// (error, timeout, broker restart), so the producer could not know
	// whether the broker held them and sent them again. Recovered: of
	// those, the ones applied, once (a queue checker's "recovered").
	Indeterminate int64 `json:"indeterminate"`
	Recovered     int64 `json:"recovered"`
	// InFlightAtFault: orders created before and applied after a kill or
	// a failpoint crash of a worker (an upper bound on the orders a worker
	// fault interrupted: the checker cannot see which batch a dead worker
	// held).
	InFlightAtFault int64 `json:"in_flight_at_fault"`
	Quarantined     int64 `json:"quarantined"`
	Poison          int64 `json:"poison"` // malformed inputs intended
	DeadLettered    int64 `json:"dead_lettered"`
	Conservation    bool  `json:"conservation"` // sum of balances == initial - sum of ledger
	ChargedOnce     int64 `json:"charged_once"` // orders charged exactly once at the provider
	ChargeAnomalies int64 `json:"charge_anomalies"`
	// SLIs.
	DuplicateEffectsPerMillion float64 `json:"duplicate_effects_per_million"`
	MissedApplies              int64   `json:"missed_applies"`
	PartialCommits             int64   `json:"partial_commits"` // outbox rows unsent at the end
	// DedupeStoreErrors: the inbox's store failures on the claim path
	// (each one a stall that acknowledged nothing), counted in the
	// workers' log; injected errors at inbox failpoints count too.
	DedupeStoreErrors int64   `json:"dedupe_store_errors"`
	Reprocessed       int64   `json:"reprocessed"`
	P50ms             float64 `json:"p50_ms"`
	P99ms             float64 `json:"p99_ms"`
	// The faults injected.
	Kills            int     `json:"kills"`             // SIGKILLs by the supervisor
	FailpointCrashes int     `json:"failpoint_crashes"` // SIGKILLs at failpoints
	Restarts         int     `json:"restarts"`          // broker restarts
	Republished      int64   `json:"republished"`       // copies past the dedupe window
	BrokerDuplicates int64   `json:"broker_duplicates"` // retries the broker dropped
	ProxyFaults      int     `json:"proxy_faults"`      // resets + latency + blackholes
	ProxyResets      int     `json:"proxy_resets"`      // every connection through a proxy closed
	ProxyLatency     int     `json:"proxy_latency"`     // latency added for a while
	ProxyBlackholes  int     `json:"proxy_blackholes"`  // outages: nothing forwarded for a while
	ElapsedS         float64 `json:"elapsed_s"`
	// Incomplete: the run timed out before the pipeline drained, so the
	// checks that need it drained (lost, partial commits, dead letters,
	// missing charges) were not made; IncompleteReason says why.
	Incomplete       bool     `json:"incomplete,omitempty"`
	IncompleteReason string   `json:"incomplete_reason,omitempty"`
	OK               bool     `json:"ok"`
	Failures         []string `json:"failures,omitempty"`
}

// tortureTotal sums the runs; P50/P99 are the worst run's.
type tortureTotal struct {
	tortureRun
	Proxy         string   `json:"proxy"` // the services behind fault proxies, or "off"
	Faults        []string `json:"faults"`
	NotApplicable []string `json:"not_applicable,omitempty"`
	Store         string   `json:"store"`
	Broker        string   `json:"broker"`
	// Rate is the producer's orders per second; 0: unthrottled, and then
	// P50/P99 measure how long orders waited in the backlog.
	Rate int `json:"rate"`
	// IncompleteRuns timed out before their pipeline drained.
	IncompleteRuns int `json:"incomplete_runs,omitempty"`
}

type tortureResult struct {
	Runs  []tortureRun `json:"runs"`
	Total tortureTotal `json:"total"`
}

func runTorture(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	o, err := parseTortureFlags(args)
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprint(stdout, tortureUsage)
		fs := tortureFlagSet(&tortureOptions{})
		fs.SetOutput(stdout)
		fs.PrintDefaults()
		return exitOK
	}
	if err != nil {
		fmt.Fprintf(stderr, "eos torture: %s (see eos torture -h)\n", oneLine(err))
		return exitUsage
	}
	if o.seed == 0 {
		o.seed = uint64(time.Now().UnixNano()%1_000_000) + 1
	}
	res := tortureResult{Runs: []tortureRun{}}
	tot := &res.Total
	tot.Proxy = "off"
	tot.Store, tot.Broker = string(payments.SQLite), "nats-embedded"
	if o.postgres != "" {
		tot.Store = string(payments.Postgres)
	}
	if o.natsURL != "" {
		tot.Broker = "nats"
	}
	tot.Faults, tot.NotApplicable = o.plannedFaults()
	tot.Rate = o.rate
	if slices.Contains(tot.Faults, faultProxy) {
		tot.Proxy = strings.Join(proxiedServices(o.postgres, o.natsURL), ",")
	}
	for i := 0; i < o.runs; i++ {
		r, code, err := tortureOnce(ctx, o, i, stderr)
		if err != nil {
			if ctx.Err() != nil {
				fmt.Fprintln(stderr, "eos torture: interrupted")
				return exitSignaled
			}
			fmt.Fprintf(stderr, "eos torture: run %d: %s\n", i+1, oneLine(err))
			return code
		}
		if !o.json {
			fmt.Fprintf(stderr, "eos torture: run %d/%d done: ok %v\n", i+1, o.runs, r.OK)
		}
		res.Runs = append(res.Runs, *r)
	}
	tot.sum(res.Runs)
	table := res.table()
	if o.json {
		fmt.Fprint(stderr, table)
		if err := json.NewEncoder(stdout).Encode(res); err != nil {
			fmt.Fprintf(stderr, "eos torture: writing the result: %v\n", err)
			return exitFailed
		}
	} else {
		fmt.Fprint(stdout, table)
	}
	return reportCode(tot.OK, len(tot.Failures) > 0, tot.IncompleteRuns > 0)
}

// tortureOnce runs run i and checks it. The exit code goes with an error.
func tortureOnce(ctx context.Context, o tortureOptions, i int, stderr io.Writer) (*tortureRun, int, error) {
	return checkedRun(ctx, o.runOptions(i), i, stderr)
}

// runOptions are the demo options of run i.
func (o tortureOptions) runOptions(i int) demoOptions {
	do := demoOptions{
		dir: filepath.Join(o.dir, fmt.Sprintf("run-%d", i+1)), orders: o.events, workers: o.workers, accounts: 1000,
		chaos: o.faults[faultKill], seed: o.seed + uint64(i), postgres: o.postgres, natsURL: o.natsURL, timeout: o.timeout,
		rate: o.rate, verbose: o.verbose, brokerRestart: o.faults[faultBrokerRestart] && o.natsURL == "",
		noDuplicates: !o.faults[faultDuplicates], noPoison: !o.faults[faultPoison], intentLog: true, quiet: o.json, command: "torture",
		proxy: o.faults[faultProxy] && len(proxiedServices(o.postgres, o.natsURL)) > 0,
	}
	if o.faults[faultFailpoints] {
		do.failpoints = o.failpoints
	}
	return do
}

// checkedRun runs the demo of do as run i and checks it.
func checkedRun(ctx context.Context, do demoOptions, i int, stderr io.Writer) (*tortureRun, int, error) {
	d, err := setupDemo(ctx, do, stderr)
	if err != nil {
		return nil, exitUsage, err
	}
	defer d.teardown()
	start := time.Now()
	rep, err := d.run(ctx)
	if err != nil {
		return nil, exitFailed, err
	}
	r, err := d.tortureCheck(ctx, rep)
	if err != nil {
		return nil, exitFailed, fmt.Errorf("check: %w", err)
	}
	r.Run, r.Seed = i+1, do.seed
	r.ElapsedS = math.Round(time.Since(start).Seconds()*10) / 10
	return r, exitOK, nil
}

// tortureCheck computes the verdict of a finished run from the intent log,
// the ORDERS stream, the databases and the provider. rep is the demo's own
// check, whose failures are carried over; a run that did not drain
// (rep.Incomplete) is checked only for what must hold at every moment.
func (d *demo) tortureCheck(ctx context.Context, rep *payments.Report) (*tortureRun, error) {
	f, err := d.runFacts(ctx)
	if err != nil {
		return nil, err
	}
	f.Incomplete = rep.Incomplete
	r := verdict(f)
	r.Incomplete = rep.Incomplete
	r.Reprocessed = rep.Reprocessed
	if r.DedupeStoreErrors, err = countLines(filepath.Join(d.dir, workersLog), storeFailureLog); err != nil {
		return nil, err
	}
	r.Kills, r.Restarts = rep.Kills, d.brokerRestarts()
	r.FailpointCrashes, _ = d.sup.crashCount()
	r.Republished, r.BrokerDuplicates = rep.Republished, rep.BrokerDuplicates
	pc := d.proxyCounts()
	r.ProxyFaults, r.ProxyResets, r.ProxyLatency, r.ProxyBlackholes = pc.Total(), pc.Resets, pc.Latency, pc.Blackholes
	for _, f := range rep.Failures {
		r.Failures = append(r.Failures, "demo check: "+f)
	}
	if rep.Incomplete {
		r.IncompleteReason = rep.IncompleteReason
	}
	r.OK = len(r.Failures) == 0 && !r.Incomplete
	return r, nil
}

// runFacts reads what the checker compares: the intent log, the ORDERS
// stream, the tables and the provider's records.
func (d *demo) runFacts(ctx context.Context) (runFacts, error) {
	var f runFacts
	var err error
	if f.Intents, err = readIntents(filepath.Join(d.dir, intentsFile)); err != nil {
		return f, err
	}
	if f.Stored, err = d.streamIDs(ctx, d.topo.OrdersStream); err != nil {
		return f, err
	}
	s := d.st.store
	if err := queryRows(ctx, s, "SELECT order_id, account, amount, created_us, applied_us FROM "+s.Table("ledger"), func(scan func(...any) error) error {
		var l ledgerEntry
		if err := scan(&l.OrderID, &l.Account, &l.Amount, &l.CreatedUS, &l.DoneUS); err != nil {
			return err
		}
		f.Ledger = append(f.Ledger, l)
		return nil
	}); err != nil {
		return f, err
	}
	f.PaymentRows = map[string]int{}
	if err := queryRows(ctx, s, "SELECT order_id, count(*) FROM "+s.Table("payments")+" GROUP BY order_id", func(scan func(...any) error) error {
		var id string
		var n int
		if err := scan(&id, &n); err != nil {
			return err
		}
		f.PaymentRows[id] = n
		return nil
	}); err != nil {
		return f, err
	}
	if err := s.DB.QueryRowContext(ctx, "SELECT coalesce(sum(balance), 0), coalesce(sum(initial), 0) FROM "+s.Table("accounts")).Scan(&f.Balances, &f.Initial); err != nil {
		return f, fmt.Errorf("accounts: %w", err)
	}
	for q, dst := range map[string]*int64{
		"SELECT count(*) FROM " + s.Table(payments.EOSPrefix+"outbox") + " WHERE sent_at IS NULL": &f.Unsent,
		"SELECT count(*) FROM " + s.Table(payments.EOSPrefix+"inbox_quarantine"):                  &f.Quarantined,
		// Dead-lettered inputs: an id-less one stored twice by the broker
		// (its resend could not be dropped) has a record per copy, counted once.
		"SELECT count(*) FROM (SELECT DISTINCT CASE WHEN invalid THEN payload END, CASE WHEN invalid THEN NULL ELSE id END FROM " +
			s.Table(payments.EOSPrefix+"dead_letters") + ") d": &f.DeadLettered,
	} {
		if err := s.DB.QueryRowContext(ctx, q).Scan(dst); err != nil {
			return f, fmt.Errorf("%s: %w", q, err)
		}
	}
	if f.Charges, err = d.provider.Charges(ctx); err != nil {
		return f, err
	}
	_, f.KillTimes = d.sup.crashCount()
	return f, nil
}

// inFlightAtKill reports whether a kill in times (sorted) fell between
// created and done (microseconds).
func inFlightAtKill(times []time.Time, createdUS, doneUS int64) bool {
	i, _ := slices.BinarySearchFunc(times, createdUS, func(t time.Time, us int64) int {
		switch u := t.UnixMicro(); {
		case u < us:
			return -1
		case u > us:
			return 1
		}
		return 0
	})
	return i < len(times) && times[i].UnixMicro() <= doneUS
}

// streamIDs reads every message of stream and counts them by message id
// (Nats-Msg-Id); messages without one count under "".
func (d *demo) streamIDs(ctx context.Context, stream string) (map[string]int, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	st, err := d.js.Stream(ctx, stream)
	if err != nil {
		return nil, fmt.Errorf("stream %s: %w", stream, err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		return nil, fmt.Errorf("stream %s: %w", stream, err)
	}
	ids := map[string]int{}
	last := info.State.LastSeq
	if info.State.Msgs == 0 {
		return ids, nil
	}
	cons, err := st.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	if err != nil {
		return nil, fmt.Errorf("stream %s: %w", stream, err)
	}
	for {
		batch, err := cons.Fetch(1000, jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			return nil, fmt.Errorf("stream %s: %w", stream, err)
		}
		n := 0
		for m := range batch.Messages() {
			n++
			ids[m.Headers().Get(jetstream.MsgIDHeader)]++
			md, err := m.Metadata()
			if err != nil {
				return nil, fmt.Errorf("stream %s: %w", stream, err)
			}
			if md.Sequence.Stream >= last {
				return ids, nil
			}
		}
		if err := batch.Error(); err != nil {
			return nil, fmt.Errorf("stream %s: %w", stream, err)
		}
		if n == 0 {
			return nil, fmt.Errorf("stream %s: read stopped before sequence %d", stream, last)
		}
	}
}

// storeFailureLog marks the inbox's log line for a store failure (see
// inbox.Processor.Run).
const storeFailureLog = `msg="eos inbox: store failure`

// countLines counts the lines of the file at path that contain substr.
func countLines(path, substr string) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	var n int64
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if bytes.Contains(sc.Bytes(), []byte(substr)) {
			n++
		}
	}
	if err := sc.Err(); err != nil {
		return 0, fmt.Errorf("%s: %w", path, err)
	}
	return n, nil
}

func queryRows(ctx context.Context, s payments.Store, q string, scan func(func(...any) error) error) error {
	rows, err := s.DB.QueryContext(ctx, q)
	if err != nil {
		return fmt.Errorf("%s: %w", q, err)
	}
	defer rows.Close()
	for rows.Next() {
		if err := scan(rows.Scan); err != nil {
			return fmt.Errorf("%s: %w", q, err)
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("%s: %w", q, err)
	}
	return nil
}

// sum fills t from the runs.
func (t *tortureTotal) sum(runs []tortureRun) {
	t.Conservation, t.OK = true, len(runs) > 0
	for _, r := range runs {
		t.Attempted += r.Attempted
		t.Acknowledged += r.Acknowledged
		t.Applied += r.Applied
		t.Lost += r.Lost
		t.Duplicated += r.Duplicated
		t.Unexpected += r.Unexpected
		t.Indeterminate += r.Indeterminate
		t.Recovered += r.Recovered
		t.InFlightAtFault += r.InFlightAtFault
		t.Quarantined += r.Quarantined
		t.Poison += r.Poison
		t.DeadLettered += r.DeadLettered
		t.Conservation = t.Conservation && r.Conservation
		t.ChargedOnce += r.ChargedOnce
		t.ChargeAnomalies += r.ChargeAnomalies
		t.MissedApplies += r.MissedApplies
		t.PartialCommits += r.PartialCommits
		t.Reprocessed += r.Reprocessed
		t.DedupeStoreErrors += r.DedupeStoreErrors
		t.P50ms, t.P99ms = max(t.P50ms, r.P50ms), max(t.P99ms, r.P99ms)
		t.Kills += r.Kills
		t.FailpointCrashes += r.FailpointCrashes
		t.Restarts += r.Restarts
		t.Republished += r.Republished
		t.BrokerDuplicates += r.BrokerDuplicates
		t.ProxyFaults += r.ProxyFaults
		t.ProxyResets += r.ProxyResets
		t.ProxyLatency += r.ProxyLatency
		t.ProxyBlackholes += r.ProxyBlackholes
		t.ElapsedS += r.ElapsedS
		t.OK = t.OK && r.OK
		if r.Incomplete {
			t.IncompleteRuns++
		}
		for _, f := range r.Failures {
			t.Failures = append(t.Failures, fmt.Sprintf("run %d: %s", r.Run, f))
		}
	}
	if t.Applied > 0 {
		t.DuplicateEffectsPerMillion = math.Round(float64(t.Duplicated)/float64(t.Applied)*1e6*10) / 10
	}
	t.ElapsedS = math.Round(t.ElapsedS*10) / 10
}

// table renders the result for people: a row per run and a total line.
func (res *tortureResult) table() string {
	var b bytes.Buffer
	t := res.Total
	rate := "unthrottled (p50/p99 include the backlog)"
	if t.Rate > 0 {
		rate = fmt.Sprintf("%d orders/s", t.Rate)
	}
	fmt.Fprintf(&b, "eos torture: %s + %s, faults %s, producer %s\n", t.Store, t.Broker, strings.Join(t.Faults, ","), rate)
	// The cause first: an incomplete run's counts are not verdicts.
	for _, r := range res.Runs {
		if r.Incomplete {
			fmt.Fprintf(&b, "  INCOMPLETE: run %d: %s; the checks that need a drained pipeline were skipped\n", r.Run, r.IncompleteReason)
		}
	}
	for _, na := range t.NotApplicable {
		fmt.Fprintf(&b, "  not applicable: %s\n", na)
	}
	fmt.Fprintf(&b, "  proxy faults: %d (resets %d, latency %d, blackholes %d; proxied: %s)\n",
		t.ProxyFaults, t.ProxyResets, t.ProxyLatency, t.ProxyBlackholes, t.Proxy)
	w := tabwriter.NewWriter(&b, 0, 0, 1, ' ', tabwriter.AlignRight)
	fmt.Fprintln(w, "run\tseed\tattempted\tacked\tapplied\tlost\tdup\tunexpected\tindeterminate\trecovered\tin flight at fault\tquarantined\tdead\tconserved\tcharged once\tpartial\tstore errors\treprocessed\tp50 ms\tp99 ms\tkills\tcrashes\tbroker restarts\tproxy faults\tok\t")
	line := func(name, seed string, r tortureRun) {
		fmt.Fprintf(w, "%s\t%s\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%v\t%d\t%d\t%d\t%d\t%.1f\t%.1f\t%d\t%d\t%d\t%d\t%v\t\n", name, seed,
			r.Attempted, r.Acknowledged, r.Applied, r.Lost, r.Duplicated, r.Unexpected, r.Indeterminate, r.Recovered, r.InFlightAtFault, r.Quarantined, r.DeadLettered,
			r.Conservation, r.ChargedOnce, r.PartialCommits, r.DedupeStoreErrors, r.Reprocessed, r.P50ms, r.P99ms, r.Kills, r.FailpointCrashes, r.Restarts, r.ProxyFaults, r.OK)
	}
	for _, r := range res.Runs {
		line(fmt.Sprint(r.Run), fmt.Sprint(r.Seed), r)
	}
	line("total", "", t.tortureRun)
	w.Flush()
	for _, f := range t.Failures {
		fmt.Fprintf(&b, "  FAILED: %s\n", f)
	}
	for _, r := range res.Runs {
		if !r.OK {
			fmt.Fprintf(&b, "  rerun run %d alone: the same flags with --runs 1 --seed %d\n", r.Run, r.Seed)
		}
	}
	verdict := "OK"
	switch {
	case len(t.Failures) > 0 || (!t.OK && t.IncompleteRuns == 0):
		verdict = "FAILED"
	case t.IncompleteRuns > 0:
		verdict = "INCOMPLETE"
	}
	fmt.Fprintf(&b, "verdict: %s (duplicate effects per million %.1f)\n", verdict, t.DuplicateEffectsPerMillion)
	return b.String()
}
