package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"runtime"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/eoskit/eos"
	"github.com/eoskit/eos/callonce"
	"github.com/eoskit/eos/dedupe"
	"github.com/eoskit/eos/examples/payments"
	"github.com/eoskit/eos/failpoint"
	"github.com/eoskit/eos/inbox"
	"github.com/eoskit/eos/internal/redact"
	"github.com/eoskit/eos/outbox"
	"github.com/eoskit/eos/service"
	"github.com/eoskit/eos/torture/supervisor"
	"github.com/eoskit/eos/transport/natsjs"
)

// Command is the hidden subcommand the harness runs its workers with;
// ConfigEnv carries their Config (JSON).
const (
	Command   = "__worker"
	ConfigEnv = "EOS_DEMO_WORKER"
)

// Roles.
const (
	RoleOrders   = "orders"   // applies orders
	RoleRelay    = "relay"    // forwards the outbox to PAYMENTS (one per database)
	RolePayments = "payments" // charges at the provider
)

// EventStoreError is the event a worker reports (see supervisor.Emitter)
// for each store failure its inbox reports to its ErrorHook.
const EventStoreError = "store_error"

// Config is one worker's job.
type Config struct {
	Name  string      `json:"name"`
	Role  string      `json:"role"`
	Store StoreConfig `json:"store"`
	// Transport is TransportNATS (empty too: NATSURL) or TransportKafka
	// (Kafka).
	Transport   string      `json:"transport,omitempty"`
	NATSURL     string      `json:"nats_url,omitempty"`
	Kafka       KafkaConfig `json:"kafka"`
	Topology    Topology    `json:"topology"`
	ProviderURL string      `json:"provider_url"`
	LogLevel    string      `json:"log_level"`
	// Failpoints arms fault points in this worker (failpoint.Parse syntax;
	// empty: none), drawing from a source seeded with FailpointSeed, the
	// worker's name and its start number (supervisor.StartEnv): a
	// restarted worker does not replay its crashes, and a rerun with the
	// same seed arms the same draws.
	Failpoints    string `json:"failpoints,omitempty"`
	FailpointSeed uint64 `json:"failpoint_seed,omitempty"`
	// Handler is the order workers' handler, HandlerBatch or
	// HandlerMessage (see CheckHandler); empty: HandlerBatch.
	Handler string `json:"handler,omitempty"`
	// MetricsDir, when set, turns the worker's metrics on: it serves them
	// on loopback, announces where (EventMetrics) and, when it stops
	// gracefully, writes their final values to MetricsFile in this
	// directory. Empty: no metrics (to measure what they cost).
	MetricsDir string `json:"metrics_dir,omitempty"`
}

// Order handlers (Config.Handler).
const (
	// HandlerBatch applies a batch of orders set-based, a few statements
	// per batch (payments.OrderBatchHandler): the default.
	HandlerBatch = "batch"
	// HandlerMessage applies each order with its own statements
	// (payments.OrderHandler).
	HandlerMessage = "message"
)

// Handlers lists the order handlers, the default first.
func Handlers() []string { return []string{HandlerBatch, HandlerMessage} }

// CheckHandler returns the order handler h names: HandlerBatch when h is
// empty, or an error naming the choices when h is none of Handlers.
func CheckHandler(h string) (string, error) {
	switch h {
	case "":
		return HandlerBatch, nil
	case HandlerBatch, HandlerMessage:
		return h, nil
	}
	return "", fmt.Errorf("unknown order handler %q: want %s", h, strings.Join(Handlers(), " or "))
}

// Env returns the environment entry that carries c to a worker process.
func (c Config) Env() (string, error) {
	raw, err := json.Marshal(c)
	if err != nil {
		return "", err
	}
	return ConfigEnv + "=" + string(raw), nil
}

// ErrConfig is wrapped by the errors of FromEnv: this process was not
// started as a worker, or with a configuration it cannot read.
var ErrConfig = errors.New(Command + " is internal to eos demo and eos torture")

// FromEnv reads the Config this process was started with.
func FromEnv() (Config, error) {
	var c Config
	raw := os.Getenv(ConfigEnv)
	if raw == "" {
		return c, ErrConfig
	}
	if err := json.Unmarshal([]byte(raw), &c); err != nil {
		return c, fmt.Errorf("%w: bad configuration: %w", ErrConfig, err)
	}
	return c, nil
}

// Serve is a worker process: it reads its Config from the environment and
// runs it until stdin (a pipe from the harness, which holds the other end)
// closes or ctx ends, logging to stderr and reporting its events on the
// supervisor's pipe. Errors wrapping ErrConfig are bad invocations.
func Serve(ctx context.Context, stdin io.Reader, stderr io.Writer) error {
	cfg, err := FromEnv()
	if err != nil {
		return err
	}
	log := NewLogger(stderr, cfg.Level()).With("worker", cfg.Name, "pid", os.Getpid())
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// EOF on stdin means the harness is gone.
	go func() {
		io.Copy(io.Discard, stdin)
		cancel()
	}()
	log.Info("worker starting", "role", cfg.Role)
	ev := supervisor.ChildEmitter()
	// Its descriptor would close once it is collected, and the events
	// sent after that be lost.
	defer runtime.KeepAlive(ev)
	if err := Run(ctx, cfg, log, ev); err != nil && ctx.Err() == nil {
		log.Error("worker failed", "error", err)
		return err
	}
	log.Info("worker stopped")
	return nil
}

// Level is the log level of c (warnings when it names none).
func (c Config) Level() slog.Level {
	var level slog.Level
	if err := level.UnmarshalText([]byte(c.LogLevel)); err != nil {
		return slog.LevelWarn
	}
	return level
}

// NewLogger writes text lines to w at level and up, with the secrets of any
// connection string in a message, a string or an error masked: a driver's
// error may quote the URL it was given.
func NewLogger(w io.Writer, level slog.Level) *slog.Logger {
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

// Processing settings of the workers.
const (
	// The pull buffers hold about one batch: AckWait runs from the
	// delivery to this process, not to the inbox, so a deep buffer in front
	// of a busy database would be redelivered while it waits.
	ordersBuffer   = 256
	paymentsBuffer = 2 * paymentsBatch
	relayPoll      = 100 * time.Millisecond
	paymentsBatch  = 64
	// chargeLease is the claim of a provider call: renewed while the call
	// runs, it is how long a crashed worker's charges wait before another
	// owner calls again (with the same key).
	chargeLease = 5 * time.Second
)

// Run does cfg's job until ctx ends or it fails. When ctx ends it stops
// the job within stopTimeout and returns nil, or the stop's error when the
// batches in flight had to be cancelled (rolled back, not acknowledged). ev
// receives the worker's events (nil: none).
func Run(ctx context.Context, cfg Config, log *slog.Logger, ev *supervisor.Emitter) error {
	st, err := OpenStore(ctx, cfg.Store, 4)
	if err != nil {
		return err
	}
	defer st.Close()
	t := cfg.Topology
	fps, err := failpoint.Parse(cfg.Failpoints, rand.New(rand.NewPCG(cfg.FailpointSeed, failpointStream(cfg.Name, os.Getenv(supervisor.StartEnv)))),
		FailpointNames(cfg.Transport)...)
	if err != nil {
		return err
	}
	test := eos.TestConfig{Failpoints: fps}
	var bk *broker
	if cfg.Transport == TransportKafka {
		bk, err = openKafka(cfg, log, test)
	} else {
		bk, err = openNATS(cfg, test)
	}
	if err != nil {
		return err
	}
	defer bk.close()
	wm, err := startMetrics(cfg, log, ev)
	if err != nil {
		return err
	}
	defer wm.stop() // before the store closes: the relay's final values read the outbox
	hooks := []inbox.Hook{storeErrors(ev)}
	var relayHooks []outbox.Hook
	if wm != nil {
		hooks = append(hooks, wm.InboxHook())
		relayHooks = append(relayHooks, wm.RelayHook())
	}

	switch cfg.Role {
	case RoleOrders:
		handler, err := CheckHandler(cfg.Handler)
		if err != nil {
			return err
		}
		ob, err := outbox.New(st.Driver, outbox.Config{})
		if err != nil {
			return err
		}
		// Orders in account order within a batch, so that concurrent
		// batches lock accounts in one order (PostgreSQL: waits, no
		// deadlocks): the per-message handler debits in delivery order,
		// the batch handler locks its accounts sorted anyway.
		icfg := inbox.Config{
			Consumer: payments.OrdersConsumer, MaxAttempts: 100, OrderByKey: true,
			RetryDelay: 100 * time.Millisecond, MaxRetryDelay: 2 * time.Second, Logger: log, Hooks: hooks, Test: test,
		}
		ic := service.InboxConfig{Source: bk.orders}
		drv := withFailpoints(st.Driver, fps)
		var ib *service.Inbox
		var p interface{ Activity() inbox.Activity }
		if handler == HandlerMessage {
			h, err := payments.NewOrderHandler(ctx, st.Tables, ob, t.PaymentsSubject())
			if err != nil {
				return err
			}
			defer h.Close()
			if ib, p, err = service.NewInbox(drv, h.Handle, icfg, ic); err != nil {
				return err
			}
		} else {
			h, err := payments.NewOrderBatchHandler(ctx, st.Tables, ob, t.PaymentsSubject())
			if err != nil {
				return err
			}
			defer h.Close()
			if ib, p, err = service.NewBatchInbox(drv, h.Handle, icfg, ic); err != nil {
				return err
			}
		}
		if err := wm.watchInbox(payments.OrdersConsumer, p.Activity); err != nil {
			return err
		}
		log.Info("order handler", "handler", handler)
		return runService(ctx, log, []*service.Inbox{ib})

	case RolePayments:
		client, err := payments.NewProviderClient(cfg.ProviderURL, nil)
		if err != nil {
			return err
		}
		// The provider calls are claimed and recorded in the worker's own
		// database, next to its inbox, a batch's in one transaction.
		calls, err := dedupe.NewSQL(st.Driver, dedupe.Config{Test: test})
		if err != nil {
			return err
		}
		caller, err := callonce.New(callonce.Batched(st.Driver, calls), callonce.Config{Lease: chargeLease, Logger: log, Hooks: wm.callHooks(), Test: test})
		if err != nil {
			return err
		}
		h, err := payments.NewPaymentHandler(ctx, st.Tables, client, caller)
		if err != nil {
			return err
		}
		defer h.Close()
		// The charges run in h.Source, before the inbox's transaction; a
		// charge without a definitive answer fails its message's attempt
		// alone (savepoints), to be retried with the same key.
		ib, p, err := service.NewInbox(withFailpoints(st.Driver, fps), h.Handle, inbox.Config{
			Consumer: payments.PaymentsConsumer, Isolation: inbox.IsolateSavepoint, MaxBatch: paymentsBatch,
			MaxAttempts: 1000, RetryDelay: 100 * time.Millisecond, MaxRetryDelay: time.Second, Logger: log, Hooks: hooks, Test: test,
		}, service.InboxConfig{Source: staged(h, bk.payments)})
		if err != nil {
			return err
		}
		if err := wm.watchInbox(payments.PaymentsConsumer, p.Activity); err != nil {
			return err
		}
		return runService(ctx, log, []*service.Inbox{ib})

	case RoleRelay:
		pub, err := bk.publisher(wm.brokerDuplicate())
		if err != nil {
			return err
		}
		r, err := outbox.NewRelay(st.Driver, pub, outbox.RelayConfig{PollInterval: relayPoll, Logger: log, Hooks: relayHooks, Test: test})
		if err != nil {
			return err
		}
		if wm != nil {
			ob, err := outbox.New(st.Driver, outbox.Config{})
			if err != nil {
				return err
			}
			if err := wm.WatchOutbox(OutboxName, ob.Stats); err != nil {
				return err
			}
		}
		return runService(ctx, log, nil, r)
	}
	return fmt.Errorf("unknown role %q", cfg.Role)
}

// storeErrors reports each store failure of an inbox to the harness.
func storeErrors(ev *supervisor.Emitter) inbox.Hook {
	return inbox.ErrorFunc(func(context.Context, string, string, error) { ev.Emit(EventStoreError) })
}

// openNATS connects to cfg's NATS server: subscribers on the durable
// consumers the harness provisioned, and a publisher.
func openNATS(cfg Config, test eos.TestConfig) (*broker, error) {
	nc, err := nats.Connect(cfg.NATSURL, nats.Name("eos-demo-"+cfg.Name), nats.MaxReconnects(-1),
		nats.ReconnectWait(100*time.Millisecond), nats.Timeout(5*time.Second),
		// Stay on the configured address (a fault proxy, in eos torture)
		// rather than the cluster's advertised ones.
		nats.IgnoreDiscoveredServers())
	if err != nil {
		return nil, fmt.Errorf("connect to NATS: %w", err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, err
	}
	t := cfg.Topology
	sub := func(stream, durable string, buffer int) service.SourceFunc {
		return func(ctx context.Context) (inbox.Source, error) {
			cons, err := js.Consumer(ctx, stream, durable)
			if err != nil {
				return nil, fmt.Errorf("consumer %s on %s: %w", durable, stream, err)
			}
			return natsjs.NewSubscriber(cons, natsjs.SubscriberConfig{Buffer: buffer, Test: test})
		}
	}
	return &broker{
		orders:   sub(t.OrdersStream, OrdersDurable, ordersBuffer),
		payments: sub(t.PaymentsStream, PaymentsDurable, paymentsBuffer),
		publisher: func(onDup func(subject, id string)) (outbox.Publisher, error) {
			return natsjs.NewPublisher(js, natsjs.PublisherConfig{OnDuplicate: onDup, Test: test})
		},
		close: nc.Close,
	}, nil
}

// staged opens the source of open wrapped by the payment handler's stage:
// the charges run before the inbox's transaction.
func staged(h *payments.PaymentHandler, open service.SourceFunc) service.SourceFunc {
	return func(ctx context.Context) (inbox.Source, error) {
		src, err := open(ctx)
		if err != nil {
			return nil, err
		}
		return h.Source(src), nil
	}
}

// runService runs the worker's inboxes and runners until ctx ends, then
// stops them gracefully (a batch in flight finishes within stopTimeout).
func runService(ctx context.Context, log *slog.Logger, inboxes []*service.Inbox, runners ...service.Runner) error {
	svc, err := service.New(service.Config{Inboxes: inboxes, Runners: runners, Logger: log, StopTimeout: stopTimeout})
	if err != nil {
		return err
	}
	return svc.Run(ctx)
}

// stopTimeout bounds a worker's graceful stop.
const stopTimeout = 5 * time.Second

// failpointStream picks the random stream of one start of one worker.
func failpointStream(name, start string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(name))
	h.Write([]byte{0})
	h.Write([]byte(start))
	return h.Sum64()
}
