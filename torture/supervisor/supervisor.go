package supervisor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/eoskit/eos/internal/backoff"
)

// Child is one worker: its name and the environment it runs with, on top
// of the supervisor's own.
type Child struct {
	Name string
	Env  []string
}

// Config says what to run.
type Config struct {
	// Exe and Args are the command every child runs.
	Exe  string
	Args []string
	// Out receives the children's standard output and error.
	Out      io.Writer
	Children []Child
	// SelfKills: a child that dies of SIGKILL without the supervisor
	// having killed it was crashed on purpose (a failpoint's crash
	// action); it is counted as a crash and restarted, not held against
	// the crash-loop bound.
	SelfKills bool
	// OnEvent, if set, is called for each event a child reports, from the
	// goroutine reading that child's pipe: in order for one start of a
	// child, in no particular order across children and starts.
	OnEvent func(Event)
	// OnEnd, if set, is called once per start of a child, once that
	// process has exited and its events pipe ended: every event it sent
	// was passed to OnEvent. Then the next start of the child begins.
	OnEnd func(child string, start int)
}

// Crash-loop bound: a child that exits on its own CrashLimit times within
// CrashWindow is reported on Fatal.
const (
	CrashLimit  = 5
	CrashWindow = 20 * time.Second
)

// restartBackoff spaces restarts: up to 50 ms after a chaos kill, the bound
// doubling with each crash of the child in the window, jittered so that
// children that failed together do not all start again together.
var restartBackoff = backoff.Policy{Initial: 50 * time.Millisecond, Max: 2 * time.Second}

// Supervisor runs the children of a Config.
type Supervisor struct {
	cfg      Config
	children []*child
	fatal    chan error
	wg       sync.WaitGroup
	readers  sync.WaitGroup // the events pipes' readers

	mu        sync.Mutex
	kills     int
	crashes   int
	restarts  int
	killTimes []time.Time
	events    map[string]int64
}

// child is one Child and its current process.
type child struct {
	Child
	mu     sync.Mutex
	proc   *os.Process // nil while not running
	killed bool        // the current process was killed by KillOne
	starts int         // processes started so far (runOnce only)
}

// New returns a supervisor of cfg's children; Start starts them.
func New(cfg Config) *Supervisor {
	s := &Supervisor{cfg: cfg, fatal: make(chan error, len(cfg.Children)), events: map[string]int64{}}
	for _, c := range cfg.Children {
		s.children = append(s.children, &child{Child: c})
	}
	return s
}

// Fatal receives an error for each child that kept failing on its own
// (CrashLimit exits within CrashWindow); that child is not restarted.
func (s *Supervisor) Fatal() <-chan error { return s.fatal }

// Start starts every child; each is restarted until ctx ends. Cancel ctx,
// then call Stop.
func (s *Supervisor) Start(ctx context.Context) {
	for _, c := range s.children {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.keep(ctx, c)
		}()
	}
}

// keep runs c again and again until ctx ends.
func (s *Supervisor) keep(ctx context.Context, c *child) {
	var crashes []time.Time
	for ctx.Err() == nil {
		err := s.runOnce(ctx, c)
		if ctx.Err() != nil {
			return
		}
		c.mu.Lock()
		killed := c.killed
		c.killed = false
		c.mu.Unlock()
		if !killed && s.cfg.SelfKills && DiedOfSIGKILL(err) {
			killed = true
			s.mu.Lock()
			s.crashes++
			s.killTimes = append(s.killTimes, time.Now())
			s.mu.Unlock()
		}
		if err == nil && !killed {
			err = errors.New("exited")
		}
		restart := 1 // a kill: the first step of the backoff
		if !killed {
			now := time.Now()
			crashes = append(crashes, now)
			for len(crashes) > 0 && now.Sub(crashes[0]) > CrashWindow {
				crashes = crashes[1:]
			}
			if len(crashes) >= CrashLimit {
				s.fatal <- fmt.Errorf("worker %s failed %d times in %s (last: %v)", c.Name, len(crashes), CrashWindow, err)
				return
			}
			restart = 1 + len(crashes) // grows with the crashes in the window
		}
		if !restartBackoff.Sleep(ctx, restart) {
			return
		}
		s.mu.Lock()
		s.restarts++
		s.mu.Unlock()
	}
}

// runOnce starts c's process and waits for it to exit.
func (s *Supervisor) runOnce(ctx context.Context, c *child) error {
	cmd := exec.Command(s.cfg.Exe, s.cfg.Args...)
	c.starts++
	start := c.starts
	cmd.Env = append(append(os.Environ(), c.Env...), StartEnv+"="+strconv.Itoa(start), EventsEnv+"="+strconv.Itoa(eventsFD))
	cmd.Stdout, cmd.Stderr = s.cfg.Out, s.cfg.Out
	// The child reads stdin until EOF: when this process dies, the pipe
	// closes and the child stops.
	stdin, keepOpen, err := os.Pipe()
	if err != nil {
		return err
	}
	defer keepOpen.Close()
	events, eventsW, err := os.Pipe()
	if err != nil {
		stdin.Close()
		return err
	}
	cmd.Stdin = stdin
	cmd.ExtraFiles = []*os.File{eventsW}
	err = cmd.Start()
	stdin.Close()
	eventsW.Close() // the child holds the only writer: EOF when it dies
	if err != nil {
		events.Close()
		return fmt.Errorf("start %s: %w", c.Name, err)
	}
	s.readers.Add(1)
	read := make(chan struct{})
	go func() {
		defer s.readers.Done()
		defer events.Close()
		defer close(read)
		s.readEvents(events, c.Name, start)
	}()
	c.mu.Lock()
	c.proc = cmd.Process
	c.mu.Unlock()
	if ctx.Err() != nil { // stopping began while it started
		cmd.Process.Signal(syscall.SIGTERM)
	}
	err = cmd.Wait()
	c.mu.Lock()
	c.proc = nil
	c.mu.Unlock()
	// The pipe may end before the process (a child can close its end);
	// OnEnd waits for both.
	<-read
	if s.cfg.OnEnd != nil {
		s.cfg.OnEnd(c.Name, start)
	}
	return err
}

// KillOne SIGKILLs a running child drawn from rnd, as a chaos kill (the
// child is restarted), and reports whether it killed one.
func (s *Supervisor) KillOne(rnd *rand.Rand) bool {
	c := s.children[rnd.IntN(len(s.children))]
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.proc == nil || c.killed || c.proc.Kill() != nil {
		return false
	}
	c.killed = true
	s.mu.Lock()
	s.kills++
	s.killTimes = append(s.killTimes, time.Now())
	s.mu.Unlock()
	return true
}

// Counts are what the supervisor saw so far.
type Counts struct {
	Kills    int // SIGKILLs sent by KillOne
	Crashes  int // SIGKILLs the children sent themselves (Config.SelfKills)
	Restarts int
	// KillTimes are the times of every kill and crash, in order.
	KillTimes []time.Time
	// Events counts the events the children reported, by event.
	Events map[string]int64
}

// Counts returns what the supervisor saw so far. After Stop it includes
// every event the children reported.
func (s *Supervisor) Counts() Counts {
	s.mu.Lock()
	defer s.mu.Unlock()
	ev := make(map[string]int64, len(s.events))
	for k, v := range s.events {
		ev[k] = v
	}
	return Counts{Kills: s.kills, Crashes: s.crashes, Restarts: s.restarts,
		KillTimes: append([]time.Time(nil), s.killTimes...), Events: ev}
}

// DiedOfSIGKILL reports whether err is the exit of a process killed by
// SIGKILL.
func DiedOfSIGKILL(err error) bool {
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		return false
	}
	ws, ok := ee.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL
}

// Stop asks every child to stop (SIGTERM), waits up to grace, then kills
// what is left, and waits until every events pipe is read to its end. The
// ctx given to Start must be cancelled first.
func (s *Supervisor) Stop(grace time.Duration) {
	s.signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(done)
	}()
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
		s.signal(syscall.SIGKILL)
		<-done
	}
	s.readers.Wait()
}

func (s *Supervisor) signal(sig os.Signal) {
	for _, c := range s.children {
		c.mu.Lock()
		if c.proc != nil {
			c.proc.Signal(sig)
		}
		c.mu.Unlock()
	}
}
