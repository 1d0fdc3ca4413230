package callonce

import (
	"errors"
	"fmt"
	"time"
)

// Sentinels of the errors of Do; the typed errors below wrap them.
var (
	// ErrUnknownOutcome: the calls of this Do all ended Unknown; the
	// request may have been executed. Retry later: the same idempotency
	// key is sent again, and the service replays its first answer.
	ErrUnknownOutcome = errors.New("callonce: outcome unknown")
	// ErrInProgress: another worker holds the key's claim and is calling.
	// Retry after InProgressError.RetryAfter.
	ErrInProgress = errors.New("callonce: call in progress elsewhere")
	// ErrMismatch: the key was claimed with another fingerprint: a
	// different request reuses the key. Retrying cannot fix it.
	ErrMismatch = errors.New("callonce: key reused with a different request")
	// ErrLeaseLost: this Do lost its claim while calling (its lease
	// expired and another worker took the key over, or renewing failed
	// until the lease ran out). Its answer, if any, is not recorded; the
	// new owner calls with the same idempotency key.
	ErrLeaseLost = errors.New("callonce: claim lost while calling")
	// ErrFailed is wrapped by the *FailedError of a Failed result
	// (Result.Err).
	ErrFailed = errors.New("callonce: call failed")
	// ErrNotStaged is returned by Stage.Result for a message the Stage did
	// not prepare (not fetched through Stage.Source or Stage.Prepare).
	ErrNotStaged = errors.New("callonce: no staged call for the message")
)

// UnknownOutcomeError is returned when every call of a Do ended Unknown. It
// matches ErrUnknownOutcome and the last call's error.
type UnknownOutcomeError struct {
	Scope, Key string
	Attempts   int
	Err        error // the last Unknown's cause; may be nil
}

func (e *UnknownOutcomeError) Error() string {
	return fmt.Sprintf("callonce: %s/%s: outcome unknown after %d attempts: %v", e.Scope, e.Key, e.Attempts, e.Err)
}

func (e *UnknownOutcomeError) Unwrap() []error {
	if e.Err == nil {
		return []error{ErrUnknownOutcome}
	}
	return []error{ErrUnknownOutcome, e.Err}
}

// InProgressError is returned when another owner holds the key. It matches
// ErrInProgress.
type InProgressError struct {
	Scope, Key string
	RetryAfter time.Duration // until the holder's lease expires, at the latest
}

func (e *InProgressError) Error() string {
	return fmt.Sprintf("callonce: %s/%s: in progress elsewhere, retry after %v", e.Scope, e.Key, e.RetryAfter)
}

func (e *InProgressError) Unwrap() error { return ErrInProgress }

// FailedError is a Failed result as an error. It matches ErrFailed.
type FailedError struct{ Reason string }

func (e *FailedError) Error() string { return "callonce: call failed: " + e.Reason }

func (e *FailedError) Unwrap() error { return ErrFailed }
