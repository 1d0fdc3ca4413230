package service

import "fmt"

// State is what a Service is doing.
type State int

const (
	// Stopped: not started yet, or stopped by Stop.
	Stopped State = iota
	// Running: every part runs and no inbox is stalled. Ready.
	Running
	// Stalled: an inbox's store failed under a batch and the batch is being
	// retried with backoff; nothing of it is acknowledged meanwhile. It
	// ends when a batch of that inbox commits.
	Stalled
	// Paused: Pause was called; no runner fetches. Batches in flight when
	// it was called still finish.
	Paused
	// Stopping: Stop was called (or a part failed); the batches in flight
	// are finishing.
	Stopping
	// Failed: a part ended with an error, and the Service stopped the
	// others (or is stopping them). Health.Err says why.
	Failed
)

func (s State) String() string {
	switch s {
	case Stopped:
		return "stopped"
	case Running:
		return "running"
	case Stalled:
		return "stalled"
	case Paused:
		return "paused"
	case Stopping:
		return "stopping"
	case Failed:
		return "failed"
	}
	return fmt.Sprintf("State(%d)", int(s))
}

// Health is a Service's state, for readiness probes and dashboards.
type Health struct {
	State State
	// Err is the error that failed the Service, or else the last store
	// failure an inbox reported, kept after the store recovered, for
	// diagnosis; nil when there was none.
	Err error
	// Stalled names the consumers stalled on their store, when State is
	// Stalled.
	Stalled []string
}

// Ready reports whether the Service is Running: every part runs and no
// inbox is stalled.
func (h Health) Ready() bool { return h.State == Running }
