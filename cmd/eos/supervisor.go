package main

import (
	"context"
	"encoding/json"
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
	"github.com/eoskit/eos/internal/ctxtime"
)

// supervisor runs the demo's workers as child processes, restarts them
// when they die, and (with chaos) kills them at random.
type supervisor struct {
	exe      string
	out      io.Writer // the children's stdout and stderr
	children []*child
	fatal    chan error // a child that keeps failing on its own
	// selfKills: a child that dies of SIGKILL without the supervisor having
	// killed it was crashed on purpose (a failpoint's crash action); it is
	// counted and restarted, not held against the crash-loop bound.
	selfKills bool

	mu        sync.Mutex
	kills     int
	crashes   int // SIGKILLs a child sent itself (selfKills)
	restarts  int
	killTimes []time.Time // of every kill and crash, in order
	wg        sync.WaitGroup
}

// child is one worker and its current process.
type child struct {
	cfg    workerConfig
	env    string
	mu     sync.Mutex
	proc   *os.Process // nil while not running
	killed bool        // the current process was killed by chaos
	starts int         // processes started so far (runOnce only)
}

func newSupervisor(exe string, out io.Writer, cfgs []workerConfig) (*supervisor, error) {
	s := &supervisor{exe: exe, out: out, fatal: make(chan error, len(cfgs))}
	for _, c := range cfgs {
		raw, err := json.Marshal(c)
		if err != nil {
			return nil, err
		}
		s.children = append(s.children, &child{cfg: c, env: workerEnv + "=" + string(raw)})
	}
	return s, nil
}

// start starts every child; each is restarted until ctx ends.
func (s *supervisor) start(ctx context.Context) {
	for _, c := range s.children {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.keep(ctx, c)
		}()
	}
}

// Crash-loop bound: a child that exits on its own this many times within
// the window is reported as fatal.
const (
	crashLimit  = 5
	crashWindow = 20 * time.Second
)

// restartBackoff spaces restarts: up to 50 ms after a chaos kill, the bound
// doubling with each crash of the child in the window, jittered so that
// children that failed together do not all start again together.
var restartBackoff = backoff.Policy{Initial: 50 * time.Millisecond, Max: 2 * time.Second}

// keep runs c again and again until ctx ends.
func (s *supervisor) keep(ctx context.Context, c *child) {
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
		if !killed && s.selfKills && diedOfSIGKILL(err) {
			killed = true
			s.mu.Lock()
			s.crashes++
			s.killTimes = append(s.killTimes, time.Now())
			s.mu.Unlock()
		}
		if err == nil && !killed {
			err = fmt.Errorf("exited")
		}
		restart := 1 // a chaos kill: the first step of the backoff
		if !killed {
			now := time.Now()
			crashes = append(crashes, now)
			for len(crashes) > 0 && now.Sub(crashes[0]) > crashWindow {
				crashes = crashes[1:]
			}
			if len(crashes) >= crashLimit {
				s.fatal <- fmt.Errorf("worker %s failed %d times in %s (last: %v)", c.cfg.Name, len(crashes), crashWindow, err)
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
func (s *supervisor) runOnce(ctx context.Context, c *child) error {
	cmd := exec.Command(s.exe, workerCommand)
	// The start number seeds the child's failpoints: a restarted worker
	// draws new faults, and a rerun with the same seed draws the same ones.
	c.starts++
	cmd.Env = append(os.Environ(), c.env, workerStartEnv+"="+strconv.Itoa(c.starts))
	cmd.Stdout, cmd.Stderr = s.out, s.out
	// The child reads stdin until EOF: when this process dies, the pipe
	// closes and the child stops.
	stdin, keepOpen, err := os.Pipe()
	if err != nil {
		return err
	}
	defer keepOpen.Close()
	cmd.Stdin = stdin
	err = cmd.Start()
	stdin.Close()
	if err != nil {
		return fmt.Errorf("start %s: %w", c.cfg.Name, err)
	}
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
	return err
}

// chaos SIGKILLs a random running child every 0.2–1.2 s until ctx ends.
func (s *supervisor) chaos(ctx context.Context, rnd *rand.Rand) {
	for {
		if !ctxtime.Sleep(ctx, 200*time.Millisecond+time.Duration(rnd.Int64N(int64(time.Second)))) {
			return
		}
		c := s.children[rnd.IntN(len(s.children))]
		c.mu.Lock()
		if c.proc != nil && !c.killed {
			if c.proc.Kill() == nil {
				c.killed = true
				s.mu.Lock()
				s.kills++
				s.killTimes = append(s.killTimes, time.Now())
				s.mu.Unlock()
			}
		}
		c.mu.Unlock()
	}
}

// counts returns the kills and restarts so far.
func (s *supervisor) counts() (kills, restarts int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.kills, s.restarts
}

// crashCount returns the SIGKILLs the children sent themselves and the
// times of every kill and crash so far.
func (s *supervisor) crashCount() (crashes int, killTimes []time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.crashes, append([]time.Time(nil), s.killTimes...)
}

// diedOfSIGKILL reports whether err is the exit of a process killed by
// SIGKILL.
func diedOfSIGKILL(err error) bool {
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		return false
	}
	ws, ok := ee.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL
}

// stop asks every child to stop (SIGTERM), waits up to grace, then kills
// what is left. ctx of start must be cancelled first.
func (s *supervisor) stop(grace time.Duration) {
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
		return
	case <-t.C:
	}
	s.signal(syscall.SIGKILL)
	<-done
}

func (s *supervisor) signal(sig os.Signal) {
	for _, c := range s.children {
		c.mu.Lock()
		if c.proc != nil {
			c.proc.Signal(sig)
		}
		c.mu.Unlock()
	}
}
