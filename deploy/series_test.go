package deploy_test

import (
	"context"
	"errors"
	"regexp"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/eoskit/eos/callonce"
	"github.com/eoskit/eos/compact"
	"github.com/eoskit/eos/driver"
	"github.com/eoskit/eos/httpidem"
	"github.com/eoskit/eos/inbox"
	"github.com/eoskit/eos/metrics"
	"github.com/eoskit/eos/outbox"
	"github.com/eoskit/eos/reconcile"
)

// pendingSeries are metrics of issue 13 that other parts of eos are adding
// (the transports' lag) and that metrics does not register
// yet. Remove each
// entry once it does: TestExportedSeries fails on an entry metrics.New
// describes.
var pendingSeries = map[string]dto.MetricType{
	"eos_consumer_pending_messages":     dto.MetricType_GAUGE,
	"eos_consumer_ack_pending_messages": dto.MetricType_GAUGE,
}

// prometheusSeries are the series Prometheus itself writes that the
// dashboards may show (the firing alerts).
var prometheusSeries = []string{"ALERTS", "ALERTS_FOR_STATE", "up"}

// describing records the names of the metrics its collectors describe,
// whether or not they have a series yet.
type describing struct {
	prometheus.Registerer
	names map[string]bool
}

var fqName = regexp.MustCompile(`fqName: "([^"]+)"`)

func (d *describing) Register(c prometheus.Collector) error {
	ch := make(chan *prometheus.Desc)
	go func() {
		c.Describe(ch)
		close(ch)
	}()
	for desc := range ch {
		if m := fqName.FindStringSubmatch(desc.String()); m != nil {
			d.names[m[1]] = true
		}
	}
	return d.Registerer.Register(c)
}

func (d *describing) MustRegister(cs ...prometheus.Collector) {
	for _, c := range cs {
		if err := d.Register(c); err != nil {
			panic(err)
		}
	}
}

// exported are the series names of eos's metrics.
type exported struct {
	series    map[string]bool // what a scrape shows, histogram _bucket/_sum/_count included
	described map[string]bool // metric names metrics.New and WatchOutbox register
}

// exportedSeries builds a metrics.Metrics on a fresh registry, feeds every
// hook once so that each vector has a series, and gathers: the names come
// from the code, not from a list kept by hand. The pending metrics are
// added from pendingSeries.
func exportedSeries(t *testing.T) exported {
	t.Helper()
	ctx := context.Background()
	reg := prometheus.NewRegistry()
	d := &describing{Registerer: reg, names: map[string]bool{}}
	m, err := metrics.New(d, metrics.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.WatchOutbox("orders", func(context.Context) (outbox.Stats, error) {
		return outbox.Stats{Unsent: 1, OldestUnsent: time.Now().Add(-time.Second)}, nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := m.WatchInbox("pay", func() inbox.Activity { return inbox.Activity{InFlight: 1, Stalled: 1, Stalls: 1} }); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	var results []inbox.Result
	for o := inbox.Applied; o <= inbox.DeadLettered; o++ {
		results = append(results, inbox.Result{ID: o.String(), Outcome: o, CreatedAt: now.Add(-time.Second), DeliveryCount: 2})
	}
	ih := m.InboxHook()
	ih.(inbox.BatchDoneHook).OnBatchDone(ctx, &inbox.BatchResult{Consumer: "pay", Results: results, Rounds: 1,
		Started: now.Add(-time.Millisecond), CommittedAt: now, SettleErrors: 1,
		Phases: inbox.Phases{Claim: time.Millisecond, Handle: time.Millisecond, Commit: time.Millisecond}})
	ih.(inbox.ErrorHook).OnError(ctx, "pay", "inbox.claim", errors.New("store down"))
	rh := m.RelayHook()
	rh.(outbox.ForwardedHook).OnForwarded(ctx, []driver.OutboxRow{{ID: "1", Topic: "payments", EnqueuedAt: now.Add(-time.Second)}}, now)
	rh.(outbox.ErrorHook).OnError(ctx, "outbox.publish", errors.New("broker down"))
	rh.(outbox.ErrorHook).OnError(ctx, "outbox.publish", &outbox.RowError{Topic: "payments", Err: outbox.ErrUnpublishable})
	rh.(outbox.ErrorHook).OnError(ctx, "outbox.claim", errors.New("store down"))
	m.BrokerDuplicate("payments", "1")
	ch := m.CompactHook().(compact.PassHook)
	ch.OnPass(ctx, compact.Pass{Deleted: compact.Stats{Inbox: 1, Failures: 1, Outbox: 1, Quarantine: 1, DeadLetters: 1}, Ended: now})
	ch.OnPass(ctx, compact.Pass{Err: errors.New("store down")})
	m.HTTPIdemHook("api").(httpidem.OutcomeHook).OnOutcome(ctx, httpidem.OutcomeStored, nil)
	m.CallOnceHook("charges").(callonce.EndHook).OnEnd(ctx, callonce.End{Scope: "pay", Key: "1", Ending: callonce.EndCalled})
	rch := m.ReconcileHook()
	for _, k := range []reconcile.Kind{reconcile.Missed, reconcile.Unexpected, reconcile.Duplicate, reconcile.Partial} {
		rch.(reconcile.FindingHook).ReconcileFinding(reconcile.Finding{Kind: k, Consumer: "pay", Outbox: "orders", ID: "1"})
	}
	rch.(reconcile.DoneHook).ReconcileDone(&reconcile.Report{Consumer: "pay", FinishedAt: now}, nil)

	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	e := exported{series: map[string]bool{}, described: d.names}
	for _, f := range families {
		addSeries(e.series, f.GetName(), f.GetType())
	}
	for name := range d.names {
		if !e.series[name] && !e.series[name+"_count"] {
			t.Errorf("%s is registered but has no series after every hook was fed once: feed it in exportedSeries", name)
		}
	}
	for name, typ := range pendingSeries {
		if d.names[name] {
			t.Errorf("%s is registered by metrics now: remove it from pendingSeries", name)
		}
		addSeries(e.series, name, typ)
	}
	for _, name := range prometheusSeries {
		e.series[name] = true
	}
	return e
}

// addSeries adds the series names a metric of type typ shows in a scrape.
func addSeries(series map[string]bool, name string, typ dto.MetricType) {
	switch typ {
	case dto.MetricType_HISTOGRAM, dto.MetricType_GAUGE_HISTOGRAM:
		series[name+"_bucket"] = true
		series[name+"_sum"] = true
		series[name+"_count"] = true
	case dto.MetricType_SUMMARY:
		series[name] = true
		series[name+"_sum"] = true
		series[name+"_count"] = true
	default:
		series[name] = true
	}
}

func TestExportedSeries(t *testing.T) {
	e := exportedSeries(t)
	// A few names the SLIs are made of, as a check that the derivation
	// works at all.
	for _, name := range []string{"eos_duplicates_suppressed_total", "eos_dedupe_store_errors_total",
		"eos_end_to_end_seconds_bucket", "eos_inbox_phase_seconds_sum", "eos_outbox_oldest_unsent_seconds",
		"eos_relay_publish_errors_total", "eos_missed_apply_total"} {
		if !e.series[name] {
			t.Errorf("%s is not among the exported series", name)
		}
	}
	if e.series["eos_end_to_end_seconds"] {
		t.Error("a histogram's bare name is not a series")
	}
}
