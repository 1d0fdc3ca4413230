// Package compact deletes what eos no longer needs: dedupe records older than
// the retention, attempt counters of messages long settled, and outbox rows
// already sent. It deletes in bounded batches, each in its own short
// transaction, so it never holds locks for long.
//
// The retention of dedupe records is the window in which a redelivery is
// recognised as a duplicate. It must cover the transport's redelivery
// horizon (how late the broker can redeliver a message it handed out):
// a shorter one is a configuration error, because a redelivery arriving
// after its record was deleted would be applied a second time.
package compact
