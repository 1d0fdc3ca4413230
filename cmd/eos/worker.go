package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"slices"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/eoskit/eos"
	"github.com/eoskit/eos/driver"
	"github.com/eoskit/eos/examples/payments"
	"github.com/eoskit/eos/failpoint"
	"github.com/eoskit/eos/inbox"
	"github.com/eoskit/eos/internal/redact"
	"github.com/eoskit/eos/outbox"
	"github.com/eoskit/eos/transport/natsjs"
)

// workerCommand is the hidden subcommand the demo runs its children with;
// workerEnv carries their configuration (JSON), out of sight of ps, and
// workerStartEnv which start of that worker this process is (1, 2, …).
const (
	workerCommand  = "__worker"
	workerEnv      = "EOS_DEMO_WORKER"
	workerStartEnv = "EOS_DEMO_WORKER_START"
)

// Worker roles.
const (
	roleOrders   = "orders"   // applies orders
	roleRelay    = "relay"    // forwards the outbox to PAYMENTS (one per database)
	rolePayments = "payments" // charges at the provider
)

// workerConfig is one child's job.
type workerConfig struct {
	Name        string      `json:"name"`
	Role        string      `json:"role"`
	Store       storeConfig `json:"store"`
	NATSURL     string      `json:"nats_url"`
	Topology    topology    `json:"topology"`
	ProviderURL string      `json:"provider_url"`
	LogLevel    string      `json:"log_level"`
	// Failpoints arms fault points in this worker (failpoint.Parse syntax;
	// empty: none), drawing from a source seeded with FailpointSeed, the
	// worker's name and its start number (workerStartEnv): a restarted
	// worker does not replay its crashes, and a rerun with the same seed
	// arms the same draws.
	Failpoints    string `json:"failpoints,omitempty"`
	FailpointSeed uint64 `json:"failpoint_seed,omitempty"`
}

// Processing settings of the workers.
const (
	ackWait    = 2 * time.Second // redelivery after a kill comes quickly
	maxDeliver = 1000
	// The pull buffers hold about one batch: AckWait runs from the
	// delivery to this process, not to the inbox, so a deep buffer in front
	// of a busy database would be redelivered while it waits.
	ordersBuffer   = 256
	paymentsBuffer = 2 * paymentsBatch
	relayPoll      = 100 * time.Millisecond
	paymentsBatch  = 64 // a payment batch holds the transaction while it calls the provider
)

func runWorker(ctx context.Context, args []string, stdin io.Reader, stderr io.Writer) int {
	raw := os.Getenv(workerEnv)
	if len(args) > 0 || raw == "" {
		fmt.Fprintln(stderr, "eos: "+workerCommand+" is internal to eos demo")
		return exitUsage
	}
	var cfg workerConfig
	if err := json.Unmarshal([]byte(raw), &cfg); err != nil {
		fmt.Fprintf(stderr, "eos: %s: bad configuration: %v\n", workerCommand, err)
		return exitUsage
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(cfg.LogLevel)); err != nil {
		level = slog.LevelWarn
	}
	log := newWorkerLogger(stderr, level).With("worker", cfg.Name, "pid", os.Getpid())

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// The demo holds the other end of stdin: EOF means it is gone.
	go func() {
		io.Copy(io.Discard, stdin)
		cancel()
	}()
	log.Info("worker starting", "role", cfg.Role)
	err := work(ctx, cfg, log)
	if err != nil && ctx.Err() == nil {
		log.Error("worker failed", "error", err)
		return exitFailed
	}
	log.Info("worker stopped")
	return exitOK
}

// newWorkerLogger writes text lines to w at level and up, with the secrets
// of any connection string in a message, a string or an error masked: a
// driver's error may quote the URL it was given.
func newWorkerLogger(w io.Writer, level slog.Level) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level, ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
		switch v := a.Value.Any().(type) {
		case string:
			a.Value = slog.StringValue(redact.Text(v))
		case error:
			a.Value = slog.StringValue(redact.Text(v.Error()))
		}
		return a
	}}))
}

func work(ctx context.Context, cfg workerConfig, log *slog.Logger) error {
	st, err := openStore(ctx, cfg.Store, 4)
	if err != nil {
		return err
	}
	defer st.close()
	nc, err := nats.Connect(cfg.NATSURL, nats.Name("eos-demo-"+cfg.Name), nats.MaxReconnects(-1),
		nats.ReconnectWait(100*time.Millisecond), nats.Timeout(5*time.Second),
		// Stay on the configured address (a fault proxy, in eos torture)
		// rather than the cluster's advertised ones.
		nats.IgnoreDiscoveredServers())
	if err != nil {
		return fmt.Errorf("connect to NATS: %w", err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	t := cfg.Topology
	fps, err := failpoint.Parse(cfg.Failpoints, rand.New(rand.NewPCG(cfg.FailpointSeed, failpointStream(cfg.Name, os.Getenv(workerStartEnv)))), workerFailpoints()...)
	if err != nil {
		return err
	}

	switch cfg.Role {
	case roleOrders:
		ob, err := outbox.New(st.drv, outbox.Config{})
		if err != nil {
			return err
		}
		h, err := payments.NewOrderHandler(ctx, st.store, ob, t.paymentsSubject())
		if err != nil {
			return err
		}
		defer h.Close()
		p, err := inbox.New(withCommitFailpoint(st.drv, fps), h.Handle, inbox.Config{
			Consumer: payments.OrdersConsumer, MaxAttempts: 100,
			RetryDelay: 100 * time.Millisecond, MaxRetryDelay: 2 * time.Second, Logger: log, Test: eos.TestConfig{Failpoints: fps},
		})
		if err != nil {
			return err
		}
		// Sorted by account within a batch, so that concurrent batches
		// lock accounts in one order (PostgreSQL: waits, no deadlocks).
		return consume(ctx, js, t.OrdersStream, ordersDurable, ordersBuffer, p, payments.SortByKey, fps)

	case rolePayments:
		client, err := payments.NewProviderClient(cfg.ProviderURL, nil)
		if err != nil {
			return err
		}
		h, err := payments.NewPaymentHandler(ctx, st.store, client)
		if err != nil {
			return err
		}
		defer h.Close()
		// Savepoints from the start: a provider failure then rolls back one
		// message, where the default would redo the batch and call the
		// provider again for all of it.
		p, err := inbox.New(withCommitFailpoint(st.drv, fps), h.Handle, inbox.Config{
			Consumer: payments.PaymentsConsumer, Isolation: inbox.IsolateSavepoint, MaxBatch: paymentsBatch,
			MaxAttempts: 1000, RetryDelay: 100 * time.Millisecond, MaxRetryDelay: time.Second, Logger: log, Test: eos.TestConfig{Failpoints: fps},
		})
		if err != nil {
			return err
		}
		return consume(ctx, js, t.PaymentsStream, paymentsDurable, paymentsBuffer, p, nil, fps)

	case roleRelay:
		pub, err := natsjs.NewPublisher(js, natsjs.PublisherConfig{Test: eos.TestConfig{Failpoints: fps}})
		if err != nil {
			return err
		}
		r, err := outbox.NewRelay(st.drv, pub, outbox.RelayConfig{PollInterval: relayPoll, Logger: log, Test: eos.TestConfig{Failpoints: fps}})
		if err != nil {
			return err
		}
		return r.Run(ctx)
	}
	return fmt.Errorf("unknown role %q", cfg.Role)
}

// consume runs p over the durable consumer the demo provisioned, through
// wrap if set; fps arms the subscriber's failpoints.
func consume(ctx context.Context, js jetstream.JetStream, stream, durable string, buffer int, p *inbox.Processor[*sql.Tx],
	wrap func(inbox.Source) inbox.Source, fps *failpoint.Set) error {
	cons, err := js.Consumer(ctx, stream, durable)
	if err != nil {
		return fmt.Errorf("consumer %s on %s: %w", durable, stream, err)
	}
	sub, err := natsjs.NewSubscriber(cons, natsjs.SubscriberConfig{Buffer: buffer, Test: eos.TestConfig{Failpoints: fps}})
	if err != nil {
		return err
	}
	defer sub.Close()
	var src inbox.Source = sub
	if wrap != nil {
		src = wrap(src)
	}
	err = p.Run(ctx, src)
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

// failDriverCommit is the failpoint evaluated inside the driver's Commit,
// before the transaction commits. It is the last step of an inbox batch
// before the commit, after every inbox failpoint: a crash there finds out
// an acknowledgement sent before the commit (the message is acked, its
// effects are never committed, and the checker counts it lost), which a
// crash at inbox.before_commit cannot, if the ack comes after that point.
const failDriverCommit = "driver.commit"

// workerFailpoints are the failpoints a worker evaluates: those of the
// packages it runs, and failDriverCommit.
func workerFailpoints() []string {
	return slices.Concat(inbox.FailpointNames(), outbox.FailpointNames(), natsjs.FailpointNames(), []string{failDriverCommit})
}

// commitFailpoint is a Driver whose Commit evaluates failDriverCommit
// first. It needs nothing from the library: any Driver can be wrapped.
type commitFailpoint struct {
	driver.Driver[*sql.Tx]
	fps *failpoint.Set
}

func (d commitFailpoint) Commit(ctx context.Context, tx *sql.Tx) error {
	if err := d.fps.Eval(failDriverCommit); err != nil {
		return err // the caller rolls back
	}
	return d.Driver.Commit(ctx, tx)
}

// commitFailpointClaim keeps the optional one-round-trip claim of the
// wrapped driver visible.
type commitFailpointClaim struct {
	commitFailpoint
	driver.ClaimBeginner[*sql.Tx]
}

// withCommitFailpoint wraps d so that its Commit evaluates
// failDriverCommit on fps (d itself when fps is nil).
func withCommitFailpoint(d driver.Driver[*sql.Tx], fps *failpoint.Set) driver.Driver[*sql.Tx] {
	if fps == nil {
		return d
	}
	w := commitFailpoint{Driver: d, fps: fps}
	if cb, ok := d.(driver.ClaimBeginner[*sql.Tx]); ok {
		return commitFailpointClaim{w, cb}
	}
	return w
}

// failpointStream picks the random stream of one start of one worker.
func failpointStream(name, start string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(name))
	h.Write([]byte{0})
	h.Write([]byte(start))
	return h.Sum64()
}
