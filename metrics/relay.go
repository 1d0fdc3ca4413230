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
	switch {
	case errors.Is(err, outbox.ErrUnpublishable):
		h.m.parked.Inc()
	case op == "outbox.publish":
		h.m.publishErrors.Inc()
	default:
		h.m.relayStore.Inc()
	}
}
