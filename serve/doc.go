// Package serve is eos's operator endpoint: an http.Handler serving
// /metrics, /healthz, /readyz, a status page (/) and its data as JSON
// (/status.json). A program mounts it in its own server, under any
// prefix:
//
//	h, err := serve.New(serve.Config{Gatherer: reg, Checks: checks, Consumers: consumers, Token: token})
//	mux.Handle("/eos/", http.StripPrefix("/eos", h))
//
// Every link the page makes is relative, so it works behind StripPrefix
// or a proxy that strips a path.
//
// The status page shows what eos promises, live: the SLIs (duplicates
// suppressed, duplicate effects, missed applies, partial commits,
// dedupe-store errors, redeliveries, end-to-end latency), each consumer's
// counters and broker lag, each outbox's backlog, the readiness checks,
// and the first dead letters and quarantined messages of each consumer
// with their errors. Its numbers are read from Config.Gatherer at each
// request, the one /metrics serves, so the page and a Prometheus scraping
// /metrics see the same values; the dead letters and quarantined messages
// are read through the inbox's admin API (inbox.Processor's DeadLetters
// and Quarantine). The page is rendered on the server, with no script,
// and reloads itself (Config.Refresh).
//
// Readiness is a list of named checks, each a func(ctx) error run within
// Config.CheckTimeout: a store ping, a broker ping, ServiceCheck (an
// eos service.Service that is running and not stalled on its store).
//
// With Config.Token set, every route but /healthz asks for
// "Authorization: Bearer <token>". RequireToken is the rule eos serve and
// eos demo --serve apply before they listen: no token, no address beyond
// loopback.
//
// Text from outside (errors, message ids, subjects) is made valid UTF-8,
// cut to a bound and has its secrets masked before it is shown; the page
// escapes it (html/template).
package serve
