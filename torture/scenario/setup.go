package scenario

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/eoskit/eos/examples/payments"
	"github.com/eoskit/eos/torture/check"
	"github.com/eoskit/eos/torture/faults"
	"github.com/eoskit/eos/torture/intents"
	"github.com/eoskit/eos/torture/internal/private"
	"github.com/eoskit/eos/torture/internal/scrape"
	"github.com/eoskit/eos/torture/supervisor"
	"github.com/eoskit/eos/torture/worker"
)

// Scenario is one run: its database, broker, provider and workers.
type Scenario struct {
	opts  Options
	exe   string
	runID string
	dir   string

	storeCfg worker.StoreConfig
	st       *worker.Store
	reader   *check.Reader
	schemaUp bool // the run's PostgreSQL schema exists

	bus  bus // NATS or Kafka
	topo worker.Topology

	provider    *payments.Provider
	httpSrv     *http.Server
	providerURL string

	childOut io.Writer
	logFile  *os.File

	orders  []payments.Order
	bad     []payments.BadInput
	intents *intents.Log

	// What the workers connect to: the services, or the fault proxies in
	// front of them (opts.Proxy); the bus knows its own.
	workerStore worker.StoreConfig
	proxies     faults.Proxies

	sup *supervisor.Supervisor // of the run

	// The workers' metrics: where they leave their final values (empty:
	// metrics off), and the pool that scrapes and sums them.
	metricsDir string
	pool       *scrape.Pool
	harnessReg *prometheus.Registry // the harness's own (the pool's counters)
}

// initialBalance of every account, in cents.
const initialBalance = 10_000_000_00

// Files in a run's directory; a directory holding marker is a run's and
// its files are replaced by the next run.
const (
	marker       = ".eos-demo"
	dbFile       = "eos.db"
	providerFile = "provider.db"
	natsDir      = "nats"
	// WorkersLog is the workers' log in the run's directory.
	WorkersLog  = "workers.log"
	intentsFile = "intents.jsonl"
	metricsDir  = "metrics" // the workers' final metrics
)

// DBFile (the SQLite database) and NATSDir (the embedded NATS server's
// store) are the files of a run's directory that eos reconcile reads;
// KafkaDir holds the embedded Kafka cluster's data instead on a run on
// Kafka.
const (
	DBFile   = dbFile
	NATSDir  = natsDir
	KafkaDir = kafkaDir
)

// New prepares a run of o. Close releases what it made (on error, New
// releases it itself).
func New(ctx context.Context, o Options) (s *Scenario, err error) {
	if o.Stderr == nil {
		o.Stderr = io.Discard
	}
	s = &Scenario{opts: o, childOut: o.Stderr}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	var id [6]byte
	rand.Read(id[:])
	s.runID = hex.EncodeToString(id[:])
	if s.opts.Handler, err = worker.CheckHandler(o.Handler); err != nil {
		return s, err
	}
	if s.opts.Seed == 0 {
		s.opts.Seed = uint64(binary.BigEndian.Uint32(id[:4]))
	}
	if s.exe, err = os.Executable(); err != nil {
		return s, fmt.Errorf("cannot find this executable to start workers: %w", err)
	}
	if s.dir, err = filepath.Abs(o.Dir); err != nil {
		return s, fmt.Errorf("--dir: %w", err)
	}
	if err := prepareDir(s.dir); err != nil {
		return s, err
	}
	if err := s.setupMetrics(); err != nil {
		return s, err
	}
	if err := s.openStore(ctx); err != nil {
		return s, err
	}
	if o.Transport == worker.TransportKafka {
		s.bus = &kafkaBus{brokers: o.Kafka}
	} else {
		s.bus = &natsBus{url: o.NATSURL, restart: o.BrokerRestart}
	}
	if s.topo, err = s.bus.open(ctx, s.dir, s.runID); err != nil {
		return s, err
	}
	s.workerStore = s.storeCfg
	if o.Proxy {
		if err := s.startProxies(); err != nil {
			return s, err
		}
	}
	if err := s.startProvider(ctx); err != nil {
		return s, err
	}
	// The workers' logs go to a file (also to stderr with Verbose).
	if s.logFile, err = private.Create(filepath.Join(s.dir, WorkersLog), false); err != nil {
		return s, err
	}
	s.childOut = s.logFile
	if o.Verbose {
		s.childOut = io.MultiWriter(o.Stderr, s.logFile)
	}
	s.orders = payments.GenerateOrders(s.opts.Seed, o.Orders, o.Accounts)
	if !o.NoPoison {
		s.bad = payments.Malformed(payments.Account(0, o.Accounts))
	}
	s.intents, err = intents.Create(filepath.Join(s.dir, intentsFile))
	return s, err
}

// Dir returns the run's directory (absolute).
func (s *Scenario) Dir() string { return s.dir }

// JetStream returns the harness's own JetStream connection; nil on a run
// on Kafka.
func (s *Scenario) JetStream() jetstream.JetStream {
	if b, ok := s.bus.(*natsBus); ok {
		return b.js
	}
	return nil
}

// Topology returns the run's streams and subjects.
func (s *Scenario) Topology() worker.Topology { return s.topo }

// openStore opens the database and creates eos's tables, then the
// scenario's.
func (s *Scenario) openStore(ctx context.Context) (err error) {
	if s.opts.Postgres != "" {
		s.storeCfg = worker.StoreConfig{Kind: payments.Postgres, URL: s.opts.Postgres, Schema: RunSchema(s.runID)}
	} else {
		s.storeCfg = worker.StoreConfig{Kind: payments.SQLite, Path: filepath.Join(s.dir, dbFile)}
	}
	if s.st, err = worker.OpenStore(ctx, s.storeCfg, 4); err != nil {
		return err
	}
	s.schemaUp = s.storeCfg.Kind == payments.Postgres
	if _, err := s.st.Driver.Migrator().Up(ctx); err != nil {
		return fmt.Errorf("migrate the database: %w", err)
	}
	if err := s.st.Tables.Setup(ctx, s.opts.Accounts, initialBalance); err != nil {
		return err
	}
	s.reader, err = check.NewReader(s.st.Driver, s.st.Tables)
	return err
}

// startProxies puts a fault proxy between the workers and each service
// faults.ProxiedServices names, and points the workers' configuration at
// it. The harness's own connections (setup, progress, the checker) go
// straight to the services.
func (s *Scenario) startProxies() (err error) {
	for _, name := range faults.ProxiedServices(s.services()) {
		if name == "postgres" {
			s.workerStore.URL, err = s.proxies.Front(name, s.workerStore.URL, "5432")
		} else {
			err = s.bus.front(&s.proxies)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// services names what the run runs on.
func (s *Scenario) services() faults.Services {
	return faults.Services{Postgres: s.opts.Postgres, Transport: s.opts.Transport, NATS: s.opts.NATSURL, Kafka: s.opts.Kafka}
}

// startProvider opens the provider simulator and serves it over HTTP.
func (s *Scenario) startProvider(ctx context.Context) (err error) {
	pcfg := payments.ProviderConfig{Seed: s.opts.Seed}
	if s.opts.Chaos {
		pcfg.FailBefore, pcfg.FailAfter = 0.01, 0.01
	}
	if s.provider, err = payments.OpenProvider(ctx, filepath.Join(s.dir, providerFile), pcfg); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("provider simulator: %w", err)
	}
	s.httpSrv = &http.Server{Handler: s.provider, ReadHeaderTimeout: 10 * time.Second}
	go s.httpSrv.Serve(ln)
	s.providerURL = "http://" + ln.Addr().String()
	return nil
}

// prepareDir creates dir (0700, and its missing parents), or empties a
// run's files from an earlier run. It refuses a non-empty directory no
// run made.
func prepareDir(dir string) error {
	if err := os.MkdirAll(dir, private.DirMode); err != nil {
		return fmt.Errorf("--dir: %w", err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("--dir: %w", err)
	}
	if len(entries) > 0 {
		if _, err := os.Stat(filepath.Join(dir, marker)); err != nil {
			return fmt.Errorf("--dir %s is not empty and was not made by eos demo; name a new directory", dir)
		}
		for _, name := range []string{dbFile, dbFile + "-wal", dbFile + "-shm", dbFile + worker.LockSuffix, providerFile, providerFile + "-wal",
			providerFile + "-shm", natsDir, kafkaDir, brokerURLFile, WorkersLog, intentsFile, metricsDir} {
			if err := os.RemoveAll(filepath.Join(dir, name)); err != nil {
				return fmt.Errorf("--dir: clearing the last run: %w", err)
			}
		}
	}
	// Empty or a run's own: it is about to hold the run's files.
	if err := os.Chmod(dir, private.DirMode); err != nil {
		return fmt.Errorf("--dir: %w", err)
	}
	f, err := private.Create(filepath.Join(dir, marker), true)
	if err == nil {
		_, err = f.WriteString("files of eos demo; the next run replaces them\n")
		err = errors.Join(err, f.Close())
	}
	if err != nil {
		return fmt.Errorf("--dir: %w", err)
	}
	return nil
}

// Close releases what New made, in reverse; with Keep the run's
// PostgreSQL schema and NATS streams (or Kafka topics and groups) stay.
func (s *Scenario) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if s.httpSrv != nil {
		s.httpSrv.Shutdown(ctx)
	}
	if s.provider != nil {
		s.provider.Close()
	}
	s.proxies.Close()
	if s.bus != nil {
		s.bus.close(ctx, s.opts.Keep)
	}
	if s.st != nil {
		if s.schemaUp && !s.opts.Keep {
			s.st.Tables.DB.ExecContext(ctx, "DROP SCHEMA IF EXISTS "+s.storeCfg.Schema+" CASCADE")
		}
		s.st.Close()
	}
	if s.logFile != nil {
		s.logFile.Close()
	}
	if s.pool != nil {
		s.pool.Close()
	}
	s.intents.Close()
}
