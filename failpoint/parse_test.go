package failpoint

import (
	"errors"
	"math/rand/v2"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"syscall"
	"testing"
)

// testPoints are the names these tests may arm (failpoint cannot import the
// packages that declare them).
var testPoints = []string{"inbox.after_claim", "inbox.after_handler", "inbox.before_commit", "relay.after_publish_before_mark"}

func TestParseGood(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	s, err := Parse("inbox.after_claim=crash@0.01, relay.after_publish_before_mark=crash@0.02,"+
		"inbox.before_commit=error,inbox.after_handler=delay:1ms@0.5", r, testPoints...)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Eval("inbox.before_commit"); !errors.Is(err, ErrInjected) {
		t.Errorf("before_commit: %v, want ErrInjected", err)
	}
	if err := s.Eval("inbox.after_handler"); err != nil {
		t.Errorf("delay returned %v", err)
	}
	if err := s.Eval("inbox.after_commit_before_ack"); err != nil {
		t.Errorf("unarmed point returned %v", err)
	}
	// An error at probability 0.5 fires about half the time.
	s, err = Parse("inbox.before_commit=error@0.5", r, testPoints...)
	if err != nil {
		t.Fatal(err)
	}
	hits := 0
	for range 1000 {
		if s.Eval("inbox.before_commit") != nil {
			hits++
		}
	}
	if hits < 400 || hits > 600 {
		t.Errorf("%d hits of 1000 at p=0.5", hits)
	}
}

func TestParseEmptyIsNil(t *testing.T) {
	s, err := Parse("  ", nil, testPoints...)
	if s != nil || err != nil {
		t.Fatalf("Parse(empty) = %v, %v; want nil, nil", s, err)
	}
	if err := s.Eval("inbox.after_claim"); err != nil {
		t.Fatal(err)
	}
}

func TestParseBad(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, c := range []struct{ spec, part, reason string }{
		{"inbox.after_claim", "inbox.after_claim", "want point=action"},
		{"=crash", "=crash", "want point=action"},
		{"inbox.after_claim=", "inbox.after_claim=", "want point=action"},
		{"inbox.nowhere=crash", "inbox.nowhere=crash", `unknown point "inbox.nowhere"`},
		{"inbox.after_claim=explode", "inbox.after_claim=explode", `unknown action "explode"`},
		{"inbox.after_claim=crash@2", "inbox.after_claim=crash@2", `probability "2"`},
		{"inbox.after_claim=crash@0", "inbox.after_claim=crash@0", `probability "0"`},
		{"inbox.after_claim=crash@x", "inbox.after_claim=crash@x", `probability "x"`},
		{"inbox.after_handler=delay:soon", "inbox.after_handler=delay:soon", `delay "soon"`},
		{"inbox.after_handler=delay:-1s", "inbox.after_handler=delay:-1s", `delay "-1s"`},
		{"inbox.before_commit=error,inbox.before_commit=crash", "inbox.before_commit=crash", "armed twice"},
		{"inbox.before_commit=error,,", "", "want point=action"},
	} {
		s, err := Parse(c.spec, r, testPoints...)
		var se *SpecError
		if !errors.As(err, &se) {
			t.Errorf("Parse(%q) = %v, %v; want a *SpecError", c.spec, s, err)
			continue
		}
		if se.Part != c.part || !strings.Contains(se.Reason, c.reason) {
			t.Errorf("Parse(%q): part %q reason %q; want part %q reason containing %q", c.spec, se.Part, se.Reason, c.part, c.reason)
		}
	}
	if _, err := Parse("inbox.after_claim=crash@0.5", nil, testPoints...); err == nil {
		t.Error("a probability without a random source was accepted")
	}
}

// The crash action kills the process with SIGKILL: the test re-runs itself
// in a child that crashes at an armed point and never gets past it.
func TestParseCrashKillsTheProcess(t *testing.T) {
	if os.Getenv("FAILPOINT_CRASH_CHILD") == "1" {
		s, err := Parse("inbox.after_claim=crash", nil, testPoints...)
		if err != nil {
			os.Exit(3)
		}
		s.Eval("inbox.after_claim")
		os.Exit(4) // not reached
	}
	if runtime.GOOS == "windows" {
		t.Skip("no SIGKILL")
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestParseCrashKillsTheProcess$")
	cmd.Env = append(os.Environ(), "FAILPOINT_CRASH_CHILD=1")
	err := cmd.Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		t.Fatalf("child: %v, want killed", err)
	}
	ws, ok := ee.Sys().(syscall.WaitStatus)
	if !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("child exited with %v, want SIGKILL", err)
	}
}
