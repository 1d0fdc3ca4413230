package natsjs

import (
	"context"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/eoskit/eos/inbox"
)

// TransportName is the transport label this package's consumers carry in
// eos's metrics (metrics.Metrics.WatchConsumer).
const TransportName = "natsjs"

// ConsumerStats returns a function reading cons's lag from the server's
// consumer info, one request per call: NumPending (messages not delivered
// yet) and NumAckPending (delivered, not acknowledged). Pass it to
// metrics.Metrics.WatchConsumer. It asks the server each time, never the
// cached info, so a scrape shows the lag of that moment.
func ConsumerStats(cons jetstream.Consumer) func(ctx context.Context) (inbox.SourceStats, error) {
	return func(ctx context.Context) (inbox.SourceStats, error) {
		info, err := cons.Info(ctx)
		if err != nil {
			return inbox.SourceStats{}, err
		}
		return inbox.SourceStats{Pending: int64(info.NumPending), AckPending: int64(info.NumAckPending)}, nil
	}
}
