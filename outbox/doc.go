// Package outbox is the transactional outbox.
//
// [Outbox.Enqueue] inserts messages in the caller's transaction (a handler's,
// inside the inbox, or any other), so they are sent if and only if that
// transaction commits. A [Relay] forwards committed rows to a broker through
// a [Publisher], in order per Message.Key, with the message id as the broker's
// dedupe id (NATS Nats-Msg-Id, a Kafka idempotent producer), then marks them
// sent (or deletes them). A relay that crashes after publishing and before
// marking re-publishes the same ids: the broker's dedupe, or the next inbox,
// drops them.
//
// A row the broker refuses for good (the Publisher's error wraps
// [ErrUnpublishable]: no destination, too large) is parked with its error
// instead of retried forever: the rows of other keys keep flowing, the later
// rows of its key wait behind it, and an operator lists it
// ([Outbox.ParkedRows]) and requeues or discards it.
//
// The relay wakes when rows are enqueued (PostgreSQL LISTEN/NOTIFY; an
// in-process signal on SQLite) and polls besides, so a missed wakeup delays a
// message by at most Config.PollInterval.
package outbox
