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
const DefaultFailpoints = commonFailpoints + "natsjs.publish_ack_lost=error@0.001,natsjs.ack_lost=error@0.001"

// DefaultKafkaFailpoints is DefaultFailpoints on the Kafka transport: its
// publisher's and subscribers' lost acks in place of NATS's.
const DefaultKafkaFailpoints = commonFailpoints + "kafka.publish_ack_lost=error@0.001,kafka.ack_lost=error@0.001"

// DefaultFailpointSpec returns the default spec of the failpoints fault on
// transport (worker.TransportNATS or worker.TransportKafka).
func DefaultFailpointSpec(transport string) string {
	if transport == worker.TransportKafka {
		return DefaultKafkaFailpoints
	}
	return DefaultFailpoints
}

const commonFailpoints = "inbox.after_claim=crash@0.01,inbox.after_handler=delay:20ms@0.05," +
	"inbox.before_commit=error@0.05,driver.begin=error@0.02,driver.commit=crash@0.01,inbox.after_commit_before_ack=crash@0.01," +
	"relay.after_publish_before_mark=crash@0.02,callonce.after_call=crash@0.005,"

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

// CheckFailpointSpec parses spec as the workers on transport will.
func CheckFailpointSpec(spec, transport string) error {
	_, err := failpoint.Parse(spec, rand.New(rand.NewPCG(1, 1)), worker.FailpointNames(transport)...)
	return err
}

// Services names what a run runs on.
type Services struct {
	// Postgres is the PostgreSQL URL; empty: SQLite.
	Postgres string
	// Transport is worker.TransportNATS (empty too) or
	// worker.TransportKafka.
	Transport string
	// NATS is the NATS URL and Kafka the Kafka seed brokers of the
	// transport; empty: an embedded server.
	NATS  string
	Kafka []string
}

// kafka reports whether the run's transport is Kafka.
func (sv Services) kafka() bool { return sv.Transport == worker.TransportKafka }

// embeddedBroker reports whether the run's broker runs in the harness.
func (sv Services) embeddedBroker() bool {
	if sv.kafka() {
		return len(sv.Kafka) == 0
	}
	return sv.NATS == ""
}

// ProxiedServices lists what the proxy fault sits in front of: PostgreSQL
// when the run has it (SQLite has no network), and the broker: Kafka, or
// NATS unless it speaks TLS (the workers would check the server's
// certificate against the proxy's address).
func ProxiedServices(sv Services) []string {
	var s []string
	if sv.Postgres != "" {
		s = append(s, "postgres")
	}
	switch {
	case sv.kafka():
		s = append(s, "kafka")
	case !strings.HasPrefix(sv.NATS, "tls:"):
		s = append(s, "nats")
	}
	return s
}

// Plan splits the chosen faults into those a run injects on these services
// and those that do not apply to them, with the reason.
func (s Set) Plan(sv Services) (inject, notApplicable []string) {
	inject = []string{}
	for _, f := range All() {
		switch {
		case !s[f]:
		case f == BrokerRestart && !sv.embeddedBroker():
			notApplicable = append(notApplicable, f+" (external broker)")
		case f == Proxy && len(ProxiedServices(sv)) == 0:
			notApplicable = append(notApplicable, f+" (SQLite has no network, NATS over TLS)")
		default:
			inject = append(inject, f)
		}
	}
	return inject, notApplicable
}
