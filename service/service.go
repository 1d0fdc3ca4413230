package service

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/eoskit/eos"
	"github.com/eoskit/eos/internal/config"
	"github.com/eoskit/eos/internal/wake"
)

// Runner is a part that runs until its context ends: *outbox.Relay and
// *compact.Compactor are Runners. A Runner that returns before the Service
// stops it fails the Service.
type Runner interface {
	Run(ctx context.Context) error
}

// DefaultStopTimeout is the default of Config.StopTimeout.
const DefaultStopTimeout = 30 * time.Second

// Config configures a Service. [Config.WithDefaults] applies the defaults
// (New does).
type Config struct {
	// Inboxes are the consumers to run (see NewInbox). Each Inbox belongs
	// to one Service.
	Inboxes []*Inbox
	// Runners run beside the inboxes: the outbox relay, the compactor. They
	// are stopped after the inboxes drained.
	Runners []Runner
	// StopTimeout bounds the graceful stop of Run: after it, batches still
	// in flight are cancelled (rolled back, not acknowledged). Default 30s.
	StopTimeout time.Duration
	// Logger receives the Service's logs. Default slog.Default().
	Logger *slog.Logger
}

// WithDefaults returns a copy of c with the defaults applied, or a
// *eos.ConfigError naming the first invalid field.
func (c Config) WithDefaults() (Config, error) {
	if len(c.Inboxes) == 0 && len(c.Runners) == 0 {
		return c, &eos.ConfigError{Field: "service.Config", Reason: "no Inboxes and no Runners: nothing to run"}
	}
	for i, ib := range c.Inboxes {
		if ib == nil {
			return c, &eos.ConfigError{Field: fmt.Sprintf("service.Config.Inboxes[%d]", i), Reason: "nil"}
		}
	}
	for i, r := range c.Runners {
		if r == nil {
			return c, &eos.ConfigError{Field: fmt.Sprintf("service.Config.Runners[%d]", i), Reason: "nil"}
		}
	}
	if err := config.Duration("service.Config.StopTimeout", &c.StopTimeout, DefaultStopTimeout); err != nil {
		return c, err
	}
	c.Logger = config.Logger(c.Logger)
	return c, nil
}

// ErrStarted is returned by Start on a Service already started, and
// ErrStopped by Start on one that was stopped: a Service runs once.
var (
	ErrStarted = errors.New("service: already started")
	ErrStopped = errors.New("service: stopped; a Service runs once")
)

type phase int

const (
	idle phase = iota
	started
	stopping
	stopped
)

// Service runs inboxes and runners together. Its methods are safe for
// concurrent use.
type Service struct {
	cfg  Config
	log  *slog.Logger
	gate *gate

	startMu sync.Mutex // serializes Start and the beginning of Stop

	mu      sync.Mutex
	phase   phase
	failure error // what failed the Service
	lastErr error // the last store failure an inbox reported
	changes wake.Changes
	cancel  context.CancelFunc // ends every part at once; set by Start
	stopReq chan struct{}      // closed by Stop
	failed  chan struct{}      // closed at the first failure
	done    chan struct{}      // closed once everything ended
}

// New returns a Service that runs cfg's inboxes and runners once started.
func New(cfg Config) (*Service, error) {
	cfg, err := cfg.WithDefaults()
	if err != nil {
		return nil, err
	}
	s := &Service{cfg: cfg, log: cfg.Logger, gate: newGate(),
		stopReq: make(chan struct{}), failed: make(chan struct{}), done: make(chan struct{})}
	for i, ib := range cfg.Inboxes {
		if !ib.health.owner.CompareAndSwap(nil, s) {
			for _, prev := range cfg.Inboxes[:i] {
				prev.health.owner.Store(nil)
			}
			return nil, &eos.ConfigError{Field: fmt.Sprintf("service.Config.Inboxes[%d]", i),
				Reason: fmt.Sprintf("consumer %q belongs to another Service (or is listed twice)", ib.consumer)}
		}
	}
	return s, nil
}

// Start opens one source per runner of each inbox (with ctx) and starts
// everything. The parts keep ctx's values but not its cancellation: they
// end through Stop. When a source fails to open, Start closes the ones it
// opened and returns the error.
func (s *Service) Start(ctx context.Context) error {
	s.startMu.Lock()
	defer s.startMu.Unlock()
	s.mu.Lock()
	ph := s.phase
	s.mu.Unlock()
	switch ph {
	case started, stopping:
		return ErrStarted
	case stopped:
		return ErrStopped
	}
	runners, err := s.openSources(ctx)
	if err != nil {
		return err
	}
	all, cancel := context.WithCancel(context.WithoutCancel(ctx))
	others, stopOthers := context.WithCancel(all)
	var inboxWG, otherWG sync.WaitGroup
	for _, r := range runners {
		inboxWG.Add(1)
		go func() {
			defer inboxWG.Done()
			s.runInbox(all, r)
		}()
	}
	for _, r := range s.cfg.Runners {
		otherWG.Add(1)
		go func() {
			defer otherWG.Done()
			s.runOther(others, r)
		}()
	}
	s.mu.Lock()
	s.phase, s.cancel = started, cancel
	s.changes.Notify()
	s.mu.Unlock()
	go s.supervise(&inboxWG, &otherWG, stopOthers, cancel)
	s.log.InfoContext(ctx, "eos service: started", "inbox_runners", len(runners), "runners", len(s.cfg.Runners))
	return nil
}

func (s *Service) openSources(ctx context.Context) ([]runner, error) {
	var runners []runner
	for _, ib := range s.cfg.Inboxes {
		for n := range ib.cfg.Concurrency {
			r := runner{ib: ib, n: n}
			src, err := ib.cfg.Source(ctx)
			if err == nil && src == nil {
				err = errors.New("the SourceFunc returned no source")
			}
			if err != nil {
				for _, r := range runners {
					closeSource(r.src)
				}
				return nil, fmt.Errorf("service: open the source of %s: %w", r, err)
			}
			r.src = src
			runners = append(runners, r)
		}
	}
	return runners, nil
}

// runInbox runs one runner until its source stops (Stop), ctx ends (Stop
// ran out of time) or it fails, then closes its source.
func (s *Service) runInbox(ctx context.Context, r runner) {
	g := &gatedSource{src: r.src, gate: s.gate, health: r.ib.health}
	err := r.ib.run(ctx, g)
	g.release()
	if cerr := closeSource(r.src); cerr != nil {
		s.log.WarnContext(ctx, "eos service: closing a source failed", "runner", r.String(), "error", cerr)
	}
	if errors.Is(err, errStopping) || ctx.Err() != nil {
		return
	}
	s.fail(fmt.Errorf("service: %s: %w", r, err))
}

func (s *Service) runOther(ctx context.Context, r Runner) {
	err := r.Run(ctx)
	if ctx.Err() != nil {
		return
	}
	if err == nil {
		err = errors.New("returned before the service stopped it")
	}
	s.fail(fmt.Errorf("service: runner %T: %w", r, err))
}

func (s *Service) fail(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failure != nil {
		return
	}
	s.failure = err
	close(s.failed)
	s.changes.Notify()
	s.log.Error("eos service: a part failed; stopping the others", "error", err)
}

// supervise stops everything after Stop or a failure: the inboxes first,
// draining their batches, then the other runners.
func (s *Service) supervise(inboxes, others *sync.WaitGroup, stopOthers, cancel context.CancelFunc) {
	select {
	case <-s.stopReq:
	case <-s.failed:
	}
	s.gate.stop()
	inboxes.Wait()
	stopOthers()
	others.Wait()
	cancel()
	s.mu.Lock()
	s.phase = stopped
	s.changes.Notify()
	s.mu.Unlock()
	s.log.Info("eos service: stopped")
	close(s.done)
}

// Stop stops the Service gracefully: no runner fetches again; the batches
// in flight commit and are settled; the sources are closed; then the
// runners (relay, compactor) are stopped. If ctx ends first, the batches
// still in flight are cancelled (rolled back, nothing of them
// acknowledged: the broker redelivers them) and Stop returns once every
// part ended, with ctx's error. It returns the error that failed the
// Service, if one did. Stop on a Service never started just ends it.
func (s *Service) Stop(ctx context.Context) error {
	s.startMu.Lock()
	s.mu.Lock()
	switch s.phase {
	case idle:
		s.phase = stopped
		s.changes.Notify()
		close(s.done)
	case started:
		s.phase = stopping
		s.changes.Notify()
		close(s.stopReq)
		s.log.InfoContext(ctx, "eos service: stopping")
	}
	cancel := s.cancel
	s.mu.Unlock()
	s.startMu.Unlock()

	var late error
	select {
	case <-s.done:
	case <-ctx.Done():
		select {
		case <-s.done: // ended as ctx did
		default:
			cancel() // set: the Service was started, or done would be closed
			<-s.done
			late = fmt.Errorf("service: stop: %w: batches still in flight were cancelled (rolled back, not acknowledged)", ctx.Err())
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return errors.Join(s.failure, late)
}

// Run starts the Service, waits until ctx ends, a part fails or Stop is
// called (from a signal handler, say), and stops it gracefully within
// Config.StopTimeout. It returns nil after a graceful stop, or the error
// that failed the Service (or ended the stop early).
func (s *Service) Run(ctx context.Context) error {
	if err := s.Start(ctx); err != nil {
		return err
	}
	select {
	case <-ctx.Done():
	case <-s.failed:
	case <-s.stopReq:
	}
	stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.StopTimeout)
	defer cancel()
	return s.Stop(stopCtx)
}

// Done returns a channel closed once the Service has stopped: after Stop,
// or after a failure stopped it.
func (s *Service) Done() <-chan struct{} { return s.done }

// Pause stops fetching without closing anything: the runners finish their
// batches in flight and wait. Deliveries a source pulled ahead stay with
// it, and their broker's ack wait runs meanwhile (natsjs keeps alive only
// the batch the inbox holds): for a long pause, Stop instead.
func (s *Service) Pause() {
	if s.gate.pause(true) {
		s.changes.Notify()
	}
}

// Resume undoes Pause.
func (s *Service) Resume() {
	if s.gate.pause(false) {
		s.changes.Notify()
	}
}

// Health returns the Service's state and its last error.
func (s *Service) Health() Health {
	paused, _, _ := s.gate.state()
	s.mu.Lock()
	defer s.mu.Unlock()
	h := Health{Err: s.lastErr}
	switch {
	case s.failure != nil:
		h.State, h.Err = Failed, s.failure
		return h
	case s.phase == idle || s.phase == stopped:
		h.State = Stopped
		return h
	case s.phase == stopping:
		h.State = Stopping
		return h
	}
	for _, ib := range s.cfg.Inboxes {
		if ib.health.isStalled() {
			h.Stalled = append(h.Stalled, ib.consumer)
		}
	}
	switch {
	case len(h.Stalled) > 0:
		h.State = Stalled
	case paused:
		h.State = Paused
	default:
		h.State = Running
	}
	return h
}

// HealthChanged returns a channel closed at the next change that may
// change Health (a state, a stall, a new error), to wait for one without
// polling. Take it before reading Health, so that no change falls between.
func (s *Service) HealthChanged() <-chan struct{} { return s.changes.C() }

func (s *Service) noteError(err error) {
	s.mu.Lock()
	s.lastErr = err
	s.mu.Unlock()
	s.changes.Notify()
}
