package scenario

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime/pprof"
	"sync"
	"sync/atomic"
	"time"

	"github.com/eoskit/eos/internal/storable"
	"github.com/eoskit/eos/torture/check"
	"github.com/eoskit/eos/torture/faults"
	"github.com/eoskit/eos/torture/intents"
	"github.com/eoskit/eos/torture/producer"
	"github.com/eoskit/eos/torture/supervisor"
	"github.com/eoskit/eos/torture/worker"
)

// Result is a checked run.
type Result struct {
	check.Run
	Setup
}

// Random streams drawn from the seed, one per part of the run.
const (
	streamProducer = 1
	streamKills    = 2
	streamBroker   = 3
	streamProxy    = 4
)

// pollEvery is how often the harness observes the pipeline: it polls
// other processes' progress in the database and the broker.
const pollEvery = 500 * time.Millisecond

// stopGrace is how long stopping workers may take before they are killed.
const stopGrace = 10 * time.Second

// running is what Run started and waits for.
type running struct {
	prod       *producer.Producer
	prodDone   chan error
	brokerDups atomic.Int64
	faults     sync.WaitGroup // the producer, the fault schedules and OnStart: stop waits for them, so the check reads a settled intent log
	brokerErr  chan error
	scrapes    sync.WaitGroup // the background scrapes of the workers' metrics
	stopped    bool
	stopRun    context.CancelFunc
}

// Run starts the workers, the producer and the fault schedules, waits until
// every order is applied and charged, the pipeline is idle without being
// complete, or the timeout, then stops everything and checks the run.
func (s *Scenario) Run(ctx context.Context) (*Result, error) {
	start := time.Now()
	runCtx, stopRun := context.WithCancel(ctx)
	rn := &running{prodDone: make(chan error, 1), brokerErr: make(chan error, 1), stopRun: stopRun}
	defer s.stop(rn)
	if err := s.start(runCtx, rn); err != nil {
		return nil, err
	}
	timedOut, pollErr, err := s.wait(ctx, rn)
	if err != nil {
		return nil, err
	}
	var stacks string
	if timedOut {
		// Before the stop: where the producer and the harness stand when
		// the pipeline did not drain.
		stacks = s.dumpGoroutines()
	}
	produced := rn.prodDone == nil
	s.stop(rn)
	res, err := s.check(ctx, rn, timedOut)
	if err != nil {
		return nil, fmt.Errorf("check: %w", err)
	}
	if timedOut {
		res.IncompleteReason = fmt.Sprintf("timed out after %s before the pipeline drained (applied %d of %d orders, charged %d)",
			s.opts.Timeout, res.Applied, res.Attempted, res.Charged)
		if !produced {
			failed, last := rn.prod.Failures()
			res.IncompleteReason += fmt.Sprintf("; the producer had not finished: %d of %d orders published, %d failed publishes",
				rn.prod.Published(), len(s.orders), failed)
			if last != "" {
				res.IncompleteReason += ", the last: " + storable.Text(last, 300)
			}
		}
		if stacks != "" {
			res.IncompleteReason += "; goroutines at the timeout in " + stacks
		}
		if pollErr != nil {
			res.IncompleteReason += fmt.Sprintf(" (last progress read failed: %v)", pollErr)
		}
	}
	res.ElapsedS = math.Round(time.Since(start).Seconds()*10) / 10
	return res, nil
}

// start starts the workers, the producer and the fault schedules under ctx.
func (s *Scenario) start(ctx context.Context, rn *running) error {
	children, err := s.children()
	if err != nil {
		return err
	}
	s.sup = supervisor.New(supervisor.Config{Exe: s.exe, Args: []string{worker.Command}, Out: s.childOut, Children: children,
		SelfKills: s.opts.Failpoints != "", OnEvent: s.onWorkerEvent, OnEnd: s.onWorkerEnd})
	s.sup.Start(ctx)
	if s.metricsDir != "" {
		rn.scrapes.Add(1)
		go func() {
			defer rn.scrapes.Done()
			s.pool.Run(ctx, scrapeEvery)
		}()
	}

	pub, err := s.bus.publisher(&rn.brokerDups)
	if err != nil {
		return err
	}
	pc := producer.Config{Publisher: pub, Subject: s.topo.OrdersSubject(), Orders: s.orders, Bad: s.bad,
		Rate: s.opts.Rate, Rand: s.rand(streamProducer), RetryRate: producer.DefaultRetryRate, CopyRate: producer.DefaultCopyRate, Intents: s.intents}
	if s.opts.NoDuplicates {
		pc.RetryRate, pc.CopyRate = 0, 0
	}
	rn.prod = producer.New(pc)
	rn.faults.Add(1)
	go func() {
		defer rn.faults.Done()
		rn.prodDone <- rn.prod.Run(ctx) // buffered: never blocks
	}()

	if s.opts.Chaos {
		rn.faults.Add(1)
		go func() {
			defer rn.faults.Done()
			faults.Kills(ctx, s.rand(streamKills), faults.KillSchedule(), s.sup.KillOne)
		}()
	}
	if s.opts.Proxy {
		rn.faults.Add(1)
		go func() {
			defer rn.faults.Done()
			s.proxies.Run(ctx, s.rand(streamProxy), faults.ProxySchedule())
		}()
	}
	if r := s.bus.restarter(); s.opts.BrokerRestart && r != nil {
		rn.faults.Add(1)
		go func() {
			defer rn.faults.Done()
			if err := r.Run(ctx, s.rand(streamBroker), faults.BrokerSchedule()); err != nil {
				rn.brokerErr <- err
			}
		}()
	}
	if s.opts.OnStart != nil {
		rn.faults.Add(1)
		go func() {
			defer rn.faults.Done()
			s.opts.OnStart(ctx, s)
		}()
	}
	return nil
}

func (s *Scenario) rand(stream uint64) *rand.Rand { return rand.New(rand.NewPCG(s.opts.Seed, stream)) }

// stop stops the run's goroutines and workers, once.
func (s *Scenario) stop(rn *running) {
	if rn.stopped {
		return
	}
	rn.stopped = true
	rn.stopRun()
	rn.faults.Wait()
	rn.scrapes.Wait()
	if s.sup != nil {
		s.sup.Stop(stopGrace)
	}
}

// children lists the workers: the order workers, the relay (exactly one:
// one relay per SQLite database) and the payment worker.
func (s *Scenario) children() ([]supervisor.Child, error) {
	level := "warn"
	if s.opts.Verbose {
		level = "info"
	}
	base := worker.Config{Store: s.workerStore, Topology: s.topo, ProviderURL: s.providerURL, LogLevel: level,
		Failpoints: s.opts.Failpoints, FailpointSeed: s.opts.Seed, Handler: s.opts.Handler, MetricsDir: s.metricsDir}
	s.bus.configure(&base)
	var cfgs []worker.Config
	for i := 0; i < s.opts.Workers; i++ {
		c := base
		c.Name, c.Role = fmt.Sprintf("orders-%d", i), worker.RoleOrders
		cfgs = append(cfgs, c)
	}
	relay, pay := base, base
	relay.Name, relay.Role = "relay", worker.RoleRelay
	pay.Name, pay.Role = "payments", worker.RolePayments
	var out []supervisor.Child
	for _, c := range append(cfgs, relay, pay) {
		env, err := c.Env()
		if err != nil {
			return nil, err
		}
		out = append(out, supervisor.Child{Name: c.Name, Env: []string{env}})
	}
	return out, nil
}

// wait observes the pipeline until the run is complete, idle or timed out
// (timedOut, with the last observation's error), or fails.
func (s *Scenario) wait(ctx context.Context, rn *running) (timedOut bool, pollErr error, err error) {
	deadline := time.NewTimer(s.opts.Timeout)
	defer deadline.Stop()
	tick := time.NewTicker(pollEvery)
	defer tick.Stop()
	produced := false
	var idle idleDetector
	for {
		select {
		case <-ctx.Done():
			return false, nil, ctx.Err()
		case err := <-rn.prodDone:
			if err != nil {
				return false, nil, fmt.Errorf("producer: %w", err)
			}
			produced, rn.prodDone = true, nil
		case err := <-rn.brokerErr:
			return false, nil, err
		case err := <-s.sup.Fatal():
			return false, nil, fmt.Errorf("%w; see %s", err, filepath.Join(s.dir, WorkersLog))
		case <-deadline.C:
			return true, pollErr, nil
		case <-tick.C:
			st, err := s.observe(ctx)
			if pollErr = err; err != nil {
				idle.reset()
				continue // a busy database now and then; the deadline bounds it
			}
			if s.opts.OnProgress != nil {
				s.opts.OnProgress(Progress{Orders: int64(len(s.orders)), Published: rn.prod.Published(), Applied: st.applied,
					Charged: st.charged, DeadLettered: st.deadLettered, Kills: s.sup.Counts().Kills})
			}
			// A run ends once every fault it injects has struck at least
			// once, so that a fast machine cannot finish before the first.
			if !produced || !s.faultsStruck() {
				idle.reset()
				continue
			}
			// Complete, or idle without being complete: something was lost,
			// and the checks say what now rather than at the timeout.
			if s.complete(st) || idle.observe(st) {
				return false, nil, nil
			}
		}
	}
}

// faultsStruck reports whether every fault the run injects on a schedule
// (kills, broker restarts, proxy faults) has struck at least once.
func (s *Scenario) faultsStruck() bool {
	switch {
	case s.opts.Chaos && s.sup.Counts().Kills == 0:
		return false
	case s.opts.BrokerRestart && s.bus.restarter() != nil && s.bus.restarter().Restarts() == 0:
		return false
	case s.opts.Proxy && s.proxies.Counts().Total() == 0:
		return false
	}
	return true
}

// observe reads the pipeline's state: every consumer's position first,
// then the database (through check.Reader) and the provider.
func (s *Scenario) observe(ctx context.Context) (pipelineState, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var st pipelineState
	var err error
	if st.consumers, err = s.bus.positions(ctx); err != nil {
		return st, err
	}
	p, err := s.reader.Pipeline(ctx)
	if err != nil {
		return st, err
	}
	st.applied, st.paid, st.unsent, st.deadLettered = p.Applied, p.Paid, p.Unsent, p.DeadLettered
	st.charged = s.provider.Executed()
	return st, nil
}

// complete reports whether the run is done: every order applied, charged
// and recorded, the outbox empty, the malformed inputs dead-lettered, and
// nothing pending at any consumer (so the copies, too, have been
// delivered and suppressed).
func (s *Scenario) complete(st pipelineState) bool {
	n := int64(len(s.orders))
	return st.applied == n && st.paid == n && st.charged >= n && st.deadLettered >= int64(len(s.bad)) && st.quiet()
}

// check reads the facts of the stopped run and judges them.
func (s *Scenario) check(ctx context.Context, rn *running, incomplete bool) (*Result, error) {
	f := check.Facts{Incomplete: incomplete}
	var err error
	if f.Intents, err = intents.Read(filepath.Join(s.dir, intentsFile)); err != nil {
		return nil, err
	}
	if f.Stored, err = s.bus.storedIDs(ctx); err != nil {
		return nil, err
	}
	if f.Broker, err = s.bus.stats(ctx); err != nil {
		return nil, err
	}
	if f.Store, err = s.reader.Store(ctx); err != nil {
		return nil, err
	}
	if f.Charges, err = s.provider.Charges(ctx); err != nil {
		return nil, err
	}
	pstats, err := s.provider.Stats(ctx)
	if err != nil {
		return nil, err
	}
	sc := s.sup.Counts()
	f.KillTimes = sc.KillTimes
	res := &Result{Run: check.Run{Seed: s.opts.Seed, Report: check.Verdict(f), DedupeStoreErrors: sc.Events[worker.EventStoreError]}}
	pc := s.proxies.Counts()
	res.Injected = check.Injected{Kills: sc.Kills, FailpointCrashes: sc.Crashes, WorkerRestarts: sc.Restarts,
		Republished: rn.prod.Republished(), BrokerDuplicates: rn.brokerDups.Load(), ProviderReplays: pstats.Replays,
		ProxyFaults: pc.Total(), ProxyResets: pc.Resets, ProxyLatency: pc.Latency, ProxyBlackholes: pc.Blackholes}
	if r := s.bus.restarter(); r != nil {
		res.BrokerRestarts = r.Restarts()
	}
	res.Setup = Setup{Store: string(s.storeCfg.Kind), Broker: s.bus.label(), Workers: s.opts.Workers, Handler: s.opts.Handler, Chaos: s.opts.Chaos,
		Rate: s.opts.Rate, RunID: s.runID}
	return res, nil
}

// goroutinesFile holds the harness's goroutines when a run times out.
const goroutinesFile = "goroutines.txt"

// dumpGoroutines writes every goroutine's stack to goroutinesFile in the
// run's directory and returns its path, or "" if it could not.
func (s *Scenario) dumpGoroutines() string {
	path := filepath.Join(s.dir, goroutinesFile)
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return ""
	}
	defer f.Close()
	if err := pprof.Lookup("goroutine").WriteTo(f, 2); err != nil {
		return ""
	}
	return path
}
