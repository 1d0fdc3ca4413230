// Package promtest runs a real Prometheus for tests: the prometheus binary
// of PATH (Debian package prometheus; .ci/run installs it) with a
// generated configuration that scrapes the given targets every second and
// loads the given rule files, its data in the test's temporary directory,
// on a free loopback port, stopped when the test ends. Its HTTP API is
// read for instant queries, rules with their health, active alerts and
// exemplars.
//
// It exists so that eos's dashboards, rules and alerts are tested against
// the program that will run them, and so that any test serving eos's
// metrics (the deploy package's, eos demo --serve's) can be scraped the
// same way. Waiting on Prometheus is polling with a deadline
// (Eventually): it offers no signal for "scraped" or "evaluated".
package promtest
