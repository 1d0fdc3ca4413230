package inbox

import (
	"errors"
	"time"
)

// Outcome is what became of one delivery.
type Outcome int

const (
	// Applied: newly claimed, the handler succeeded, committed; acked.
	Applied Outcome = iota + 1
	// Duplicate: already claimed with the same fingerprint; acked.
	Duplicate
	// Quarantined: already claimed with a different fingerprint; stored
	// for inspection, not applied; acked.
	Quarantined
	// Retry: the handler failed; the attempt is counted and the delivery
	// nacked for redelivery.
	Retry
	// DeadLettered: failed MaxAttempts times, failed permanently or was
	// invalid; stored in the dead-letter table with its last error; acked.
	DeadLettered
)

func (o Outcome) String() string {
	switch o {
	case Applied:
		return "applied"
	case Duplicate:
		return "duplicate"
	case Quarantined:
		return "quarantined"
	case Retry:
		return "retry"
	case DeadLettered:
		return "dead_lettered"
	}
	return "unknown"
}

// Result is the outcome of one delivery of a batch.
type Result struct {
	ID        string
	Outcome   Outcome
	Attempts  int       // handler failures so far, for Retry and DeadLettered
	Err       error     // the handler's error, for Retry and DeadLettered
	CreatedAt time.Time // the message's CreatedAt
	// Subject is where the transport delivered the message (its
	// destination, for a hook naming it in a span or a log).
	Subject string
	// Headers are the message's headers (its W3C traceparent, for a
	// hook linking the outcome to a trace), shared with the message: a
	// hook must not modify them.
	Headers map[string]string
	// DeliveryCount is which delivery of the message this was (1 for the
	// first, above 1 for a redelivery), as its Delivery reports it
	// ([DeliveryCounter]); 0 when the transport does not say, and for a
	// requeued dead letter.
	DeliveryCount int
}

// BatchResult reports one committed batch.
type BatchResult struct {
	Consumer string
	Results  []Result // in delivery order
	// Rounds is how many transactions the batch took: 1 plus one per
	// redo after a handler failure.
	Rounds      int
	Started     time.Time
	CommittedAt time.Time
	// SettleErrors counts acks and nacks the transport refused after the
	// commit. The commit stands; the transport will redeliver, and the
	// claim will suppress the redelivery.
	SettleErrors int
	// Phases is where the batch's time went, over all its rounds.
	Phases Phases
	// Timeline is when each phase of each round ran, in order, on the
	// wall clock (not Config.Test.Now): what a trace of the batch shows.
	Timeline []PhaseTime
}

// Phase names a part of a batch's round (see [Phases]).
type Phase int

// The phases of a round, in the order they run.
const (
	PhaseClaim Phase = iota + 1
	PhaseHandle
	PhaseCommit
)

func (p Phase) String() string {
	switch p {
	case PhaseClaim:
		return "claim"
	case PhaseHandle:
		return "handle"
	case PhaseCommit:
		return "commit"
	}
	return "unknown"
}

// PhaseTime is when one phase of one round of a batch ran. A round that
// ended early has no phase after the one it ended in.
type PhaseTime struct {
	Phase      Phase
	Round      int // from 1
	Start, End time.Time
}

// Phases splits a batch's time by what the inbox was doing, measured on
// the monotonic clock (not Config.Test.Now).
type Phases struct {
	// Claim: beginning the transaction, taking back requeued dead
	// letters, the claim and the duplicate and quarantine checks.
	Claim time.Duration
	// Handle: the handlers (with their savepoints).
	Handle time.Duration
	// Commit: recording failures and dead letters, and the commit. A round
	// that ends early counts its rollback in the phase it ended in.
	Commit time.Duration
}

// Count returns how many results have outcome o.
func (b *BatchResult) Count(o Outcome) int {
	n := 0
	for _, r := range b.Results {
		if r.Outcome == o {
			n++
		}
	}
	return n
}

// ErrPermanent marks a handler error that retrying cannot fix (malformed
// input, a rule violation): the message is dead-lettered at once.
var ErrPermanent = errors.New("inbox: permanent failure")

// Permanent wraps err so that errors.Is(err, ErrPermanent) holds.
func Permanent(err error) error { return &permanentError{err} }

type permanentError struct{ err error }

func (e *permanentError) Error() string   { return e.err.Error() }
func (e *permanentError) Unwrap() []error { return []error{ErrPermanent, e.err} }

// ErrSourceClosed is returned by ChanSource.Fetch, and so by Run, once the
// channel is closed and drained.
var ErrSourceClosed = errors.New("inbox: source closed")

// ErrHandlerPanic is wrapped by the error recorded when a handler panics.
var ErrHandlerPanic = errors.New("inbox: handler panicked")

// ErrHandlerTxAborted is wrapped by the error recorded when a handler
// returned nil but left its transaction failed: on PostgreSQL a statement
// error the handler ignored aborts the transaction, and nothing after it can
// run until its savepoint is rolled back.
var ErrHandlerTxAborted = errors.New("inbox: handler returned nil after a statement of its transaction failed")
