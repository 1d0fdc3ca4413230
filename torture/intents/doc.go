// Package intents is the producer's intent log: before each publish, the
// producer appends what it is about to publish (an order, a retry, a copy
// past the broker's dedupe window, a malformed input, or the resend of a
// publish left without a PubAck) to a file of JSON lines and fsyncs it.
//
// The checker (torture/check) reads the log instead of trusting anything
// the producer or the workers count: an order is attempted when the log
// announced it, whatever happened to the producer afterwards.
package intents
