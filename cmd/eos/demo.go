package main

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/eoskit/eos/examples/payments"
	"github.com/eoskit/eos/internal/redact"
	"github.com/eoskit/eos/transport/natsjs"
	"github.com/eoskit/eos/transport/natsjs/natsembed"
)

const demoUsage = `Usage: eos demo [flags]

Runs the payments scenario end to end and checks it: a producer emits
orders into stream ORDERS (some publishes retried with the same id, some
orders published again after the stream's dedupe window, a few malformed
messages); order workers apply each order once (debit, ledger row, outbox
charge in one transaction); a relay forwards the charges to stream
PAYMENTS; a payment worker charges each order once at a provider simulator
(HTTP, Idempotency-Key). Workers are child processes; --chaos SIGKILLs and
restarts them at random. The run ends when every order is applied and
charged, or as soon as the pipeline is idle (nothing pending, nothing
moving) without being complete; then the databases are read and every
invariant checked. The exit status is 0 when all hold, 1 when one fails, 2
for bad flags or unreachable services, 3 when the run timed out before the
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

	// Set by eos torture only.
	failpoints    string // failpoint spec armed in every worker (empty: none)
	brokerRestart bool   // restart the embedded NATS server now and then
	noDuplicates  bool   // the producer neither retries nor copies past the dedupe window
	noPoison      bool   // no malformed inputs
	intentLog     bool   // the producer logs its intents to DIR/intentsFile first
	proxy         bool   // workers reach PostgreSQL and NATS through fault proxies
	quiet         bool   // no progress bar
	command       string // the subcommand shown in progress lines; default "demo"

	// onStart, set by tests only, runs in its own goroutine once the
	// workers and the producer have started (e.g. to steal a message).
	onStart func(ctx context.Context, d *demo)
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
	if o.postgres != "" {
		if u, err := url.Parse(o.postgres); err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") || u.Host == "" {
			return o, fmt.Errorf("--postgres: want a URL like postgres://user@host:5432/db, got %q", redact.URL(o.postgres))
		}
	}
	if o.natsURL != "" {
		if u, err := url.Parse(o.natsURL); err != nil || (u.Scheme != "nats" && u.Scheme != "tls") || u.Host == "" {
			return o, fmt.Errorf("--nats: want a URL like nats://host:4222, got %q", redact.URL(o.natsURL))
		}
	}
	if o.timeout == 0 {
		o.timeout = 2*time.Minute + time.Duration(o.orders)*3*time.Millisecond + publishTime(o.orders, o.rate)
	}
	return o, nil
}

func runDemo(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	o, err := parseDemoFlags(args)
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprint(stdout, demoUsage)
		fs := demoFlagSet(&demoOptions{})
		fs.SetOutput(stdout)
		fs.PrintDefaults()
		return exitOK
	}
	if err != nil {
		fmt.Fprintf(stderr, "eos demo: %s (see eos demo -h)\n", oneLine(err))
		return exitUsage
	}
	d, err := setupDemo(ctx, o, stderr)
	if err != nil {
		if ctx.Err() != nil {
			fmt.Fprintln(stderr, "eos demo: interrupted")
			return exitSignaled
		}
		fmt.Fprintf(stderr, "eos demo: %s\n", oneLine(err))
		return exitUsage
	}
	defer d.teardown()
	rep, err := d.run(ctx)
	if err != nil {
		if ctx.Err() != nil {
			fmt.Fprintln(stderr, "eos demo: interrupted")
			return exitSignaled
		}
		fmt.Fprintf(stderr, "eos demo: %s\n", oneLine(err))
		return exitFailed
	}
	if o.json {
		fmt.Fprint(stderr, rep.Table())
		if err := json.NewEncoder(stdout).Encode(rep); err != nil {
			fmt.Fprintf(stderr, "eos demo: writing the report: %v\n", err)
			return exitFailed
		}
	} else {
		fmt.Fprint(stdout, rep.Table())
	}
	return reportCode(rep.OK, len(rep.Failures) > 0, rep.Incomplete)
}

// reportCode is the exit code of a checked run: a failed check wins over
// an incomplete run, which is not a verdict either way.
func reportCode(ok, failed, incomplete bool) int {
	switch {
	case failed || (!ok && !incomplete):
		return exitFailed
	case incomplete:
		return exitIncomplete
	}
	return exitOK
}

// oneLine keeps an error message on one line and masks the secrets of any
// connection string it quotes (a driver's error may echo one).
func oneLine(err error) string {
	return redact.Text(strings.Join(strings.Fields(strings.ReplaceAll(err.Error(), "\n", "; ")), " "))
}

// demo is one run: its database, broker, provider and workers.
type demo struct {
	opts   demoOptions
	stderr io.Writer
	exe    string
	runID  string
	dir    string

	storeCfg storeConfig
	st       *openedStore
	schemaUp bool // the run's PostgreSQL schema exists

	srv       *natsembed.Server // nil with --nats
	nc        *nats.Conn
	js        jetstream.JetStream
	prodNC    *nats.Conn // the producer's own, through the NATS fault proxy
	natsURL   string     // what the workers connect to
	topo      topology
	streamsUp bool // the run's streams exist
	consumers []jetstream.Consumer

	provider    *payments.Provider
	httpSrv     *http.Server
	providerURL string

	childOut io.Writer
	logFile  *os.File

	orders []payments.Order
	bad    []payments.BadInput

	sup     *supervisor // of the last run
	intents *intentLog  // with opts.intentLog

	// What the workers connect to: the services, or the fault proxies in
	// front of them (opts.proxy).
	workerStore storeConfig
	workerNATS  string
	proxies     []namedProxy

	srvMu    sync.Mutex // guards srv across broker restarts
	restarts int        // broker restarts
}

// initialBalance of every account, in cents.
const initialBalance = 10_000_000_00

// Files in the demo's directory; a directory holding demoMarker is the
// demo's and its files are replaced by the next run.
const (
	demoMarker   = ".eos-demo"
	dbFile       = "eos.db"
	providerFile = "provider.db"
	natsDir      = "nats"
	workersLog   = "workers.log"
	intentsFile  = "intents.jsonl"
)

func setupDemo(ctx context.Context, o demoOptions, stderr io.Writer) (d *demo, err error) {
	d = &demo{opts: o, stderr: stderr, childOut: stderr}
	defer func() {
		if err != nil {
			d.teardown()
		}
	}()
	var id [6]byte
	rand.Read(id[:])
	d.runID = hex.EncodeToString(id[:])
	if d.opts.seed == 0 {
		d.opts.seed = uint64(binary.BigEndian.Uint32(id[:4]))
	}
	if d.exe, err = os.Executable(); err != nil {
		return d, fmt.Errorf("cannot find this executable to start workers: %w", err)
	}
	if d.dir, err = filepath.Abs(o.dir); err != nil {
		return d, fmt.Errorf("--dir: %w", err)
	}
	if err := prepareDir(d.dir); err != nil {
		return d, err
	}

	// The database: eos's tables, then the scenario's.
	if o.postgres != "" {
		d.storeCfg = storeConfig{Kind: payments.Postgres, URL: o.postgres, Schema: "eos_demo_" + d.runID}
	} else {
		d.storeCfg = storeConfig{Kind: payments.SQLite, Path: filepath.Join(d.dir, dbFile)}
	}
	if d.st, err = openStore(ctx, d.storeCfg, 4); err != nil {
		return d, err
	}
	d.schemaUp = d.storeCfg.Kind == payments.Postgres
	if _, err := d.st.drv.Migrator().Up(ctx); err != nil {
		return d, fmt.Errorf("migrate the database: %w", err)
	}
	if err := d.st.store.Setup(ctx, o.accounts, initialBalance); err != nil {
		return d, err
	}

	// The broker.
	if o.natsURL != "" {
		if d.nc, err = nats.Connect(o.natsURL, nats.Name("eos-demo"), nats.Timeout(5*time.Second)); err != nil {
			return d, fmt.Errorf("cannot connect to NATS at %s: %w", redact.URL(o.natsURL), err)
		}
		d.natsURL = o.natsURL
		d.topo = topology{OrdersStream: "ORDERS_" + strings.ToUpper(d.runID), PaymentsStream: "PAYMENTS_" + strings.ToUpper(d.runID),
			Base: "eosdemo." + d.runID}
	} else {
		if d.srv, err = natsembed.Start(natsembed.Config{Dir: filepath.Join(d.dir, natsDir), Listen: true}); err != nil {
			return d, fmt.Errorf("start the embedded NATS server: %w", err)
		}
		if o.brokerRestart {
			// Over TCP with reconnects: the server goes away and comes back.
			d.nc, err = nats.Connect(d.srv.ClientURL(), nats.Name("eos-demo"), nats.MaxReconnects(-1),
				nats.ReconnectWait(100*time.Millisecond), nats.Timeout(5*time.Second))
		} else {
			d.nc, err = d.srv.Connect()
		}
		if err != nil {
			return d, fmt.Errorf("connect to the embedded NATS server: %w", err)
		}
		d.natsURL = d.srv.ClientURL()
		d.topo = topology{OrdersStream: "ORDERS", PaymentsStream: "PAYMENTS", Base: "demo"}
	}
	if d.js, err = jetstream.New(d.nc); err != nil {
		return d, err
	}
	if err := d.provision(ctx); err != nil {
		return d, err
	}
	d.workerStore, d.workerNATS = d.storeCfg, d.natsURL
	if o.proxy {
		if err := d.startProxies(); err != nil {
			return d, err
		}
	}

	// The provider simulator.
	pcfg := payments.ProviderConfig{Seed: d.opts.seed}
	if o.chaos {
		pcfg.FailBefore, pcfg.FailAfter = 0.01, 0.01
	}
	if d.provider, err = payments.OpenProvider(ctx, filepath.Join(d.dir, providerFile), pcfg); err != nil {
		return d, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return d, fmt.Errorf("provider simulator: %w", err)
	}
	d.httpSrv = &http.Server{Handler: d.provider, ReadHeaderTimeout: 10 * time.Second}
	go d.httpSrv.Serve(ln)
	d.providerURL = "http://" + ln.Addr().String()

	// The workers' logs go to a file (also to the terminal with --verbose);
	// the torture checker counts the inbox's store failures in it.
	if d.logFile, err = createPrivate(filepath.Join(d.dir, workersLog), false); err != nil {
		return d, err
	}
	d.childOut = d.logFile
	if o.verbose {
		d.childOut = io.MultiWriter(stderr, d.logFile)
	}
	d.orders = payments.GenerateOrders(d.opts.seed, o.orders, o.accounts)
	if !o.noPoison {
		d.bad = payments.Malformed(payments.Account(0, o.accounts))
	}
	if o.intentLog {
		if d.intents, err = createIntentLog(filepath.Join(d.dir, intentsFile)); err != nil {
			return d, err
		}
	}
	return d, nil
}

// Modes of what the demo creates: its files hold the workers' logs, the
// intent log and the provider's records, for the user running it only.
const (
	privateDir  = 0o700
	privateFile = 0o600
)

// createPrivate creates (or truncates, with trunc; else appends to) the
// file at path, readable by its owner only.
func createPrivate(path string, trunc bool) (*os.File, error) {
	flag := os.O_CREATE | os.O_WRONLY | os.O_APPEND
	if trunc {
		flag = os.O_CREATE | os.O_WRONLY | os.O_TRUNC
	}
	f, err := os.OpenFile(path, flag, privateFile)
	if err != nil {
		return nil, err
	}
	// A file left by an older run keeps its mode through O_CREATE.
	if err := f.Chmod(privateFile); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// prepareDir creates dir (0700, and its missing parents), or empties the
// demo's files from an earlier run. It refuses a non-empty directory the
// demo did not make.
func prepareDir(dir string) error {
	if err := os.MkdirAll(dir, privateDir); err != nil {
		return fmt.Errorf("--dir: %w", err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("--dir: %w", err)
	}
	if len(entries) > 0 {
		if _, err := os.Stat(filepath.Join(dir, demoMarker)); err != nil {
			return fmt.Errorf("--dir %s is not empty and was not made by eos demo; name a new directory", dir)
		}
		for _, name := range []string{dbFile, dbFile + "-wal", dbFile + "-shm", dbFile + lockSuffix, providerFile, providerFile + "-wal", providerFile + "-shm", natsDir, workersLog, intentsFile} {
			if err := os.RemoveAll(filepath.Join(dir, name)); err != nil {
				return fmt.Errorf("--dir: clearing the last run: %w", err)
			}
		}
	}
	// Empty or the demo's own: it is about to hold the run's files.
	if err := os.Chmod(dir, privateDir); err != nil {
		return fmt.Errorf("--dir: %w", err)
	}
	f, err := createPrivate(filepath.Join(dir, demoMarker), true)
	if err == nil {
		_, err = f.WriteString("files of eos demo; the next run replaces them\n")
		err = errors.Join(err, f.Close())
	}
	if err != nil {
		return fmt.Errorf("--dir: %w", err)
	}
	return nil
}

// provision creates the streams and the durable consumers.
func (d *demo) provision(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if _, err := d.js.AccountInfo(ctx); err != nil {
		return fmt.Errorf("NATS at %s: JetStream is not available: %w", redact.URL(d.natsURL), err)
	}
	t := d.topo
	d.streamsUp = true
	if _, _, err := natsjs.EnsureStream(ctx, d.js, natsjs.StreamConfig{Name: t.OrdersStream, Subjects: []string{t.ordersSubject()},
		Duplicates: ordersDupWindow}); err != nil {
		return err
	}
	if _, _, err := natsjs.EnsureStream(ctx, d.js, natsjs.StreamConfig{Name: t.PaymentsStream, Subjects: []string{t.paymentsSubject()}}); err != nil {
		return err
	}
	for _, c := range []natsjs.ConsumerConfig{
		{Stream: t.OrdersStream, Durable: ordersDurable, AckWait: ackWait, MaxDeliver: maxDeliver},
		{Stream: t.PaymentsStream, Durable: paymentsDurable, AckWait: ackWait, MaxDeliver: maxDeliver},
	} {
		cons, _, err := natsjs.EnsureConsumer(ctx, d.js, c)
		if err != nil {
			return err
		}
		d.consumers = append(d.consumers, cons)
	}
	return nil
}

// workerConfigs lists the children: the order workers, the relay
// (exactly one: one relay per SQLite database) and the payment worker.
func (d *demo) workerConfigs() []workerConfig {
	level := "warn"
	if d.opts.verbose {
		level = "info"
	}
	base := workerConfig{Store: d.workerStore, NATSURL: d.workerNATS, Topology: d.topo, ProviderURL: d.providerURL, LogLevel: level,
		Failpoints: d.opts.failpoints, FailpointSeed: d.opts.seed}
	var out []workerConfig
	for i := 0; i < d.opts.workers; i++ {
		c := base
		c.Name, c.Role = fmt.Sprintf("orders-%d", i), roleOrders
		out = append(out, c)
	}
	relay, pay := base, base
	relay.Name, relay.Role = "relay", roleRelay
	pay.Name, pay.Role = "payments", rolePayments
	return append(out, relay, pay)
}

// run starts the workers and the producer, waits until every order is
// applied and charged (or the timeout), stops the workers and checks.
func (d *demo) run(ctx context.Context) (*payments.Report, error) {
	sup, err := newSupervisor(d.exe, d.childOut, d.workerConfigs())
	if err != nil {
		return nil, err
	}
	sup.selfKills = d.opts.failpoints != ""
	d.sup = sup
	start := time.Now()
	runCtx, stopRun := context.WithCancel(ctx)
	stopped := false
	var restarter sync.WaitGroup
	brokerFatal := make(chan error, 1)
	stopAll := func() {
		if !stopped {
			stopped = true
			stopRun()
			restarter.Wait()
			sup.stop(10 * time.Second)
		}
	}
	defer stopAll()
	sup.start(runCtx)

	var brokerDups atomic.Int64
	prodJS, err := d.producerJetStream()
	if err != nil {
		return nil, err
	}
	pub, err := natsjs.NewPublisher(prodJS, natsjs.PublisherConfig{OnDuplicate: func(string, string) { brokerDups.Add(1) }})
	if err != nil {
		return nil, err
	}
	prod := &producer{pub: pub, js: prodJS, topo: d.topo, orders: d.orders, bad: d.bad, rate: d.opts.rate,
		rnd: mrand.New(mrand.NewPCG(d.opts.seed, 1)), retryRate: retryRate, copyRate: copyRate, intents: d.intents}
	if d.opts.noDuplicates {
		prod.retryRate, prod.copyRate = 0, 0
	}
	prodDone := make(chan error, 1)
	go func() { prodDone <- prod.run(runCtx) }()
	if d.opts.chaos {
		go sup.chaos(runCtx, mrand.New(mrand.NewPCG(d.opts.seed, 2)))
	}
	if d.opts.proxy {
		restarter.Add(1)
		go func() {
			defer restarter.Done()
			d.proxyFaults(runCtx, mrand.New(mrand.NewPCG(d.opts.seed, 4)))
		}()
	}
	if d.opts.brokerRestart && d.srv != nil {
		restarter.Add(1)
		go func() {
			defer restarter.Done()
			if err := d.restartBroker(runCtx, mrand.New(mrand.NewPCG(d.opts.seed, 3))); err != nil {
				brokerFatal <- err
			}
		}()
	}

	if d.opts.onStart != nil {
		go d.opts.onStart(runCtx, d)
	}

	barOut := d.stderr
	if d.opts.quiet {
		barOut = io.Discard
	}
	bar := newProgressBar(barOut, cmp.Or(d.opts.command, "demo"))
	deadline := time.NewTimer(d.opts.timeout)
	defer deadline.Stop()
	tick := time.NewTicker(500 * time.Millisecond) // polling external processes' progress in the databases
	defer tick.Stop()
	produced, timedOut := false, false
	var pollErr error
	var idle idleDetector
wait:
	for {
		select {
		case <-ctx.Done():
			bar.finish()
			return nil, ctx.Err()
		case err := <-prodDone:
			if err != nil {
				bar.finish()
				return nil, fmt.Errorf("producer: %w", err)
			}
			produced, prodDone = true, nil
		case err := <-brokerFatal:
			bar.finish()
			return nil, err
		case err := <-sup.fatal:
			bar.finish()
			return nil, fmt.Errorf("%w; see %s", err, filepath.Join(d.dir, workersLog))
		case <-deadline.C:
			timedOut = true
			break wait
		case <-tick.C:
			st, err := d.observe(ctx)
			pollErr = err
			if err != nil {
				idle.reset()
				continue // a busy database now and then; the deadline bounds it
			}
			kills, _ := sup.counts()
			bar.update(progressState{orders: int64(len(d.orders)), published: prod.published.Load(), applied: st.applied,
				charged: st.charged, deadLettered: st.deadLettered, kills: kills})
			// A run ends once every fault it injects has struck at least
			// once, so that a fast machine cannot finish before the first.
			if !produced || !d.faultsStruck() {
				idle.reset()
				continue
			}
			// Complete, or idle without being complete: something was lost,
			// and the checks say what now rather than at the timeout.
			if d.complete(st) || idle.observe(st) {
				break wait
			}
		}
	}
	elapsed := time.Since(start)
	bar.finish()
	stopAll()

	broker, err := d.brokerStats(ctx)
	if err != nil {
		return nil, err
	}
	charges, err := d.provider.Charges(ctx)
	if err != nil {
		return nil, err
	}
	pstats, err := d.provider.Stats(ctx)
	if err != nil {
		return nil, err
	}
	rep, err := payments.Check(ctx, d.st.store, payments.CheckInput{Orders: d.orders, Malformed: d.bad, Charges: charges, Broker: broker,
		Incomplete: timedOut})
	if err != nil {
		return nil, err
	}
	rep.Kills, rep.Restarts = sup.counts()
	rep.BrokerDuplicates = brokerDups.Load()
	rep.Republished = prod.republished.Load()
	rep.ProviderReplays = pstats.Replays
	rep.ElapsedS = float64(elapsed.Round(10*time.Millisecond)) / float64(time.Second)
	rep.Store = string(d.storeCfg.Kind)
	rep.Broker = "nats-embedded"
	if d.srv == nil {
		rep.Broker = "nats"
	}
	rep.Workers, rep.Seed, rep.Chaos = d.opts.workers, d.opts.seed, d.opts.chaos
	if timedOut {
		rep.IncompleteReason = fmt.Sprintf("timed out after %s before the pipeline drained (applied %d of %d orders, charged %d)",
			d.opts.timeout, rep.Applied, rep.Orders, rep.Charges)
		if pollErr != nil {
			rep.IncompleteReason += fmt.Sprintf(" (last progress read failed: %v)", pollErr)
		}
	}
	return rep, nil
}

// faultsStruck reports whether every fault the run injects on a schedule
// (kills, broker restarts, proxy faults) has struck at least once.
func (d *demo) faultsStruck() bool {
	if d.opts.chaos {
		if kills, _ := d.sup.counts(); kills == 0 {
			return false
		}
	}
	if d.opts.brokerRestart && d.brokerRestarts() == 0 {
		return false
	}
	if d.opts.proxy && d.proxyCounts().Total() == 0 {
		return false
	}
	return true
}

// brokerRestarts returns the embedded broker's restarts so far.
func (d *demo) brokerRestarts() int {
	d.srvMu.Lock()
	defer d.srvMu.Unlock()
	return d.restarts
}

// observe reads the pipeline's state: every consumer's position first,
// then the databases and the provider.
func (d *demo) observe(ctx context.Context) (pipelineState, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var st pipelineState
	for _, c := range d.consumers {
		info, err := c.Info(ctx)
		if err != nil {
			return st, err
		}
		st.consumers = append(st.consumers, consumerState{pending: info.NumPending, ackPending: info.NumAckPending,
			delivered: info.Delivered.Stream, ackFloor: info.AckFloor.Stream})
	}
	p, err := d.st.store.Progress(ctx)
	if err != nil {
		return st, err
	}
	st.applied, st.paid, st.unsent, st.deadLettered = p.Applied, p.Paid, p.Unsent, p.DeadLettered
	st.charged = d.provider.Executed()
	return st, nil
}

// complete reports whether the run is done: every order applied, charged
// and recorded, the outbox empty, the malformed inputs dead-lettered, and
// nothing pending at any consumer (so the copies, too, have been
// delivered and suppressed).
func (d *demo) complete(st pipelineState) bool {
	n := int64(len(d.orders))
	return st.applied == n && st.paid == n && st.charged >= n && st.deadLettered >= int64(len(d.bad)) && st.quiet()
}

// brokerStats reads the streams' message counts and the consumers'
// delivery counts.
func (d *demo) brokerStats(ctx context.Context) (payments.BrokerStats, error) {
	var b payments.BrokerStats
	for _, s := range []struct {
		name string
		msgs *uint64
	}{{d.topo.OrdersStream, &b.OrdersStored}, {d.topo.PaymentsStream, &b.PaymentsStored}} {
		st, err := d.js.Stream(ctx, s.name)
		if err != nil {
			return b, fmt.Errorf("stream %s: %w", s.name, err)
		}
		info, err := st.Info(ctx)
		if err != nil {
			return b, fmt.Errorf("stream %s: %w", s.name, err)
		}
		*s.msgs = info.State.Msgs
	}
	for _, c := range d.consumers {
		info, err := c.Info(ctx)
		if err != nil {
			return b, fmt.Errorf("consumer %s: %w", c.CachedInfo().Name, err)
		}
		if info.Stream == d.topo.PaymentsStream {
			b.PaymentsDelivered += info.Delivered.Consumer
		} else {
			b.OrdersDelivered += info.Delivered.Consumer
		}
	}
	return b, nil
}

// teardown releases what setup made, in reverse; with --keep the run's
// PostgreSQL schema and NATS streams stay.
func (d *demo) teardown() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if d.httpSrv != nil {
		d.httpSrv.Shutdown(ctx)
	}
	if d.provider != nil {
		d.provider.Close()
	}
	d.closeProxies()
	if d.js != nil && d.srv == nil && d.streamsUp && !d.opts.keep {
		d.js.DeleteStream(ctx, d.topo.OrdersStream)
		d.js.DeleteStream(ctx, d.topo.PaymentsStream)
	}
	if d.prodNC != nil {
		d.prodNC.Close()
	}
	if d.nc != nil {
		d.nc.Close()
	}
	d.srvMu.Lock()
	if d.srv != nil {
		d.srv.Shutdown()
	}
	d.srvMu.Unlock()
	if d.st != nil {
		if d.schemaUp && !d.opts.keep {
			d.st.store.DB.ExecContext(ctx, "DROP SCHEMA IF EXISTS "+d.storeCfg.Schema+" CASCADE")
		}
		d.st.close()
	}
	if d.logFile != nil {
		d.logFile.Close()
	}
	d.intents.close()
}

// restartBroker shuts the embedded NATS server down and starts it again on
// the same port and files every 1–3 s until ctx ends. The workers and the
// demo's own connection reconnect.
func (d *demo) restartBroker(ctx context.Context, rnd *mrand.Rand) error {
	u, err := url.Parse(d.natsURL)
	if err != nil {
		return fmt.Errorf("broker restart: %w", err)
	}
	port, err := strconv.Atoi(u.Port())
	if err != nil {
		return fmt.Errorf("broker restart: port of %s: %w", d.natsURL, err)
	}
	for {
		if err := sleepUntil(ctx, time.Now().Add(time.Second+time.Duration(rnd.Int64N(int64(2*time.Second))))); err != nil {
			return nil
		}
		d.srvMu.Lock()
		d.srv.Shutdown()
		var srv *natsembed.Server
		for try := 0; ; try++ {
			srv, err = natsembed.Start(natsembed.Config{Dir: filepath.Join(d.dir, natsDir), Listen: true, Port: port})
			if err == nil || try == 50 {
				break
			}
			time.Sleep(100 * time.Millisecond) // the port may take a moment to free
		}
		if err != nil {
			d.srv = nil
			d.srvMu.Unlock()
			return fmt.Errorf("broker restart: %w", err)
		}
		d.srv = srv
		d.restarts++
		d.srvMu.Unlock()
	}
}
