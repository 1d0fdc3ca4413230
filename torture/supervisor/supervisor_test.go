package supervisor_test

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/eoskit/eos/torture/supervisor"
)

// childEnv selects what the test binary does when a supervisor runs it.
const childEnv = "SUPERVISOR_TEST_CHILD"

// TestMain lets the test binary serve as the supervised children.
func TestMain(m *testing.M) {
	if mode := os.Getenv(childEnv); mode != "" {
		os.Exit(runChild(mode))
	}
	os.Exit(m.Run())
}

// runChild is a child process: "up" reports up and waits for its stdin to
// close; "fail" exits 1 at once; "crash-once" reports an event and
// SIGKILLs itself on its first start, and is "up" after.
func runChild(mode string) int {
	ev := supervisor.ChildEmitter()
	switch {
	case mode == "fail":
		return 1
	case mode == "crash-once" && os.Getenv(supervisor.StartEnv) == "1":
		ev.Emit("before-crash")
		syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {}
	}
	ev.Emit("up")
	ev.EmitValue("addr", "127.0.0.1:1/start-"+os.Getenv(supervisor.StartEnv))
	io.Copy(io.Discard, os.Stdin)
	return 0
}

// start runs one child in mode and returns the supervisor, a channel of
// its events and a function that stops it.
func start(t *testing.T, mode string, selfKills bool) (*supervisor.Supervisor, <-chan string, func()) {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	events := make(chan string, 16)
	s := supervisor.New(supervisor.Config{Exe: exe, Out: io.Discard, SelfKills: selfKills,
		Children: []supervisor.Child{{Name: "w1", Env: []string{childEnv + "=" + mode}}},
		OnEvent: func(e supervisor.Event) {
			if e.Value != "" {
				events <- fmt.Sprintf("%s:%d:%s=%s", e.Child, e.Start, e.Name, e.Value)
				return
			}
			events <- e.Child + ":" + e.Name
		},
		OnEnd: func(child string, start int) { events <- fmt.Sprintf("%s:%d:end", child, start) }})
	ctx, cancel := context.WithCancel(context.Background())
	s.Start(ctx)
	stopped := false
	stop := func() {
		if !stopped {
			stopped = true
			cancel()
			s.Stop(10 * time.Second)
		}
	}
	t.Cleanup(stop)
	return s, events, stop
}

func next(t *testing.T, events <-chan string, want string) {
	t.Helper()
	select {
	case got := <-events:
		if got != want {
			t.Fatalf("event %q, want %q", got, want)
		}
	case <-time.After(30 * time.Second): // a bound on a hang, not a wait for something
		t.Fatalf("no event %q", want)
	}
}

// nextSet waits for the events want, in any order.
func nextSet(t *testing.T, events <-chan string, want ...string) {
	t.Helper()
	got := map[string]bool{}
	for range want {
		select {
		case e := <-events:
			got[e] = true
		case <-time.After(30 * time.Second): // a bound on a hang, not a wait for something
			t.Fatalf("events %v, want %q", got, want)
		}
	}
	for _, w := range want {
		if !got[w] {
			t.Errorf("events %v, want %q", got, w)
		}
	}
}

func TestKillOneRestartsAndEventsAreCounted(t *testing.T) {
	s, events, stop := start(t, "up", false)
	next(t, events, "w1:up")
	next(t, events, "w1:1:addr=127.0.0.1:1/start-1")
	if !s.KillOne(rand.New(rand.NewPCG(1, 1))) {
		t.Fatal("KillOne killed nothing with a child running")
	}
	// The first life's end and the second's events come from two readers:
	// in either order.
	nextSet(t, events, "w1:1:end", "w1:up", "w1:2:addr=127.0.0.1:1/start-2")
	stop()
	next(t, events, "w1:2:end")
	c := s.Counts()
	if c.Kills != 1 || c.Restarts != 1 || c.Crashes != 0 || len(c.KillTimes) != 1 || c.Events["up"] != 2 || c.Events["addr"] != 2 {
		t.Errorf("counts %+v; want 1 kill, 1 restart, 2 ups, 2 addrs", c)
	}
}

// A child that SIGKILLs itself (a failpoint's crash) is a crash, restarted
// at once, and what it reported before dying is counted.
func TestSelfKillIsACrash(t *testing.T) {
	s, events, stop := start(t, "crash-once", true)
	next(t, events, "w1:before-crash")
	nextSet(t, events, "w1:1:end", "w1:up")
	stop()
	c := s.Counts()
	if c.Crashes != 1 || c.Kills != 0 || len(c.KillTimes) != 1 || c.Events["before-crash"] != 1 {
		t.Errorf("counts %+v; want 1 crash and its event", c)
	}
	select {
	case err := <-s.Fatal():
		t.Errorf("fatal: %v", err)
	default:
	}
}

func TestCrashLoopIsFatal(t *testing.T) {
	s, _, _ := start(t, "fail", false)
	select {
	case err := <-s.Fatal():
		if !strings.Contains(err.Error(), "worker w1 failed 5 times") {
			t.Errorf("fatal: %v", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("a child exiting at once was never reported")
	}
}

// EmitValue writes event=value; what would not read back as one event is
// dropped.
func TestEmitValue(t *testing.T) {
	var b strings.Builder
	e := supervisor.NewEmitter(&b)
	e.EmitValue("addr", "127.0.0.1:9/x")
	e.EmitValue("a=b", "v")
	e.EmitValue("", "v")
	e.EmitValue("addr", "two words")
	e.EmitValue("addr", "line\nbreak")
	if b.String() != "addr=127.0.0.1:9/x\n" {
		t.Errorf("wrote %q, want only the valid event", b.String())
	}
}
