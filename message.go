package eos

import (
	"crypto/sha256"
	"encoding/binary"
	"time"
)

// Message is one logical event. ID identifies it across every delivery,
// retry and replay: two deliveries with the same ID are the same event.
type Message struct {
	// ID is the event's unique id. Required; see [Limits] for its shape.
	ID string
	// Key orders messages: the outbox relay forwards messages with the same
	// Key in the order they were enqueued. Empty means no ordering.
	Key string
	// Payload is the event body, opaque to eos.
	Payload []byte
	// Headers carry metadata. Names must be valid header tokens (RFC 9110).
	// Headers do not count towards the fingerprint.
	Headers map[string]string
	// CreatedAt is when the producer created the event. Zero means unknown.
	CreatedAt time.Time
	// Subject is where the transport delivered the message (a NATS
	// subject): a consumer of orders.> tells orders.created from
	// orders.cancelled by it. For a message the outbox relay hands to a
	// Publisher it is the row's topic; Enqueue takes the topic as its own
	// argument and ignores Subject. Empty means unknown. Like Headers it
	// does not count towards the fingerprint: the same event re-published
	// on another subject is still the same event.
	Subject string
}

// FingerprintSize is the length in bytes of a [Fingerprint].
const FingerprintSize = 16

// Fingerprint identifies a message's content: the first 16 bytes of the
// SHA-256 of its Key and Payload (not its ID, Headers, CreatedAt or
// Subject). Two deliveries with the same ID and the same
// fingerprint are duplicates; the same ID with a different fingerprint is a
// conflict, quarantined instead of applied or dropped.
func Fingerprint(m Message) []byte {
	h := sha256.New()
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], uint64(len(m.Key)))
	h.Write(n[:])
	h.Write([]byte(m.Key))
	h.Write(m.Payload)
	return h.Sum(nil)[:FingerprintSize]
}
