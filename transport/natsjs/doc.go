// Package natsjs is the NATS JetStream transport of eos, on nats.go's
// jetstream package.
//
//   - [Publisher] implements outbox.Publisher: every message carries its id as
//     Nats-Msg-Id, so JetStream drops a re-publish within the stream's
//     duplicate window; a duplicate PubAck is reported and counted, never
//     hidden. Publishes are asynchronous within a bounded window, and each
//     wait for an ack is bounded (AckTimeout). Where the server and the
//     stream allow it (nats-server 2.12 and later, AllowAtomicPublish), the
//     messages of one stream go as atomic batches, one stored write and one
//     ack per batch; a batch the server refuses, as one holding an id it has
//     stored already, is published again message by message ([BatchMode]).
//   - [Subscriber] implements inbox.Source over a durable pull consumer with
//     explicit acks, which the inbox sends only after its transaction
//     commits. Plain acks by default: a lost ack means a redelivery, which the
//     inbox's claim absorbs; double acks (about 5× slower here) are an option.
//     It pulls about one batch ahead, bounded in messages and bytes, keeps
//     the batch the inbox holds in progress, and on Close hands what it
//     pulled ahead back at once.
//   - [EnsureStream] and [EnsureConsumer] provision with validated
//     configuration: they create, or set on an existing stream or consumer
//     only the fields their config names (atomic publish among them, on by
//     default), and report what they changed;
//     [RedeliveryHorizon] tells how late a message can come back, which the
//     dedupe retention must cover.
//
// The embedded server lives in the sub-package natsembed, so that a program
// that talks to an external NATS does not link nats-server.
//
// # Message mapping
//
// eos.Message.ID travels as the Nats-Msg-Id header, Key as Eos-Key,
// CreatedAt as Eos-Created-At (RFC 3339, nanoseconds); other headers travel
// as they are (first value only). Application headers named Eos-Key or
// Eos-Created-At, or starting with Nats- in any case, are neither sent nor
// received: JetStream acts on Nats- headers (Nats-Rollup purges a subject,
// Nats-Expected-* refuse the publish, which would stall the relay) and adds
// its own on delivery. A delivered message carries the subject it came on
// as eos.Message.Subject. A message without Nats-Msg-Id arrives with an
// empty id, which the inbox dead-letters as invalid, unless
// SubscriberConfig.ID takes the id from elsewhere: messages of producers
// that are not eos carry theirs in a header of their own (CloudEventsID
// reads ce-id).
//
// # Ordering
//
// Messages of one key (Eos-Key; an empty key orders nothing) reach the
// stream in publish order whatever the broker does: the Publisher sends a
// message only once the previous message of its key was acknowledged, and
// never lets nats.go retry a publish on its own (its retries on "no
// responders", during a restart or a leader election, run on a timer per
// message and land out of order). Messages of distinct keys share the
// window, so many keys publish at the window's pace and one key at the
// pace of one round trip per message. An atomic batch is stored all or
// none, so it may hold several messages of a key; it is sent once the
// messages before it of each of its keys are acknowledged, and the
// messages of a batch the server refused are published one by one, in
// order, before any later message of their keys.
package natsjs
