package metrics

import (
	"errors"
	"fmt"
)

// ErrRegister is matched by a *RegisterError.
var ErrRegister = errors.New("metrics: registration failed")

// RegisterError reports a collector the registerer refused, most often
// because a collector of the same name is registered already (a second
// New on one registry). It matches ErrRegister and the registerer's own
// error (errors.As with a prometheus.AlreadyRegisteredError).
type RegisterError struct {
	Metric string // the refused metric's name
	Err    error
}

func (e *RegisterError) Error() string {
	return fmt.Sprintf("metrics: registering %s: %v", e.Metric, e.Err)
}

func (e *RegisterError) Unwrap() []error { return []error{ErrRegister, e.Err} }
