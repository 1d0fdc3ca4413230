package faults

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"

	"github.com/eoskit/eos/failpoint"
	"github.com/eoskit/eos/torture/worker"
)

// Fault names, as --faults takes them.
const (
	Kill          = "kill"
	Failpoints    = "failpoints"
	BrokerRestart = "broker-restart"
	Duplicates    = "duplicates"
	Poison        = "poison"
	Proxy         = "proxy"
)

// All lists every fault, in the order reports name them.
func All() []string { return []string{Kill, Failpoints, BrokerRestart, Duplicates, Poison, Proxy} }

// DefaultFailpoints is what the failpoints fault arms in every worker: low
// probabilities per batch; crashes at each step of the inbox and the relay
// and inside the driver's commit (after every inbox step: an ack sent
// before the commit shows up as a loss); store failures when a transaction
// begins (driver.begin: the inbox stalls, acknowledging nothing); per
// message, lost PubAcks at the relay's publisher and lost acks at the
// consumers' subscribers.
const DefaultFailpoints = "inbox.after_claim=crash@0.01,inbox.after_handler=delay:20ms@0.05," +
	"inbox.before_commit=error@0.05,driver.begin=error@0.02,driver.commit=crash@0.01,inbox.after_commit_before_ack=crash@0.01," +
	"relay.after_publish_before_mark=crash@0.02,callonce.after_call=crash@0.005,natsjs.publish_ack_lost=error@0.001,natsjs.ack_lost=error@0.001"

// Set is a set of chosen faults.
type Set map[string]bool

// Parse reads a comma-separated list of fault names, "all" or "none".
func Parse(list string) (Set, error) {
	s := Set{}
	for _, f := range strings.Split(list, ",") {
		f = strings.TrimSpace(f)
		switch {
		case f == "all":
			for _, a := range All() {
				s[a] = true
			}
		case f == "none" || f == "":
		case slices.Contains(All(), f):
			s[f] = true
		default:
			return nil, fmt.Errorf("unknown fault %q (want all, none or %s)", f, strings.Join(All(), ", "))
		}
	}
	return s, nil
}

// CheckFailpointSpec parses spec as the workers will.
func CheckFailpointSpec(spec string) error {
	_, err := failpoint.Parse(spec, rand.New(rand.NewPCG(1, 1)), worker.FailpointNames()...)
	return err
}

// ProxiedServices lists what the proxy fault sits in front of: PostgreSQL
// when postgresURL is set (SQLite has no network), and NATS unless it
// speaks TLS (the workers would check the server's certificate against the
// proxy's address).
func ProxiedServices(postgresURL, natsURL string) []string {
	var s []string
	if postgresURL != "" {
		s = append(s, "postgres")
	}
	if !strings.HasPrefix(natsURL, "tls:") {
		s = append(s, "nats")
	}
	return s
}

// Plan splits the chosen faults into those a run injects on these services
// and those that do not apply to them, with the reason.
func (s Set) Plan(postgresURL, natsURL string) (inject, notApplicable []string) {
	inject = []string{}
	for _, f := range All() {
		switch {
		case !s[f]:
		case f == BrokerRestart && natsURL != "":
			notApplicable = append(notApplicable, f+" (external NATS)")
		case f == Proxy && len(ProxiedServices(postgresURL, natsURL)) == 0:
			notApplicable = append(notApplicable, f+" (SQLite has no network, NATS over TLS)")
		default:
			inject = append(inject, f)
		}
	}
	return inject, notApplicable
}
