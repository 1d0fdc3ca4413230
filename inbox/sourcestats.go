package inbox

// SourceStats is what a transport's consumer holds back from the inbox:
// the broker's view of its lag. A transport offers it through a function
// of its own (natsjs.ConsumerStats), read by metrics.Metrics.WatchConsumer
// at scrape time; it lives here, beside Source, so that neither the
// transports nor the inbox need import the metrics package.
type SourceStats struct {
	// Pending counts the messages the broker holds for the consumer and
	// has not delivered yet.
	Pending int64
	// AckPending counts the messages delivered and not acknowledged yet:
	// in flight in a process, or waiting for redelivery after a crash.
	AckPending int64
}
