package observe

import (
	"context"
	"database/sql"
	"errors"
	"log/slog"
	"slices"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/eoskit/eos"
	"github.com/eoskit/eos/examples/payments"
	"github.com/eoskit/eos/inbox"
	"github.com/eoskit/eos/metrics"
	"github.com/eoskit/eos/outbox"
	"github.com/eoskit/eos/serve"
	"github.com/eoskit/eos/torture/worker"
)

// Pipeline is what a run of the demo consists of, seen from outside: its
// database and its broker.
type Pipeline struct {
	Store  *worker.Store
	Broker Broker
}

// Config configures an Observer.
type Config struct {
	// Token, when set, is the bearer token of the endpoints (serve.Config.Token).
	Token string
	// Extra is gathered beside the Observer's own metrics: the workers'
	// inbox and relay metrics (scenario.Scenario.Gatherer), merged so
	// that no family comes twice (see merged); its eos_inbox_stalled
	// joins the readiness checks. Nil: none.
	Extra prometheus.Gatherer
	// Title heads the status page. Default "eos demo".
	Title  string
	Logger *slog.Logger
}

// ownFamilies are the metrics the Observer reads itself, from the store
// and the broker, at every scrape (WatchOutbox, WatchConsumer,
// WatchInboxStore): Config.Extra's are left out (the relay worker exports
// the outbox's gauges too, while it lives).
var ownFamilies = map[string]bool{
	"eos_outbox_unsent": true, "eos_outbox_oldest_unsent_seconds": true, "eos_outbox_parked": true, "eos_outbox_stats_errors_total": true,
	"eos_consumer_pending_messages": true, "eos_consumer_ack_pending_messages": true, "eos_consumer_stats_errors_total": true,
	"eos_inbox_claims": true, "eos_inbox_dead_letters": true, "eos_inbox_quarantine": true, "eos_inbox_stats_errors_total": true,
}

// merged gathers the Observer's registry and the workers' metrics so that
// no family comes twice: the families of ownFamilies from the Observer,
// every other family from the workers when they have it (the Observer's
// metrics.Metrics registers the inbox's and relay's families too, which
// the Observer does not feed), else from the Observer (what a scheduled
// reconciliation adds there, say).
type merged struct{ own, extra prometheus.Gatherer }

// Gather implements prometheus.Gatherer.
func (m merged) Gather() ([]*dto.MetricFamily, error) {
	own, ownErr := m.own.Gather()
	extra, extraErr := m.extra.Gather()
	extra = slices.DeleteFunc(extra, func(mf *dto.MetricFamily) bool { return ownFamilies[mf.GetName()] })
	fromExtra := map[string]bool{}
	for _, mf := range extra {
		fromExtra[mf.GetName()] = true
	}
	own = slices.DeleteFunc(own, func(mf *dto.MetricFamily) bool { return fromExtra[mf.GetName()] })
	out := append(own, extra...)
	slices.SortFunc(out, func(a, b *dto.MetricFamily) int { return strings.Compare(a.GetName(), b.GetName()) })
	return out, errors.Join(ownErr, extraErr)
}

// OutboxName is the outbox label of the demo's one outbox: the order
// workers enqueue the charges there.
const OutboxName = "orders"

// Observer holds what it registered and the handler serving it.
type Observer struct {
	// Registry holds the Observer's own collectors. A scheduled
	// reconciliation (package reconcile) registers its counters here, or
	// on Metrics, and they show on the page and /metrics with the rest.
	Registry *prometheus.Registry
	// Metrics is eos's metrics on Registry: the outbox and consumer
	// watches are registered; its inbox and relay series stay empty here
	// (the workers have their own, in Config.Extra).
	Metrics *metrics.Metrics
	// Handler serves /metrics, /healthz, /readyz and the status page.
	Handler *serve.Handler

	pipeline Pipeline
	log      *slog.Logger
}

// errReadOnly is the handler of the Observer's processors, which only
// read the admin tables and never run.
var errReadOnly = errors.New("observe: a read-only processor handles nothing")

// New watches p: the outbox's backlog, the orders and payments consumers'
// lag and stored rows (claims, dead letters, quarantine), and lists their
// dead letters and quarantined messages; readiness is the store and the
// broker answering.
func New(p Pipeline, cfg Config) (*Observer, error) {
	if cfg.Title == "" {
		cfg.Title = "eos demo"
	}
	reg := prometheus.NewRegistry()
	m, err := metrics.New(reg, metrics.Config{})
	if err != nil {
		return nil, err
	}
	ob, err := outbox.New(p.Store.Driver, outbox.Config{})
	if err != nil {
		return nil, err
	}
	if err := m.WatchOutbox(OutboxName, ob.Stats); err != nil {
		return nil, err
	}
	refuse := func(context.Context, *sql.Tx, eos.Message) error { return errReadOnly }
	var consumers []serve.Consumer
	for _, c := range []struct{ consumer, durable string }{
		{payments.OrdersConsumer, worker.OrdersDurable},
		{payments.PaymentsConsumer, worker.PaymentsDurable},
	} {
		if err := m.WatchConsumer(c.consumer, p.Broker.Transport(), p.Broker.ConsumerStats(c.durable)); err != nil {
			return nil, err
		}
		proc, err := inbox.New(p.Store.Driver, refuse, inbox.Config{Consumer: c.consumer})
		if err != nil {
			return nil, err
		}
		if err := m.WatchInboxStore(c.consumer, proc.Stats); err != nil {
			return nil, err
		}
		consumers = append(consumers, serve.Consumer{Name: c.consumer, Admin: proc})
	}
	var g prometheus.Gatherer = reg
	db := p.Store.Tables.DB
	checks := []serve.Check{
		{Name: "store", Func: db.PingContext},
		{Name: "broker", Func: p.Broker.Ping},
	}
	if cfg.Extra != nil {
		g = merged{own: reg, extra: cfg.Extra}
		checks = append(checks, serve.Check{Name: "inboxes not stalled", Func: serve.StalledCheck(cfg.Extra)})
	}
	h, err := serve.New(serve.Config{
		Gatherer:  g,
		Consumers: consumers,
		Token:     cfg.Token,
		Title:     cfg.Title,
		Logger:    cfg.Logger,
		Checks:    checks,
	})
	if err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Observer{Registry: reg, Metrics: m, Handler: h, pipeline: p, log: log}, nil
}
