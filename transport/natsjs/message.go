package natsjs

import (
	"net/url"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/eoskit/eos"
)

// Header names eos uses on NATS messages.
const (
	HeaderKey       = "Eos-Key"
	HeaderCreatedAt = "Eos-Created-At"
)

// reserved reports whether a header name is not the application's: eos's
// own headers, and the Nats- headers (any case), which JetStream interprets
// (Nats-Rollup purges a subject, Nats-Expected-* refuse a publish, Nats-TTL
// expires it) or adds on delivery.
func reserved(name string) bool {
	return name == HeaderKey || name == HeaderCreatedAt || len(name) >= 5 && strings.EqualFold(name[:5], "Nats-")
}

// toNATS builds the NATS message for m on subject. Application headers with
// reserved names are not sent.
func toNATS(subject string, m eos.Message) *nats.Msg {
	h := make(nats.Header, len(m.Headers)+3)
	for k, v := range m.Headers {
		if !reserved(k) {
			h[k] = []string{v}
		}
	}
	h.Set(jetstream.MsgIDHeader, m.ID)
	if m.Key != "" {
		h.Set(HeaderKey, m.Key)
	}
	if !m.CreatedAt.IsZero() {
		h.Set(HeaderCreatedAt, m.CreatedAt.UTC().Format(time.RFC3339Nano))
	}
	return &nats.Msg{Subject: subject, Header: h, Data: m.Payload}
}

// fromNATS reads an eos.Message from a NATS message delivered on subject,
// its id given by id. It does not validate: the inbox does, and
// dead-letters what is invalid. An unreadable Eos-Created-At leaves
// CreatedAt zero.
func fromNATS(subject string, h nats.Header, data []byte, id IDFunc) eos.Message {
	m := eos.Message{ID: id(h, subject, data), Key: h.Get(HeaderKey), Payload: data, Subject: subject}
	if ts := h.Get(HeaderCreatedAt); ts != "" {
		m.CreatedAt, _ = time.Parse(time.RFC3339Nano, ts)
	}
	for k, vs := range h {
		if len(vs) == 0 || reserved(k) {
			continue
		}
		if m.Headers == nil {
			m.Headers = make(map[string]string, len(h))
		}
		m.Headers[k] = vs[0]
	}
	return m
}

// IDFunc returns the eos id of a message as JetStream delivers it: its
// headers, subject and payload. "" means the message has none; the inbox
// dead-letters it as invalid.
//
// The id must be the same on every delivery of an event and on every
// publish of it (a producer's retry, a re-publish after a crash), and
// different for different events: the inbox suppresses a second apply by
// the id alone. An id made of the stream sequence, the time or a random
// number makes each re-publish a new event, and exactly-once does not
// hold.
type IDFunc func(h nats.Header, subject string, data []byte) string

// HeaderID returns an IDFunc that takes the id from header name (case
// sensitive, as NATS headers are). The default of SubscriberConfig.ID is
// HeaderID(jetstream.MsgIDHeader): the Nats-Msg-Id header eos's Publisher
// sets, which JetStream also dedupes on within its duplicate window.
func HeaderID(name string) IDFunc {
	return func(h nats.Header, _ string, _ []byte) string { return h.Get(name) }
}

// HeaderCloudEventsID is the header of a CloudEvent's id in the binary
// content mode of the CloudEvents NATS binding.
const HeaderCloudEventsID = "ce-id"

// CloudEventsID is an IDFunc for CloudEvents in binary content mode: the
// ce-id header, percent-decoded as the binding encodes it (a value that is
// not valid percent-encoding is taken as it is). Producers without eos
// publish such events with a plain nats.Publish, without Nats-Msg-Id;
// JetStream then stores each re-publish, and the inbox suppresses all but
// the first.
//
// CloudEvents ids are unique per source only. When producers of several
// sources publish on a consumer's subjects and their ids can meet, use an
// IDFunc of the ce-source and ce-id headers both.
func CloudEventsID(h nats.Header, _ string, _ []byte) string {
	v := h.Get(HeaderCloudEventsID)
	if id, err := url.PathUnescape(v); err == nil {
		return id
	}
	return v
}
