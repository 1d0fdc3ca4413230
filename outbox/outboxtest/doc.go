// Package outboxtest helps test code that uses the outbox, without a broker.
//
// [RequireEnqueuedTx] checks, inside the caller's transaction, that a
// handler enqueued messages on a topic (as River's rivertest checks inserted
// jobs), and [RequireNotEnqueuedTx] that it did not. [Publisher] is an
// in-memory [outbox.Publisher] for a Relay: it stores what it is given, drops
// ids it stored before as a broker's publish dedupe does, and can be told to
// fail, so that a test sees exactly what the relay forwarded.
package outboxtest
