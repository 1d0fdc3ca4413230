package inbox

import (
	"context"

	"github.com/eoskit/eos/driver"
)

// Stats counts the rows the inbox keeps for one consumer: claims (dedupe
// records), failed attempts recorded (see Config.MaxAttempts), dead letters
// and quarantined deliveries.
type Stats = driver.InboxStats

// Stats counts this consumer's rows in one read, for an operator or a
// checker that must not depend on eos's table names.
func (p *Processor[TTx]) Stats(ctx context.Context) (Stats, error) {
	var st Stats
	err := p.read(ctx, func(ex driver.Executor) (err error) {
		st, err = ex.InboxStats(ctx, p.cfg.Consumer)
		return err
	})
	return st, err
}

// Activity is what a Processor is doing at one moment, read without the
// store: for gauges an exporter reads at scrape time (see
// metrics.Metrics.WatchInbox) and for health checks.
type Activity struct {
	// InFlight counts the deliveries the Processor holds and has not
	// settled yet: the batch being processed (retries of a stalled batch
	// included) and, with prefetch, the batch fetched ahead; those of
	// every Run and Process call at once.
	InFlight int
	// Stalled counts the Runs retrying a batch after a store failure
	// (nothing of it is acknowledged meanwhile); 0 when none is.
	Stalled int
	// Stalls counts the stalls since the Processor was made: a batch whose
	// store failed counts once, however many retries it took.
	Stalls uint64
}

// Activity returns what the Processor is doing now. It is safe to call
// from any goroutine and does not touch the store.
func (p *Processor[TTx]) Activity() Activity {
	return Activity{InFlight: int(p.inFlight.Load()), Stalled: int(p.stalled.Load()), Stalls: p.stalls.Load()}
}
