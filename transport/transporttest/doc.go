// Package transporttest is the conformance suite of eos's transports: what
// the inbox and the outbox rely on from a broker, checked through the
// transport's outbox.Publisher and inbox.Source only, so that every
// transport (NATS JetStream, Kafka) runs the same tests.
//
// A transport's test calls [Run] with a function that builds a [Harness]: a
// topic, a publisher to it and a durable consumer of it, all its own, so
// that subtests are isolated from each other. The suite checks
//
//   - PublishDedupe: a second publish of an id is dropped by the broker and
//     reported as a duplicate;
//   - RedeliveryAfterMissingAck: a delivery that is neither acked nor
//     nacked comes back;
//   - NackRedelivers: a nacked delivery comes back after its delay, before
//     the ack wait;
//   - AckOnlyAfterCommit: an inbox.Processor whose transaction fails
//     acknowledges nothing, the messages come back, and each is applied
//     exactly once;
//   - OrderOnOneTopic: messages published in order, in one call and in
//     several, arrive in that order;
//   - RestartWithoutLoss: messages the broker acknowledged survive its
//     restart (skipped when the harness cannot restart the broker);
//   - InboxEndToEnd: Processor.Run over the source applies every message
//     exactly once while the broker drops re-publishes and redelivers
//     messages whose ack was lost.
//
// Every message is also checked to arrive as it was published: id, key,
// payload, headers and CreatedAt (published at millisecond precision).
//
// The suite waits on Fetch and on channels only; Harness.Timeout bounds
// each wait as a failure bound, never as a delay.
package transporttest
