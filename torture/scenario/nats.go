package scenario

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/eoskit/eos/internal/redact"
	"github.com/eoskit/eos/reconcile"
	"github.com/eoskit/eos/torture/check"
	"github.com/eoskit/eos/torture/faults"
	"github.com/eoskit/eos/torture/observe"
	"github.com/eoskit/eos/torture/producer"
	"github.com/eoskit/eos/torture/worker"
	"github.com/eoskit/eos/transport/natsjs"
	"github.com/eoskit/eos/transport/natsjs/natsembed"
)

// natsBus is a run's NATS JetStream: the server at url, or an embedded one
// in the run's directory.
type natsBus struct {
	url     string // external server; empty: embedded
	restart bool   // the embedded server will be restarted: connect over TCP with reconnects

	dir       string
	broker    *faults.Broker // nil with an external server
	nc        *nats.Conn
	js        jetstream.JetStream
	prodNC    *nats.Conn // the producer's own, through the fault proxy
	clientURL string     // the server's address
	workerURL string     // what the workers dial: clientURL or its proxy
	topo      worker.Topology
	streamsUp bool // the run's streams exist
	consumers []jetstream.Consumer
}

func (b *natsBus) open(ctx context.Context, dir, runID string) (_ worker.Topology, err error) {
	b.dir = dir
	if b.url != "" {
		if b.nc, err = nats.Connect(b.url, nats.Name("eos-demo"), nats.Timeout(5*time.Second)); err != nil {
			return b.topo, fmt.Errorf("cannot connect to NATS at %s: %w", redact.URL(b.url), err)
		}
		b.clientURL = b.url
		b.topo = RunTopology(runID)
	} else {
		if b.broker, err = faults.StartBroker(natsembed.Config{Dir: filepath.Join(dir, natsDir)}); err != nil {
			return b.topo, fmt.Errorf("start the embedded NATS server: %w", err)
		}
		b.clientURL = b.broker.ClientURL()
		if err := writeBrokerURL(dir, b.clientURL); err != nil {
			return b.topo, err
		}
		if b.restart {
			// Over TCP with reconnects: the server goes away and comes back.
			b.nc, err = nats.Connect(b.clientURL, nats.Name("eos-demo"), nats.MaxReconnects(-1),
				nats.ReconnectWait(100*time.Millisecond), nats.Timeout(5*time.Second))
		} else {
			b.nc, err = b.broker.Connect()
		}
		if err != nil {
			return b.topo, fmt.Errorf("connect to the embedded NATS server: %w", err)
		}
		b.topo = EmbeddedTopology
	}
	b.workerURL = b.clientURL
	if b.js, err = jetstream.New(b.nc); err != nil {
		return b.topo, err
	}
	return b.topo, b.provision(ctx)
}

// provision creates the streams and the durable consumers.
func (b *natsBus) provision(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if _, err := b.js.AccountInfo(ctx); err != nil {
		return fmt.Errorf("NATS at %s: JetStream is not available: %w", redact.URL(b.clientURL), err)
	}
	t := b.topo
	b.streamsUp = true
	if _, _, err := natsjs.EnsureStream(ctx, b.js, natsjs.StreamConfig{Name: t.OrdersStream, Subjects: []string{t.OrdersSubject()},
		Duplicates: producer.DupWindow}); err != nil {
		return err
	}
	if _, _, err := natsjs.EnsureStream(ctx, b.js, natsjs.StreamConfig{Name: t.PaymentsStream, Subjects: []string{t.PaymentsSubject()}}); err != nil {
		return err
	}
	for _, c := range []natsjs.ConsumerConfig{
		{Stream: t.OrdersStream, Durable: worker.OrdersDurable, AckWait: worker.AckWait, MaxDeliver: worker.MaxDeliver},
		{Stream: t.PaymentsStream, Durable: worker.PaymentsDurable, AckWait: worker.AckWait, MaxDeliver: worker.MaxDeliver},
	} {
		cons, _, err := natsjs.EnsureConsumer(ctx, b.js, c)
		if err != nil {
			return err
		}
		b.consumers = append(b.consumers, cons)
	}
	return nil
}

func (b *natsBus) front(p *faults.Proxies) (err error) {
	b.workerURL, err = p.Front("nats", b.workerURL, "4222")
	return err
}

func (b *natsBus) configure(c *worker.Config) {
	c.Transport, c.NATSURL = worker.TransportNATS, b.workerURL
}

// publisher publishes with the harness's own connection, or, when a fault
// proxy sits in front of NATS, a connection of its own through it, so
// that lost PubAcks and timeouts hit real publishes (the producer logs
// them as resends).
func (b *natsBus) publisher(dups *atomic.Int64) (producer.Publisher, error) {
	js := b.js
	if b.workerURL != b.clientURL {
		nc, err := nats.Connect(b.workerURL, nats.Name("eos-demo-producer"), nats.MaxReconnects(-1),
			nats.ReconnectWait(100*time.Millisecond), nats.Timeout(5*time.Second), nats.IgnoreDiscoveredServers(),
			// The proxy's resets are the point: the publishes' errors
			// tell the producer, nats.go need not print them.
			nats.ErrorHandler(func(*nats.Conn, *nats.Subscription, error) {}))
		if err != nil {
			return nil, fmt.Errorf("producer: connect to NATS through the fault proxy: %w", err)
		}
		b.prodNC = nc
		if js, err = jetstream.New(nc); err != nil {
			return nil, err
		}
	}
	pub, err := natsjs.NewPublisher(js, natsjs.PublisherConfig{OnDuplicate: func(string, string) { dups.Add(1) }})
	if err != nil {
		return nil, err
	}
	return producer.NATS(pub, js), nil
}

func (b *natsBus) positions(ctx context.Context) ([]consumerState, error) {
	var out []consumerState
	for _, c := range b.consumers {
		info, err := c.Info(ctx)
		if err != nil {
			return nil, err
		}
		out = append(out, consumerState{pending: info.NumPending, ackPending: info.NumAckPending,
			delivered: info.Delivered.Stream, ackFloor: info.AckFloor.Stream})
	}
	return out, nil
}

func (b *natsBus) storedIDs(ctx context.Context) (map[string]int, error) {
	return check.SourceIDs(ctx, reconcile.JetStreamSource{JS: b.js, Stream: b.topo.OrdersStream})
}

// stats reads the streams' message counts and the consumers' delivery
// counts.
func (b *natsBus) stats(ctx context.Context) (check.BrokerStats, error) {
	var s check.BrokerStats
	for _, st := range []struct {
		name string
		msgs *uint64
	}{{b.topo.OrdersStream, &s.OrdersStored}, {b.topo.PaymentsStream, &s.PaymentsStored}} {
		str, err := b.js.Stream(ctx, st.name)
		if err != nil {
			return s, fmt.Errorf("stream %s: %w", st.name, err)
		}
		info, err := str.Info(ctx)
		if err != nil {
			return s, fmt.Errorf("stream %s: %w", st.name, err)
		}
		*st.msgs = info.State.Msgs
	}
	for _, c := range b.consumers {
		info, err := c.Info(ctx)
		if err != nil {
			return s, fmt.Errorf("consumer %s: %w", c.CachedInfo().Name, err)
		}
		if info.Stream == b.topo.PaymentsStream {
			s.PaymentsDelivered += info.Delivered.Consumer
		} else {
			s.OrdersDelivered += info.Delivered.Consumer
		}
	}
	return s, nil
}

func (b *natsBus) restarter() restarter {
	if b.broker == nil {
		return nil
	}
	return b.broker
}

func (b *natsBus) observed() observe.Broker { return observe.NATS(b.js, b.topo) }

func (b *natsBus) label() string {
	if b.url != "" {
		return "nats"
	}
	return "nats-embedded"
}

func (b *natsBus) close(ctx context.Context, keep bool) {
	if b.js != nil && b.broker == nil && b.streamsUp && !keep {
		b.js.DeleteStream(ctx, b.topo.OrdersStream)
		b.js.DeleteStream(ctx, b.topo.PaymentsStream)
	}
	if b.prodNC != nil {
		b.prodNC.Close()
	}
	if b.nc != nil {
		b.nc.Close()
	}
	if b.broker != nil {
		b.broker.Shutdown()
		os.Remove(BrokerURLFile(b.dir))
	}
}
