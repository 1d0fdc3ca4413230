package supervisor

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
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
// or nil when it was not started by one. Keep it reachable while the
// process may still report events: the pipe closes once it is collected.
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

// EmitValue reports one event that carries a value, as event=value (for
// instance where the child can be reached). event and value are words, and
// event holds no "="; an event that breaks this is dropped, not mangled.
func (e *Emitter) EmitValue(event, value string) {
	if event == "" || strings.ContainsAny(event, "= \t\r\n") || strings.ContainsAny(value, " \t\r\n") {
		return
	}
	e.Emit(event + "=" + value)
}

// Event is one event a child reported: Name, and Value when it was sent
// with EmitValue. Start says which start of the child sent it (see
// StartEnv): a restarted child's events are told apart from its last
// life's.
type Event struct {
	Child string
	Start int
	Name  string
	Value string
}

// readEvents counts the events read from r until it ends, calling
// Config.OnEvent (if set) for each. A line too long to be an event stops
// the reading but not the draining: the child never blocks on a full
// pipe.
func (s *Supervisor) readEvents(r io.Reader, child string, start int) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		name, value, _ := strings.Cut(sc.Text(), "=")
		s.mu.Lock()
		s.events[name]++
		s.mu.Unlock()
		if s.cfg.OnEvent != nil {
			s.cfg.OnEvent(Event{Child: child, Start: start, Name: name, Value: value})
		}
	}
	io.Copy(io.Discard, r)
}
