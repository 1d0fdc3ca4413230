package serve

import (
	"context"
	"math"
	"net/http"
	"slices"
	"sort"
	"time"

	dto "github.com/prometheus/client_model/go"
)

// SLI is one service-level indicator as the status page shows it: the
// sum of its metric's series, or no value when the gatherer has none.
type SLI struct {
	Name   string   `json:"name"`
	Metric string   `json:"metric"`
	Value  *float64 `json:"value"` // null: the metric has no series
	// Bad: any value above 0 breaks exactly-once (must stay 0).
	Bad bool `json:"must_stay_zero"`
}

// Latency is eos_end_to_end_seconds over every consumer.
type Latency struct {
	Count uint64   `json:"count"`
	P50   *float64 `json:"p50_seconds"` // null: no observation
	P99   *float64 `json:"p99_seconds"`
}

// ConsumerStatus is one consumer's counters and broker lag; a nil value
// is a metric without a series for it.
type ConsumerStatus struct {
	Name         string   `json:"name"`
	Applied      *float64 `json:"applied"`
	Duplicates   *float64 `json:"duplicates"`
	Quarantined  *float64 `json:"quarantined"`
	DeadLettered *float64 `json:"dead_lettered"`
	Reprocessed  *float64 `json:"reprocessed"`
	StoreErrors  *float64 `json:"store_errors"`
	// Stalled: 1 while a processor retries a batch after a store failure
	// (eos_inbox_stalled, summed over the processes that report it).
	Stalled  *float64 `json:"stalled"`
	InFlight *float64 `json:"in_flight"` // held by the inbox, not settled (eos_inbox_in_flight_messages)
	Unacked  *float64 `json:"unacked"`   // delivered by the broker, not acknowledged (eos_consumer_ack_pending_messages)
	Lag      *float64 `json:"lag"`       // not delivered yet (eos_consumer_pending_messages)
	// The rows the store keeps now (metrics.Metrics.WatchInbox).
	Claims         *float64 `json:"claims"`
	DeadLettersNow *float64 `json:"dead_letters_now"`
	QuarantineNow  *float64 `json:"quarantine_now"`
}

// OutboxStatus is one outbox's backlog.
type OutboxStatus struct {
	Name                string   `json:"name"`
	Unsent              *float64 `json:"unsent"`
	OldestUnsentSeconds *float64 `json:"oldest_unsent_seconds"`
	Parked              *float64 `json:"parked"`
}

// Problem is a dead letter or a quarantined message, as the page lists
// it; its text is sanitized.
type Problem struct {
	Consumer string    `json:"consumer"`
	ID       string    `json:"id"`
	Subject  string    `json:"subject,omitempty"`
	Attempts int       `json:"attempts,omitempty"`
	Error    string    `json:"error"`
	At       time.Time `json:"at"`
}

// Problems lists a consumer's first dead letters or quarantined messages
// (at most Config.Recent) and their total.
type Problems struct {
	Consumer string    `json:"consumer"`
	Total    int64     `json:"total"`
	Items    []Problem `json:"items"`
	Error    string    `json:"error,omitempty"` // the read failed
}

// Status is what the page shows and /status.json answers.
type Status struct {
	Title       string           `json:"title"`
	GeneratedAt time.Time        `json:"generated_at"`
	Readiness   Readiness        `json:"readiness"`
	SLIs        []SLI            `json:"slis"`
	Latency     Latency          `json:"end_to_end"`
	Consumers   []ConsumerStatus `json:"consumers"`
	Outboxes    []OutboxStatus   `json:"outboxes"`
	DeadLetters []Problems       `json:"dead_letters"`
	Quarantined []Problems       `json:"quarantined"`
	// Errors name what could not be read (a collector that failed).
	Errors []string `json:"errors,omitempty"`
}

// slis are the SLIs the page heads with, in the order of DESIGN's table.
var slis = []SLI{
	{Name: "Duplicates suppressed", Metric: "eos_duplicates_suppressed_total"},
	{Name: "Duplicate effects", Metric: "eos_duplicate_effects_total", Bad: true},
	{Name: "Missed applies", Metric: "eos_missed_apply_total", Bad: true},
	{Name: "Partial commits", Metric: "eos_partial_commits_total", Bad: true},
	{Name: "Dedupe-store errors", Metric: "eos_dedupe_store_errors_total", Bad: true},
	{Name: "Reprocessed", Metric: "eos_reprocessed_total"},
}

// Status gathers the status: the metrics from Config.Gatherer, the
// readiness checks and the consumers' admin reads, all at once.
func (h *Handler) Status(ctx context.Context) Status {
	st := Status{Title: h.cfg.Title, GeneratedAt: h.cfg.Test.Now().UTC()}
	done := make(chan struct{})
	go func() {
		defer close(done)
		st.Readiness = h.readiness(ctx)
	}()
	st.DeadLetters, st.Quarantined = h.problems(ctx)
	mfs, err := h.cfg.Gatherer.Gather()
	if err != nil {
		st.Errors = append(st.Errors, sanitize(err.Error(), maxErrorText))
	}
	fams := families(mfs)
	for _, s := range slis {
		s.Value = fams.sum(s.Metric, nil)
		st.SLIs = append(st.SLIs, s)
	}
	st.Latency = fams.latency("eos_end_to_end_seconds")
	st.Consumers = h.consumers(fams)
	for _, name := range fams.labelValues("outbox", "eos_outbox_unsent", "eos_outbox_oldest_unsent_seconds", "eos_outbox_parked") {
		l := map[string]string{"outbox": name}
		st.Outboxes = append(st.Outboxes, OutboxStatus{Name: name, Unsent: fams.sum("eos_outbox_unsent", l),
			OldestUnsentSeconds: fams.sum("eos_outbox_oldest_unsent_seconds", l), Parked: fams.sum("eos_outbox_parked", l)})
	}
	<-done
	return st
}

// consumerMetrics are the metrics with a consumer label the page shows.
var consumerMetrics = []string{"eos_inbox_messages_total", "eos_duplicates_suppressed_total", "eos_quarantined_total",
	"eos_dead_lettered_total", "eos_reprocessed_total", "eos_dedupe_store_errors_total",
	"eos_consumer_ack_pending_messages", "eos_consumer_pending_messages", "eos_inbox_stalled", "eos_inbox_in_flight_messages", "eos_inbox_claims", "eos_inbox_dead_letters",
	"eos_inbox_quarantine"}

// consumers lists every consumer the metrics or the Config name.
func (h *Handler) consumers(fams familyMap) []ConsumerStatus {
	names := fams.labelValues("consumer", consumerMetrics...)
	for _, c := range h.cfg.Consumers {
		names = append(names, c.Name)
	}
	slices.Sort(names)
	names = slices.Compact(names)
	out := make([]ConsumerStatus, 0, len(names))
	for _, n := range names {
		l := map[string]string{"consumer": n}
		out = append(out, ConsumerStatus{
			Name:           n,
			Applied:        fams.sum("eos_inbox_messages_total", map[string]string{"consumer": n, "outcome": "applied"}),
			Duplicates:     fams.sum("eos_duplicates_suppressed_total", l),
			Quarantined:    fams.sum("eos_quarantined_total", l),
			DeadLettered:   fams.sum("eos_dead_lettered_total", l),
			Reprocessed:    fams.sum("eos_reprocessed_total", l),
			StoreErrors:    fams.sum("eos_dedupe_store_errors_total", l),
			Stalled:        fams.sum("eos_inbox_stalled", l),
			InFlight:       fams.sum("eos_inbox_in_flight_messages", l),
			Unacked:        fams.sum("eos_consumer_ack_pending_messages", l),
			Lag:            fams.sum("eos_consumer_pending_messages", l),
			Claims:         fams.sum("eos_inbox_claims", l),
			DeadLettersNow: fams.sum("eos_inbox_dead_letters", l),
			QuarantineNow:  fams.sum("eos_inbox_quarantine", l),
		})
	}
	return out
}

// familyMap holds gathered families by name.
type familyMap map[string]*dto.MetricFamily

func families(mfs []*dto.MetricFamily) familyMap {
	m := familyMap{}
	for _, mf := range mfs {
		m[mf.GetName()] = mf
	}
	return m
}

// matches reports whether m carries every label of want.
func matches(m *dto.Metric, want map[string]string) bool {
	n := 0
	for _, lp := range m.GetLabel() {
		if v, ok := want[lp.GetName()]; ok {
			if v != lp.GetValue() {
				return false
			}
			n++
		}
	}
	return n == len(want)
}

// sum adds the values of the series of metric that carry the labels of
// want: counters, gauges and untyped values. Nil when none matches.
func (f familyMap) sum(metric string, want map[string]string) *float64 {
	mf := f[metric]
	if mf == nil {
		return nil
	}
	var total float64
	found := false
	for _, m := range mf.GetMetric() {
		if !matches(m, want) {
			continue
		}
		switch {
		case m.Counter != nil:
			total += m.Counter.GetValue()
		case m.Gauge != nil:
			total += m.Gauge.GetValue()
		case m.Untyped != nil:
			total += m.Untyped.GetValue()
		default:
			continue
		}
		found = true
	}
	if !found {
		return nil
	}
	return &total
}

// labelValues lists the values label takes in the named metrics, sorted,
// without repeats.
func (f familyMap) labelValues(label string, metrics ...string) []string {
	var out []string
	for _, name := range metrics {
		for _, m := range f[name].GetMetric() {
			for _, lp := range m.GetLabel() {
				if lp.GetName() == label {
					out = append(out, lp.GetValue())
				}
			}
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// latency merges the histogram's series and estimates its quantiles.
func (f familyMap) latency(metric string) Latency {
	var l Latency
	buckets := map[float64]uint64{} // upper bound → cumulative count, summed over series
	for _, m := range f[metric].GetMetric() {
		hg := m.GetHistogram()
		if hg == nil {
			continue
		}
		l.Count += hg.GetSampleCount()
		for _, b := range hg.GetBucket() {
			buckets[b.GetUpperBound()] += b.GetCumulativeCount()
		}
	}
	if l.Count == 0 {
		return l
	}
	var bs []Bucket
	for ub, c := range buckets {
		bs = append(bs, Bucket{UpperBound: ub, Count: c})
	}
	sort.Slice(bs, func(i, j int) bool { return bs[i].UpperBound < bs[j].UpperBound })
	p50, p99 := Quantile(0.5, bs, l.Count), Quantile(0.99, bs, l.Count)
	l.P50, l.P99 = &p50, &p99
	return l
}

// Bucket is a histogram bucket: the observations at most UpperBound
// (cumulative).
type Bucket struct {
	UpperBound float64
	Count      uint64
}

// Quantile estimates the q-quantile of a histogram of total observations
// from its cumulative buckets (sorted by bound, +Inf left out) the way
// PromQL's histogram_quantile does: linear within the bucket that holds
// it, from 0 for the first bucket; in the +Inf bucket, the highest finite
// bound.
func Quantile(q float64, buckets []Bucket, total uint64) float64 {
	if total == 0 || len(buckets) == 0 || math.IsNaN(q) {
		return math.NaN()
	}
	rank := q * float64(total)
	lower, below := 0.0, 0.0
	for _, b := range buckets {
		if math.IsInf(b.UpperBound, 1) {
			break
		}
		if float64(b.Count) >= rank {
			in := float64(b.Count) - below
			if in == 0 {
				return b.UpperBound
			}
			return lower + (b.UpperBound-lower)*(rank-below)/in
		}
		lower, below = b.UpperBound, float64(b.Count)
	}
	return lower
}

// problems reads each consumer's stats, first dead letters and first
// quarantined messages, the consumers at once.
func (h *Handler) problems(ctx context.Context) (dead, quar []Problems) {
	dead = make([]Problems, len(h.cfg.Consumers))
	quar = make([]Problems, len(h.cfg.Consumers))
	done := make(chan struct{}, len(h.cfg.Consumers))
	for i, c := range h.cfg.Consumers {
		go func() {
			defer func() { done <- struct{}{} }()
			dead[i], quar[i] = h.consumerProblems(ctx, c)
		}()
	}
	for range h.cfg.Consumers {
		<-done
	}
	return dead, quar
}

// Bounds of the text the page shows of a message.
const (
	maxIDText      = 128
	maxSubjectText = 128
)

// consumerProblems reads one consumer's, within CheckTimeout.
func (h *Handler) consumerProblems(ctx context.Context, c Consumer) (dead, quar Problems) {
	ctx, cancel := context.WithTimeout(ctx, h.cfg.CheckTimeout)
	defer cancel()
	dead, quar = Problems{Consumer: c.Name}, Problems{Consumer: c.Name}
	fail := func(err error) (Problems, Problems) {
		msg := sanitize(err.Error(), maxErrorText)
		dead.Error, quar.Error = msg, msg
		return dead, quar
	}
	st, err := c.Admin.Stats(ctx)
	if err != nil {
		return fail(err)
	}
	dead.Total, quar.Total = st.DeadLetters, st.Quarantined
	dls, err := c.Admin.DeadLetters(ctx, "", h.cfg.Recent)
	if err != nil {
		return fail(err)
	}
	for _, d := range dls[:min(len(dls), h.cfg.Recent)] {
		id := d.ID
		if d.Invalid && d.OriginalID != "" {
			id = d.OriginalID
		}
		dead.Items = append(dead.Items, Problem{Consumer: c.Name, ID: sanitize(id, maxIDText),
			Subject: sanitize(d.Subject, maxSubjectText), Attempts: d.Attempts, Error: sanitize(d.LastError, maxErrorText), At: d.At.UTC()})
	}
	qs, err := c.Admin.Quarantine(ctx, 0, h.cfg.Recent)
	if err != nil {
		return fail(err)
	}
	for _, q := range qs[:min(len(qs), h.cfg.Recent)] {
		quar.Items = append(quar.Items, Problem{Consumer: c.Name, ID: sanitize(q.ID, maxIDText),
			Subject: sanitize(q.Subject, maxSubjectText), Error: "same id as an applied message, different payload: not applied",
			At: q.At.UTC()})
	}
	return dead, quar
}

func (h *Handler) statusJSON(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, h.Status(r.Context()))
}
