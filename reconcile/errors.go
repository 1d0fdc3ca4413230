package reconcile

import (
	"errors"
	"fmt"
)

// ErrSource marks a failure to read the source (the stream, the
// producer's table) or the duplicates query; the store's failures wrap
// eos.ErrStore.
var ErrSource = errors.New("reconcile: source failure")

// SourceError is a failure of a source. It wraps ErrSource and the cause.
type SourceError struct {
	Source string
	Err    error
}

func (e *SourceError) Error() string { return fmt.Sprintf("reconcile: source %s: %v", e.Source, e.Err) }

// Unwrap returns ErrSource and the cause.
func (e *SourceError) Unwrap() []error { return []error{ErrSource, e.Err} }
