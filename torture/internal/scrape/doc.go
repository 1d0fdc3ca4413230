// Package scrape gathers the metrics of the torture harness's worker
// processes into one prometheus.Gatherer, as if the whole pipeline were
// one process.
//
// Each worker serves its own registry on loopback and announces where
// (torture/worker); a [Pool] scrapes every live worker concurrently, each
// scrape bounded in time and bytes, and sums the series that have the same
// name and labels across workers: counters, gauges and untyped values,
// histograms bucket by bucket, summaries' counts and sums (their quantiles
// cannot be summed and are dropped). The latest exemplar of a series is
// kept.
//
// Workers are SIGKILLed and restarted; a restarted worker's counters start
// at zero. So that the sums never go backwards, the pool keeps the last
// values it scraped from each life of a worker and adds the cumulative
// ones (counters, histograms, summaries; not gauges) of ended lives to the
// live one's. A worker stopped gracefully hands in its final values
// (WriteFile, ReadFile); one killed loses what it counted after the
// pool's last scrape of it: these sums are a view of the run, and the
// store-side checks remain the truth.
package scrape
