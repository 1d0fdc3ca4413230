package kafka

import (
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/eoskit/eos"
)

// Header names eos uses on Kafka records. The key travels as the record
// key, which is what picks the partition.
const (
	HeaderID        = "Eos-Id"
	HeaderCreatedAt = "Eos-Created-At"
)

// reserved reports whether a header name is eos's own (any case): an
// application header of that name is neither sent nor received, so that it
// cannot pose as the id.
func reserved(name string) bool {
	return strings.EqualFold(name, HeaderID) || strings.EqualFold(name, HeaderCreatedAt)
}

// toRecord builds the record of m on topic. The record's key is m.Key, so
// the client's default partitioner puts every message of a key on one
// partition, and its timestamp CreatedAt when set (else the client's clock).
func toRecord(topic string, m eos.Message) *kgo.Record {
	r := &kgo.Record{Topic: topic, Value: m.Payload, Headers: make([]kgo.RecordHeader, 0, len(m.Headers)+2)}
	if m.Key != "" {
		r.Key = []byte(m.Key)
	}
	r.Headers = append(r.Headers, kgo.RecordHeader{Key: HeaderID, Value: []byte(m.ID)})
	if !m.CreatedAt.IsZero() {
		r.Timestamp = m.CreatedAt
		r.Headers = append(r.Headers, kgo.RecordHeader{Key: HeaderCreatedAt, Value: []byte(m.CreatedAt.UTC().Format(time.RFC3339Nano))})
	}
	for k, v := range m.Headers {
		if !reserved(k) {
			r.Headers = append(r.Headers, kgo.RecordHeader{Key: k, Value: []byte(v)})
		}
	}
	return r
}

// fromRecord reads an eos.Message from a delivered record, its id given by
// id. It does not validate: the inbox does, and dead-letters what is
// invalid. An unreadable Eos-Created-At leaves CreatedAt zero; of a header
// repeated, the first value counts.
func fromRecord(r *kgo.Record, id IDFunc) eos.Message {
	m := eos.Message{ID: id(r), Key: string(r.Key), Payload: r.Value, Subject: r.Topic}
	for _, h := range r.Headers {
		switch {
		case h.Key == HeaderCreatedAt:
			if m.CreatedAt.IsZero() {
				m.CreatedAt, _ = time.Parse(time.RFC3339Nano, string(h.Value))
			}
		case reserved(h.Key):
		default:
			if m.Headers == nil {
				m.Headers = make(map[string]string, len(r.Headers))
			}
			if _, dup := m.Headers[h.Key]; !dup {
				m.Headers[h.Key] = string(h.Value)
			}
		}
	}
	return m
}

// IDFunc returns the eos id of a delivered record; "" means it has none,
// and the inbox dead-letters it as invalid.
//
// The id must be the same on every delivery and every publish of an event,
// and differ between events: the inbox suppresses a second apply by the id
// alone. The partition and offset are not such an id: a producer's
// re-publish lands at another offset.
type IDFunc func(r *kgo.Record) string

// HeaderIDFunc returns an IDFunc that takes the id from the first header
// named name (case sensitive). The default of SubscriberConfig.ID is
// HeaderIDFunc(HeaderID), the header eos's Publisher sets.
func HeaderIDFunc(name string) IDFunc {
	return func(r *kgo.Record) string {
		for _, h := range r.Headers {
			if h.Key == name {
				return string(h.Value)
			}
		}
		return ""
	}
}
