package scenario

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/eoskit/eos/torture/internal/private"

	"github.com/eoskit/eos/torture/observe"
	"github.com/eoskit/eos/torture/worker"
)

// brokerURLFile names the file that holds the embedded server's client
// URL while a run is live.
const brokerURLFile = "nats.url"

// BrokerURLFile is the file in a run's directory that holds the client URL
// of the run's embedded NATS server while the run is live: eos serve --dir
// connects there rather than starting a second server over the same files.
// The run removes it when it closes (a killed run leaves it behind, and
// the URL then refuses connections).
func BrokerURLFile(dir string) string { return filepath.Join(dir, brokerURLFile) }

// writeBrokerURL writes the embedded server's URL to BrokerURLFile in dir.
func writeBrokerURL(dir, url string) error {
	f, err := private.Create(BrokerURLFile(dir), true)
	if err == nil {
		_, err = fmt.Fprintln(f, url)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		os.Remove(BrokerURLFile(dir))
		return fmt.Errorf("--dir: %w", err)
	}
	return nil
}

// EmbeddedTopology is the streams (or topics) of a run on an embedded
// broker, which has it to itself.
var EmbeddedTopology = worker.Topology{OrdersStream: "ORDERS", PaymentsStream: "PAYMENTS", Base: "demo"}

// RunTopology is the streams (or topics and groups) of run runID on an
// external broker, named after the run so that runs sharing one do not
// meet.
func RunTopology(runID string) worker.Topology {
	return worker.Topology{OrdersStream: "ORDERS_" + strings.ToUpper(runID), PaymentsStream: "PAYMENTS_" + strings.ToUpper(runID),
		Base: "eosdemo." + runID}
}

// RunSchema is the PostgreSQL schema of run runID.
func RunSchema(runID string) string { return "eos_demo_" + runID }

// Pipeline is the run's database and broker, for an observer
// (observe.New): the harness's own connections to them.
func (s *Scenario) Pipeline() observe.Pipeline {
	return observe.Pipeline{Store: s.st, Broker: s.bus.observed()}
}

// Observe returns the status handler of the run (eos demo --serve) over
// its database and broker, with the workers' metrics (Gatherer) beside
// them unless cfg.Extra names another Gatherer.
func (s *Scenario) Observe(cfg observe.Config) (*observe.Observer, error) {
	if cfg.Extra == nil {
		cfg.Extra = s.Gatherer() // the workers' inbox and relay metrics, summed
	}
	return observe.New(s.Pipeline(), cfg)
}
