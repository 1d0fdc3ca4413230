package dedupe

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Store is the contract of a dedupe backend. Scopes and keys are opaque,
// bounded strings (see Limits); the fingerprint is opaque bytes chosen by
// the caller (httpidem's is a versioned SHA-256 of the request). All
// methods are safe for concurrent use.
type Store interface {
	// Claim tries to take key in scope for a lease of the given duration
	// (> 0). See Status for the outcomes. An expired lease of another
	// owner, or a released key, is taken over when the fingerprint is the
	// same: the new lease has a greater generation. A record past its
	// retention is as if absent: its key is claimed afresh, with any
	// fingerprint.
	Claim(ctx context.Context, scope, key string, fingerprint []byte, lease time.Duration) (Claim, error)
	// Complete stores result for the lease's key and ends the lease: later
	// claims get Completed with this result. ErrFenced when l is not the
	// current lease (expired and taken over, released, or completed). A
	// lease that expired but was not taken over may still complete: no one
	// else ran the work.
	Complete(ctx context.Context, l Lease, result []byte) error
	// Release gives the key up without a result, so that a retry may claim
	// it again (the request failed in a way worth retrying); the key stays
	// bound to its fingerprint until its record expires. ErrFenced as for
	// Complete.
	Release(ctx context.Context, l Lease) error
	// Renew extends the lease to the given duration from now and returns
	// it with its new expiry. ErrFenced as for Complete, and when the lease
	// has expired (even if nobody took the key over since: a holder that
	// let its lease lapse must not assume it still owns the key).
	Renew(ctx context.Context, l Lease, lease time.Duration) (Lease, error)
}

// Status is what Claim found.
type Status int

const (
	// Claimed: the caller holds the key (Claim.Lease); it must Complete or
	// Release it before the lease expires, or Renew it.
	Claimed Status = iota + 1
	// Completed: the key's work is done; Claim.Result is its stored result.
	Completed
	// InProgress: another owner holds a live lease; retry after
	// Claim.RetryAfter (when that lease expires, at the latest).
	InProgress
	// Mismatch: the key was claimed with another fingerprint: a different
	// request reuses the key. Nothing was changed.
	Mismatch
)

func (s Status) String() string {
	switch s {
	case Claimed:
		return "claimed"
	case Completed:
		return "completed"
	case InProgress:
		return "in_progress"
	case Mismatch:
		return "mismatch"
	}
	return fmt.Sprintf("Status(%d)", int(s))
}

// Claim is the answer of Store.Claim.
type Claim struct {
	Status Status
	// Lease is the caller's lease when Status is Claimed.
	Lease Lease
	// Result is the stored result when Status is Completed.
	Result []byte
	// CompletedAt is when the result was stored, when Status is Completed.
	CompletedAt time.Time
	// RetryAfter is how long until the current lease expires, when Status
	// is InProgress (at least 1ms).
	RetryAfter time.Duration
}

// Lease is a claim on a key, fenced: Token is random per claim, and
// Generation grows by one at each claim of the key (a takeover included),
// so a stale holder is told apart from the current one even if tokens were
// to repeat. A record removed after its retention takes its generation
// with it (the next claim starts at 1 again): there the token alone tells
// the holders apart, which is why stores check both.
type Lease struct {
	Scope, Key string
	Token      string
	Generation int64
	// Expires is when the lease ends, by the store's clock.
	Expires time.Time
}

// ErrFenced is returned by Complete, Release and Renew for a lease that is
// not the key's current one: it expired and another owner claimed the key,
// or it was completed or released already. The caller must not act as the
// owner (its result is not stored).
var ErrFenced = errors.New("dedupe: lease is not the key's current one")

// ErrResultTooLarge is returned by Complete for a result over
// Config.MaxResultSize bytes; the lease is kept.
var ErrResultTooLarge = errors.New("dedupe: result too large")

// ErrInvalid marks a call with an argument no store accepts (an empty or
// oversized scope or key, a lease duration ≤ 0); see *InvalidError.
var ErrInvalid = errors.New("dedupe: invalid argument")

// InvalidError names the argument of a refused call.
type InvalidError struct {
	Arg    string // "scope", "key", "fingerprint", "lease"
	Reason string
}

func (e *InvalidError) Error() string { return "dedupe: " + e.Arg + ": " + e.Reason }

// Unwrap makes errors.Is(err, ErrInvalid) hold.
func (e *InvalidError) Unwrap() error { return ErrInvalid }

// Limits every Store enforces, with the same *InvalidError.
const (
	MaxScopeLen       = 512 // bytes
	MaxKeyLen         = 512 // bytes
	MaxFingerprintLen = 64  // bytes
)

// Check validates Claim's arguments as every Store must: a non-empty scope
// and key within their bounds (any bytes: stores keep them as given), a
// fingerprint of at most MaxFingerprintLen bytes, a positive lease.
func Check(scope, key string, fingerprint []byte, lease time.Duration) error {
	switch {
	case scope == "":
		return &InvalidError{Arg: "scope", Reason: "empty"}
	case len(scope) > MaxScopeLen:
		return &InvalidError{Arg: "scope", Reason: fmt.Sprintf("%d bytes, more than %d", len(scope), MaxScopeLen)}
	case key == "":
		return &InvalidError{Arg: "key", Reason: "empty"}
	case len(key) > MaxKeyLen:
		return &InvalidError{Arg: "key", Reason: fmt.Sprintf("%d bytes, more than %d", len(key), MaxKeyLen)}
	case len(fingerprint) > MaxFingerprintLen:
		return &InvalidError{Arg: "fingerprint", Reason: fmt.Sprintf("%d bytes, more than %d", len(fingerprint), MaxFingerprintLen)}
	case lease <= 0:
		return &InvalidError{Arg: "lease", Reason: fmt.Sprintf("%v, want > 0", lease)}
	}
	return nil
}
