// Package producer publishes the torture and demo workload to the ORDERS
// stream (or the orders topic on Kafka, through [Publisher]) and
// misbehaves on purpose, as real producers do: it retries
// publishes with the same id inside the broker's dedupe window, publishes
// copies again after the window (which the broker stores as new messages,
// so that only the inbox's claim keeps them from being applied twice;
// Kafka, which has no dedupe by id, stores the retries too),
// mixes malformed inputs among the orders, and resends every publish left
// without a PubAck.
//
// Each publish is announced in the intent log (torture/intents) before it
// is made, so that the checker knows what was meant to be sent whatever
// the producer itself counts.
package producer
