// Package ctxtime waits for a duration or a context, whichever ends first:
// the backoff wait that the inbox, the relay, the drivers and the command
// all need.
package ctxtime

import (
	"context"
	"time"
)

// Sleep waits for d and reports true, or returns false as soon as ctx ends.
func Sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
