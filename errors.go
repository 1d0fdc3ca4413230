package eos

import (
	"errors"
	"fmt"
)

// Sentinel errors shared by every package. Test with errors.Is; the concrete
// errors wrapping them carry the details (errors.As).
var (
	// ErrInvalidMessage is wrapped by every [ValidationError].
	ErrInvalidMessage = errors.New("eos: invalid message")
	// ErrInvalidConfig is wrapped by every [ConfigError].
	ErrInvalidConfig = errors.New("eos: invalid configuration")
	// ErrStore marks a failure of the storage engine on eos's own path
	// (claim, commit, relay). Processing stalls on it; nothing is acked.
	ErrStore = errors.New("eos: store failure")
)

// Field names the part of a message a [ValidationError] is about.
type Field string

const (
	FieldID      Field = "id"
	FieldKey     Field = "key"
	FieldPayload Field = "payload"
	FieldHeader  Field = "header"
	FieldTopic   Field = "topic"
	FieldSubject Field = "subject"
)

// ValidationError reports why a message was refused. It wraps
// [ErrInvalidMessage].
type ValidationError struct {
	Field  Field  // which part of the message
	Name   string // the header name, for FieldHeader
	Reason string // what is wrong, in words
}

func (e *ValidationError) Error() string {
	if e.Field == FieldHeader && e.Name != "" {
		return fmt.Sprintf("eos: invalid message: header %q: %s", e.Name, e.Reason)
	}
	return fmt.Sprintf("eos: invalid message: %s: %s", e.Field, e.Reason)
}

func (e *ValidationError) Unwrap() error { return ErrInvalidMessage }

// ConfigError reports an invalid configuration value. It wraps
// [ErrInvalidConfig].
type ConfigError struct {
	Field  string // e.g. "inbox.Config.Retention"
	Reason string
}

func (e *ConfigError) Error() string {
	return fmt.Sprintf("eos: invalid configuration: %s: %s", e.Field, e.Reason)
}

func (e *ConfigError) Unwrap() error { return ErrInvalidConfig }

// StoreError wraps a storage failure on eos's own path with the operation
// that failed. It matches [ErrStore] and the underlying error.
type StoreError struct {
	Op  string // e.g. "inbox.claim"
	Err error
}

func (e *StoreError) Error() string { return fmt.Sprintf("eos: store failure in %s: %v", e.Op, e.Err) }

// Unwrap returns both ErrStore and the cause, so errors.Is matches either.
func (e *StoreError) Unwrap() []error { return []error{ErrStore, e.Err} }
