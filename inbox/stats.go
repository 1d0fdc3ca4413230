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
