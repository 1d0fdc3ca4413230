package metrics

import (
	"context"
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/eoskit/eos/driver"
	"github.com/eoskit/eos/outbox"
)

// RelayHook returns the hook that feeds m from an outbox relay: add it to
// outbox.RelayConfig.Hooks. It implements outbox.ForwardedHook and
// outbox.ErrorHook, and does not block.
func (m *Metrics) RelayHook() outbox.Hook { return relayHook{m} }

type relayHook struct{ m *Metrics }

var (
	_ outbox.ForwardedHook = relayHook{}
	_ outbox.ErrorHook     = relayHook{}
)

// topicSeries are one topic's series, resolved once.
type topicSeries struct {
	published prometheus.Counter
	delay     prometheus.Observer
}

func (m *Metrics) topic(name string) *topicSeries {
	if s, ok := m.topics.Load(name); ok {
		return s.(*topicSeries)
	}
	s := &topicSeries{published: m.published.WithLabelValues(name), delay: m.relayDelay.WithLabelValues(name)}
	got, _ := m.topics.LoadOrStore(name, s)
	return got.(*topicSeries)
}

// OnForwarded implements outbox.ForwardedHook.
func (h relayHook) OnForwarded(_ context.Context, rows []driver.OutboxRow, sentAt time.Time) {
	var s *topicSeries
	n := 0
	for i := range rows {
		if s == nil || rows[i].Topic != rows[i-1].Topic {
			if n > 0 {
				s.published.Add(float64(n))
			}
			s, n = h.m.topic(rows[i].Topic), 0
		}
		n++
		if !rows[i].EnqueuedAt.IsZero() {
			s.delay.Observe(max(0, sentAt.Sub(rows[i].EnqueuedAt).Seconds()))
		}
	}
	if n > 0 {
		s.published.Add(float64(n))
	}
}

// OnError implements outbox.ErrorHook.
func (h relayHook) OnError(_ context.Context, op string, err error) {
	topic := ""
	if re, ok := errors.AsType[*outbox.RowError](err); ok {
		topic = re.Topic
	}
	switch {
	case errors.Is(err, outbox.ErrUnpublishable):
		h.m.parked.WithLabelValues(topic).Inc()
	case op == "outbox.publish":
		h.m.publishErrors.WithLabelValues(topic).Inc()
	default:
		h.m.relayStore.Inc()
	}
}

// BrokerDuplicate counts a publish of message id to topic that the broker
// acknowledged as a duplicate, with id as the exemplar. Its signature is
// that of natsjs.PublisherConfig.OnDuplicate (whose subject is the outbox
// row's topic), so it can be passed as is.
func (m *Metrics) BrokerDuplicate(topic, id string) {
	c := m.brokerDups.WithLabelValues(topic)
	if id == "" {
		c.Inc()
		return
	}
	c.(prometheus.ExemplarAdder).AddWithExemplar(1, exemplar(id, nil))
}
