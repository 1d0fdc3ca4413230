package natsjs

import (
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

// fromNATS reads an eos.Message from a NATS message. It does not validate:
// the inbox does, and dead-letters what is invalid. An unreadable
// Eos-Created-At leaves CreatedAt zero.
func fromNATS(h nats.Header, data []byte) eos.Message {
	m := eos.Message{ID: h.Get(jetstream.MsgIDHeader), Key: h.Get(HeaderKey), Payload: data}
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
