package testdb

import (
	"context"
	"errors"
	"sync/atomic"

	"github.com/eoskit/eos/driver"
)

// ErrStoreDown is what a Flaky driver's Begin returns while it is down.
var ErrStoreDown = errors.New("connection refused")

// Flaky is a real driver whose Begin fails with ErrStoreDown while Down is
// set: the store outage of the failure policy.
type Flaky[TTx any] struct {
	driver.Driver[TTx]
	Down atomic.Bool
}

// Begin fails while f is down, and begins on the real driver otherwise.
func (f *Flaky[TTx]) Begin(ctx context.Context) (TTx, error) {
	if f.Down.Load() {
		var zero TTx
		return zero, ErrStoreDown
	}
	return f.Driver.Begin(ctx)
}
