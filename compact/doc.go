// Package compact deletes what eos no longer needs: dedupe records older than
// the retention, attempt counters of messages long settled, outbox rows
// already sent, quarantined deliveries past their inspection window, and,
// only when configured, dead letters (by default a dead letter stays until
// an operator requeues or discards it). It deletes in bounded batches, each in its own short
// transaction, so it never holds locks for long. It also deletes the keys
// of package dedupe's SQL store that are past the expiry each was written
// with (dedupe.Config.Retention, not this package's).
//
// The retention of dedupe records is the window in which a redelivery is
// recognised as a duplicate. It must cover the transport's redelivery
// horizon (how late the broker can redeliver a message it handed out):
// a shorter one is a configuration error, because a redelivery arriving
// after its record was deleted would be applied a second time.
package compact
