package callonce

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/eoskit/eos/internal/storable"
)

// Outcome is how a call classifies its answer: Done, Failed or Unknown.
// The zero Outcome is Unknown with no cause.
type Outcome struct {
	status Status
	value  []byte
	reason string
	err    error
}

// Done is a call that was executed: value is recorded and handed on.
func Done(value []byte) Outcome { return Outcome{status: Succeeded, value: value} }

// Failed is a definitive refusal (the request was invalid, the card
// declined): value and reason are recorded and the call is not retried.
func Failed(value []byte, reason string) Outcome {
	return Outcome{status: StatusFailed, value: value, reason: reason}
}

// Unknown is an answer that does not say whether the request was executed:
// a timeout, a reset connection, a 5xx. The call is retried with the same
// idempotency key.
func Unknown(err error) Outcome { return Outcome{err: err} }

// Status is a recorded, definitive outcome.
type Status int

const (
	// Succeeded: the call was executed (Done).
	Succeeded Status = iota + 1
	// StatusFailed: the call was refused for good (Failed).
	StatusFailed
)

func (s Status) String() string {
	switch s {
	case Succeeded:
		return "succeeded"
	case StatusFailed:
		return "failed"
	}
	return fmt.Sprintf("Status(%d)", int(s))
}

// Result is the definitive outcome of a key's call, made by this Do or
// recorded by an earlier one.
type Result struct {
	Status Status
	// Value is what the call returned with Done or Failed.
	Value []byte
	// Reason is Failed's reason.
	Reason string
	// Replayed is set when the result was recorded by an earlier Do: no
	// call was made.
	Replayed bool
	// Attempts counts the calls this Do made (0 when Replayed).
	Attempts int
	// Resumed is set when this Do claimed a key an earlier owner had
	// claimed and not completed (it crashed, or gave up on Unknown
	// outcomes): calls with the same idempotency key may have run before.
	Resumed bool
}

// Err returns a *FailedError for a Failed result, nil otherwise.
func (r Result) Err() error {
	if r.Status != StatusFailed {
		return nil
	}
	return &FailedError{Reason: r.Reason}
}

// The stored form of a Result: a version byte, the status byte, the
// reason's length (uvarint), the reason, the value.
const encodingV1 = 1

func encode(r Result) []byte {
	b := make([]byte, 0, 2+binary.MaxVarintLen64+len(r.Reason)+len(r.Value))
	b = append(b, encodingV1, byte(r.Status))
	b = binary.AppendUvarint(b, uint64(len(r.Reason)))
	b = append(b, r.Reason...)
	return append(b, r.Value...)
}

var errCorrupt = errors.New("callonce: recorded result is not in a known form")

func decode(b []byte) (Result, error) {
	if len(b) < 3 || b[0] != encodingV1 || (Status(b[1]) != Succeeded && Status(b[1]) != StatusFailed) {
		return Result{}, errCorrupt
	}
	n, w := binary.Uvarint(b[2:])
	if w <= 0 || n > uint64(len(b)-2-w) {
		return Result{}, errCorrupt
	}
	rest := b[2+w:]
	return Result{Status: Status(b[1]), Reason: string(rest[:n]), Value: rest[n:]}, nil
}

// reason bounds and sanitizes a Failed reason for storage.
func reason(s string) string { return storable.Text(s, MaxReasonLen) }
