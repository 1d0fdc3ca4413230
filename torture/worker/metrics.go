package worker

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/eoskit/eos/callonce"
	"github.com/eoskit/eos/metrics"
	"github.com/eoskit/eos/torture/internal/scrape"
	"github.com/eoskit/eos/torture/supervisor"
)

// EventMetrics is the event (supervisor.Emitter.EmitValue) by which a
// worker announces where it serves its metrics, once per start.
const EventMetrics = "metrics"

// OutboxName labels the scenario's outbox in eos_outbox_* (the relay
// worker watches it).
const OutboxName = "orders"

// ChargesName labels the payment worker's provider calls in
// eos_callonce_calls_total, and in the duplicate and store-error series of
// the SLIs: a name of their own, not the payments consumer's, whose
// suppressed redeliveries would otherwise count twice.
const ChargesName = "charges"

// MetricsFile is where the worker name writes its final metrics in dir
// when its start-th process stops gracefully.
func MetricsFile(dir, name string, start int) string {
	return filepath.Join(dir, fmt.Sprintf("%s.%d.pb", name, start))
}

// outboxStatsTimeout bounds the relay's outbox read per scrape: below the
// harness's scrape timeout, so that a busy store costs the outbox gauges,
// not the whole scrape.
const outboxStatsTimeout = time.Second

// workerMetrics are a worker's metrics on its own registry, served for
// the harness.
type workerMetrics struct {
	*metrics.Metrics
	reg  *prometheus.Registry
	srv  *scrape.Server
	file string
	log  *slog.Logger
}

// startMetrics makes the worker's metrics, serves them on loopback and
// announces where on ev; nil when cfg.MetricsDir is empty (metrics off).
func startMetrics(cfg Config, log *slog.Logger, ev *supervisor.Emitter) (*workerMetrics, error) {
	if cfg.MetricsDir == "" {
		return nil, nil
	}
	reg := prometheus.NewRegistry()
	m, err := metrics.New(reg, metrics.Config{OutboxStatsTimeout: outboxStatsTimeout})
	if err != nil {
		return nil, err
	}
	srv, err := scrape.Listen(reg)
	if err != nil {
		return nil, err
	}
	start, _ := strconv.Atoi(os.Getenv(supervisor.StartEnv))
	ev.EmitValue(EventMetrics, srv.Addr())
	return &workerMetrics{Metrics: m, reg: reg, srv: srv, file: MetricsFile(cfg.MetricsDir, cfg.Name, start), log: log}, nil
}

// stop writes the final values for the harness, then stops serving. Nil
// receivers do nothing.
func (w *workerMetrics) stop() {
	if w == nil {
		return
	}
	if err := scrape.WriteFile(w.file, w.reg); err != nil {
		w.log.Warn("final metrics not written", "error", err)
	}
	w.srv.Close()
}

// watchInbox exports what the processor of consumer is doing (in flight,
// stalled); nothing when metrics are off. Summed across the workers that
// share a consumer, eos_inbox_stalled counts the stalled processes.
func (w *workerMetrics) watchInbox(consumer string, activity metrics.ActivityFunc) error {
	if w == nil {
		return nil
	}
	return w.WatchInbox(consumer, activity)
}

// callHooks are the hooks of the payment worker's provider calls: its
// metrics (none when metrics are off).
func (w *workerMetrics) callHooks() []callonce.Hook {
	if w == nil {
		return nil
	}
	return []callonce.Hook{w.CallOnceHook(ChargesName)}
}

// brokerDuplicate is the relay publisher's OnDuplicate: the broker's
// duplicate acks, counted (nil when metrics are off).
func (w *workerMetrics) brokerDuplicate() func(topic, id string) {
	if w == nil {
		return nil
	}
	return w.BrokerDuplicate
}
