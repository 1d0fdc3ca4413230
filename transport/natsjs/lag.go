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

// DurableStats is ConsumerStats for the durable consumer named durable on
// stream, looked up at each call: it works before the consumer exists
// (an error until then) and after it is made again, for a process that
// watches consumers others provision.
func DurableStats(js jetstream.JetStream, stream, durable string) func(ctx context.Context) (inbox.SourceStats, error) {
	return func(ctx context.Context) (inbox.SourceStats, error) {
		cons, err := js.Consumer(ctx, stream, durable) // one consumer info request
		if err != nil {
			return inbox.SourceStats{}, err
		}
		info := cons.CachedInfo()
		return inbox.SourceStats{Pending: int64(info.NumPending), AckPending: int64(info.NumAckPending)}, nil
	}
}
