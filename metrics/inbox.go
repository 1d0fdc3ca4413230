package metrics

import (
	"context"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/eoskit/eos/inbox"
)

// InboxHook returns the hook that feeds m from an inbox: add it to
// inbox.Config.Hooks. It implements inbox.BatchDoneHook and
// inbox.ErrorHook, and does not block.
func (m *Metrics) InboxHook() inbox.Hook { return inboxHook{m} }

type inboxHook struct{ m *Metrics }

var (
	_ inbox.BatchDoneHook = inboxHook{}
	_ inbox.ErrorHook     = inboxHook{}
)

// consumerSeries are one consumer's series, resolved once: a batch then
// costs no label lookup.
type consumerSeries struct {
	outcomes     [inbox.DeadLettered + 1]prometheus.Counter // by inbox.Outcome
	duplicates   prometheus.Counter
	quarantined  prometheus.Counter
	deadLettered prometheus.Counter
	storeErrors  prometheus.Counter
	settleErrors prometheus.Counter
	reprocessed  prometheus.Counter
	endToEnd     prometheus.Observer
	batchSize    prometheus.Observer
	batchSeconds prometheus.Observer
	claim        prometheus.Observer // eos_inbox_phase_seconds by phase
	handle       prometheus.Observer
	commit       prometheus.Observer
}

func (m *Metrics) consumer(name string) *consumerSeries {
	if s, ok := m.consumers.Load(name); ok {
		return s.(*consumerSeries)
	}
	s := &consumerSeries{
		duplicates:   m.duplicates.WithLabelValues(name),
		quarantined:  m.quarantined.WithLabelValues(name),
		deadLettered: m.deadLettered.WithLabelValues(name),
		storeErrors:  m.storeErrors.WithLabelValues(name),
		settleErrors: m.settleErrors.WithLabelValues(name),
		reprocessed:  m.reprocessed.WithLabelValues(name),
		endToEnd:     m.endToEnd.WithLabelValues(name),
		batchSize:    m.batchSize.WithLabelValues(name),
		batchSeconds: m.batchSeconds.WithLabelValues(name),
		claim:        m.phaseSeconds.WithLabelValues(name, "claim"),
		handle:       m.phaseSeconds.WithLabelValues(name, "handle"),
		commit:       m.phaseSeconds.WithLabelValues(name, "commit"),
	}
	for o := inbox.Applied; o <= inbox.DeadLettered; o++ {
		s.outcomes[o] = m.messages.WithLabelValues(name, o.String())
	}
	got, _ := m.consumers.LoadOrStore(name, s)
	return got.(*consumerSeries)
}

// OnBatchDone implements inbox.BatchDoneHook.
func (h inboxHook) OnBatchDone(_ context.Context, r *inbox.BatchResult) {
	m := h.m
	s := m.consumer(r.Consumer)
	var counts [inbox.DeadLettered + 1]int
	var lastDup, lastQuar *inbox.Result
	for i := range r.Results {
		res := &r.Results[i]
		if res.Outcome < inbox.Applied || res.Outcome > inbox.DeadLettered {
			continue // an outcome newer than this package: counted nowhere rather than wrongly
		}
		counts[res.Outcome]++
		switch res.Outcome {
		case inbox.Applied:
			if !res.CreatedAt.IsZero() {
				s.endToEnd.Observe(max(0, r.CommittedAt.Sub(res.CreatedAt).Seconds()))
			}
		case inbox.Duplicate:
			lastDup = res
		case inbox.Quarantined:
			lastQuar = res
		}
	}
	for o := inbox.Applied; o <= inbox.DeadLettered; o++ {
		if counts[o] > 0 {
			s.outcomes[o].Add(float64(counts[o]))
		}
	}
	m.addWithExemplar(s.duplicates, counts[inbox.Duplicate], lastDup)
	m.addWithExemplar(s.quarantined, counts[inbox.Quarantined], lastQuar)
	if n := counts[inbox.DeadLettered]; n > 0 {
		s.deadLettered.Add(float64(n))
	}
	if r.SettleErrors > 0 {
		s.settleErrors.Add(float64(r.SettleErrors))
	}
	s.addReprocessed(r.Results)
	s.batchSize.Observe(float64(len(r.Results)))
	s.batchSeconds.Observe(max(0, r.CommittedAt.Sub(r.Started).Seconds()))
	s.claim.Observe(r.Phases.Claim.Seconds())
	s.handle.Observe(r.Phases.Handle.Seconds())
	s.commit.Observe(r.Phases.Commit.Seconds())
}

// addReprocessed counts the redeliveries among results: those whose
// transport says the message was delivered before (DeliveryCount above 1),
// whatever their outcome.
func (s *consumerSeries) addReprocessed(results []inbox.Result) {
	n := 0
	for i := range results {
		if results[i].DeliveryCount > 1 {
			n++
		}
	}
	if n > 0 {
		s.reprocessed.Add(float64(n))
	}
}

// addWithExemplar adds n to c, with an exemplar naming res (the last
// delivery of the batch that counted) unless exemplars are off.
func (m *Metrics) addWithExemplar(c prometheus.Counter, n int, res *inbox.Result) {
	if n == 0 {
		return
	}
	if ea, ok := c.(prometheus.ExemplarAdder); ok && !m.cfg.NoExemplars && res != nil {
		ea.AddWithExemplar(float64(n), exemplar(res.ID, res.Headers))
		return
	}
	c.Add(float64(n))
}

// OnError implements inbox.ErrorHook.
func (h inboxHook) OnError(_ context.Context, consumer, _ string, _ error) {
	h.m.consumer(consumer).storeErrors.Inc()
}
