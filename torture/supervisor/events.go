package supervisor

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strconv"
	"sync"
)

// EventsEnv names the environment variable that gives a child the
// descriptor of its events pipe. StartEnv gives it which start of that
// child it is (1, 2, …), so that a restarted worker can draw new faults.
const (
	EventsEnv = "EOS_SUPERVISOR_EVENTS_FD"
	StartEnv  = "EOS_SUPERVISOR_START"
)

// eventsFD is the descriptor of the pipe in the child: the first of
// exec.Cmd.ExtraFiles.
const eventsFD = 3

// Emitter is a child's end of the events pipe. A nil *Emitter (a process
// not run by a supervisor) drops every event.
type Emitter struct {
	mu sync.Mutex
	w  io.Writer
}

// ChildEmitter returns the events pipe the supervisor handed this process,
// or nil when it was not started by one.
func ChildEmitter() *Emitter {
	fd, err := strconv.Atoi(os.Getenv(EventsEnv))
	if err != nil || fd != eventsFD {
		return nil
	}
	return &Emitter{w: os.NewFile(uintptr(fd), "supervisor-events")}
}

// NewEmitter returns an Emitter writing to w, for tests of what a child
// reports.
func NewEmitter(w io.Writer) *Emitter { return &Emitter{w: w} }

// Emit reports one event. event is a word: no spaces, no line breaks. A
// write to a pipe this short is atomic and does not wait for the reader
// unless the pipe is full; an error (the supervisor is gone) is dropped.
func (e *Emitter) Emit(event string) {
	if e == nil {
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	fmt.Fprintln(e.w, event)
}

// readEvents counts the words read from r until it ends, calling on (if
// set) for each.
func (s *Supervisor) readEvents(r io.Reader, child string) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		event := sc.Text()
		s.mu.Lock()
		s.events[event]++
		s.mu.Unlock()
		if s.cfg.OnEvent != nil {
			s.cfg.OnEvent(child, event)
		}
	}
}
