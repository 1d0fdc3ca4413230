// Package kafka is the Kafka transport of eos, on franz-go.
//
//   - [Publisher] implements outbox.Publisher over an idempotent client
//     (one with idempotence disabled is refused): each message carries its
//     id in the Eos-Id header and its key as the record key, so a key's
//     messages share a partition and keep their order; Publish hands all of
//     its messages to the client, which batches them per partition, and
//     waits a bounded time for the acks. Failures no retry can fix (too
//     large, unknown topic, refused) wrap outbox.ErrUnpublishable.
//   - [Subscriber] implements inbox.Source in a consumer group. The offset
//     of a record is committed to Kafka only once the inbox acked it, that
//     is after its transaction committed, and only up to the first record
//     of its partition not yet acked. Each Fetch hands out records of one
//     partition. A revoked partition's acked offsets are committed in the
//     revoke; its deliveries still in flight settle nothing (ErrRevoked).
//   - [Stream] is stream mode: for a member that owns partitions, the offset
//     of the next record to apply is stored in the database by the
//     transaction that applies the records (driver.Executor.OffsetsAdvance,
//     a compare and set), and a member assigned a partition starts at its
//     stored offset. A member that lost its partition without noticing (a
//     zombie) fails the compare and set and rolls back. No per-id rows.
//   - [Pipeline] is Kafka → Kafka: consume, transform and produce inside
//     Kafka transactions (franz-go's GroupTransactSession), the output and
//     the consumed offsets committed together, for pipelines that never
//     touch a database.
//   - [EnsureTopic] creates a topic.
//   - [GroupStats] reads a consumer group's lag for
//     metrics.Metrics.WatchConsumer (label [TransportName]): Pending is the
//     records of the topics past the group's committed offsets; AckPending
//     is always 0, Kafka not knowing what a member holds unacked.
//
// # Fault injection
//
// PublisherConfig.Test and SubscriberConfig.Test carry failpoints
// (package failpoint; their names in [FailpointNames]) for tests and eos
// torture. [FailPublishAckLost] loses the acks of a produce that landed:
// Publish reports nothing acknowledged and the relay's re-publish lands a
// copy, which the inbox suppresses. [FailAckLost] loses a Delivery's ack:
// Ack returns nil, the offset stays uncommitted, and the record is
// delivered again after AckWait or by its partition's next owner.
//
// # Message mapping
//
// eos.Message.ID travels as the Eos-Id header, Key as the record key,
// CreatedAt as the Eos-Created-At header (RFC 3339, nanoseconds) and the
// record timestamp; other headers travel as they are. Application headers
// named Eos-Id or Eos-Created-At (any case) are neither sent nor received.
// A delivered message carries its topic as eos.Message.Subject.
//
// # What Kafka does not do for us
//
// Kafka has no dedupe by message id: the idempotent producer drops only the
// client's own retries of a produce. A re-publish by the relay (it crashed
// after the produce, before marking the rows sent) is stored again, and the
// consumer's inbox suppresses it by its id. Kafka has no per-message nack
// or ack wait either; the Subscriber provides both from memory while it
// holds the partition (see SubscriberConfig.AckWait).
package kafka
