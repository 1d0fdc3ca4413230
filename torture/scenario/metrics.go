package scenario

import (
	"os"
	"path/filepath"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/eoskit/eos/torture/internal/private"
	"github.com/eoskit/eos/torture/internal/scrape"
	"github.com/eoskit/eos/torture/supervisor"
	"github.com/eoskit/eos/torture/worker"
)

// scrapeEvery is how often the harness scrapes its workers' metrics in
// the background, between the Gathers of whoever shows them: what a
// worker counted between its last scrape and a SIGKILL is lost from the
// sums, so the interval bounds that loss.
const scrapeEvery = time.Second

// setupMetrics makes the pool of the workers' metrics and, unless they
// are off, the directory of their final values.
func (s *Scenario) setupMetrics() (err error) {
	s.harnessReg = prometheus.NewRegistry()
	if s.pool, err = scrape.New(s.harnessReg, scrape.Config{}); err != nil {
		return err
	}
	if s.opts.NoWorkerMetrics {
		return nil
	}
	s.metricsDir = filepath.Join(s.dir, metricsDir)
	return os.Mkdir(s.metricsDir, private.DirMode)
}

// Gatherer returns the metrics of the whole pipeline, as one process
// would export them: every worker's eos metrics (torture/worker feeds
// them from its inboxes, relay and outbox) scraped at each Gather,
// concurrently and each bounded in time and bytes, and summed across
// workers by name and labels (there is no worker label; consumer and
// topic tell the stages apart), with the harness's own counters
// (eos_demo_worker_scrape_errors_total: scrapes that failed, their
// worker's last values standing in).
//
// The sums of counters and histograms never go backwards across a
// worker's SIGKILL and restart: the last values scraped of each dead
// process are kept and added in (a background scrape every scrapeEvery
// keeps them fresh), and a worker stopped gracefully hands in its final
// values. What a worker counted between its last scrape and a kill is
// lost from the sums: they are a view of the run; the checks on the store
// are the truth. After Run, Gatherer returns the totals of the run.
func (s *Scenario) Gatherer() prometheus.Gatherer {
	return prometheus.Gatherers{s.pool, s.harnessReg}
}

// onWorkerEvent hands a worker's metrics announcement to the pool (one
// that is refused is counted there).
func (s *Scenario) onWorkerEvent(e supervisor.Event) {
	if e.Name == worker.EventMetrics && s.metricsDir != "" {
		s.pool.Announce(e.Child, e.Start, e.Value)
	}
}

// onWorkerEnd tells the pool that a worker's process is gone, with its
// final values if it wrote them.
func (s *Scenario) onWorkerEnd(child string, start int) {
	if s.metricsDir != "" {
		s.pool.End(child, start, worker.MetricsFile(s.metricsDir, child, start))
	}
}
