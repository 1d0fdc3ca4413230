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

// toNATS builds the NATS message for m on subject.
func toNATS(subject string, m eos.Message) *nats.Msg {
	h := nats.Header{}
	for k, v := range m.Headers {
		h.Set(k, v)
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
// the inbox does, and dead-letters what is invalid.
func fromNATS(h nats.Header, data []byte) eos.Message {
	m := eos.Message{ID: h.Get(jetstream.MsgIDHeader), Key: h.Get(HeaderKey), Payload: data}
	if ts := h.Get(HeaderCreatedAt); ts != "" {
		m.CreatedAt, _ = time.Parse(time.RFC3339Nano, ts)
	}
	for k, vs := range h {
		if len(vs) == 0 || strings.HasPrefix(k, "Nats-") || k == HeaderKey || k == HeaderCreatedAt {
			continue
		}
		if m.Headers == nil {
			m.Headers = map[string]string{}
		}
		m.Headers[k] = vs[0]
	}
	return m
}
