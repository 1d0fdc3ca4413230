// Package deploy ships what an operator runs next to eos, as files: three
// Grafana dashboards (grafana/: executive, on-call, debug) and the
// Prometheus recording rules and alerts of eos's SLIs and SLOs
// (prometheus/: eos-rules.yml, eos-alerts.yml), each alert with a runbook
// under docs/runbooks of the repository.
//
// The files are embedded so that a program (eos serve, or a user's own
// server) can hand them out or write them where Prometheus and Grafana
// read them, from the same build as the metrics they describe: a
// dashboard that names a metric this version of eos does not export is a
// test failure here, not a blank panel in production.
//
// The dashboards take the Prometheus data source as the variable
// DS_PROMETHEUS and filter on the variables service and consumer; the
// rules sum by service and consumer (or outbox, topic), where service is
// the constant label a program adds with prometheus.WrapRegistererWith and
// may be absent.
package deploy
