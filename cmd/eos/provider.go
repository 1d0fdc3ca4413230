package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"

	"github.com/eoskit/eos/dedupe"
	"github.com/eoskit/eos/dedupe/redisstore"
	"github.com/eoskit/eos/driver/postgres"
	"github.com/eoskit/eos/driver/sqlite"
	"github.com/eoskit/eos/httpidem"
	"github.com/eoskit/eos/internal/redact"
	"github.com/eoskit/eos/serve"
	"github.com/eoskit/eos/torture/provider"
	"github.com/eoskit/eos/torture/worker"
)

const providerUsage = `Usage: eos provider --store URL [--addr HOST:PORT] [flags]

Serves a payment-provider simulator built on the Idempotency-Key
middleware (package httpidem), to try its rules with curl:

  POST /v1/charges  JSON {"order_id","account","amount"} with an
                    Idempotency-Key header (required): 201 and the charge;
                    a retry with the key gets the same answer with
                    Idempotent-Replayed: true; the key with another body
                    422; while the first runs 409 + Retry-After; no key 400
  GET  /v1/charges  the charges executed

--store names where the keys live:
  sqlite:///path/to.db       a SQLite file (created, migrated); the charges
                             are in it too, committed with their keys
  postgres://user@host/db    PostgreSQL (migrated); the charges likewise
  redis://host:6379/0        Redis; the charges are kept in memory

Keys are scoped by the caller: a hash of the Authorization header. The
simulator has no authentication: it listens on loopback only.

Flags:
`

type providerOptions struct {
	addr, store string
	lenient     bool
	lease, wait time.Duration
}

func providerFlagSet(o *providerOptions) *flag.FlagSet {
	fs := flag.NewFlagSet("eos provider", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&o.addr, "addr", "127.0.0.1:8080", "address to listen on (loopback only)")
	fs.StringVar(&o.store, "store", "", "where the keys live: sqlite:///path.db, postgres://…, redis://… (required)")
	fs.BoolVar(&o.lenient, "lenient", true, `accept unquoted keys (Idempotency-Key: abc) besides the draft's "abc"`)
	fs.DurationVar(&o.lease, "lease", httpidem.DefaultLease, "how long a request holds its key before a retry may take it over")
	fs.DurationVar(&o.wait, "wait", 0, "how long a retry waits for the first request before answering 409")
	return fs
}

func runProvider(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	var o providerOptions
	fs := providerFlagSet(&o)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(stdout, providerUsage)
			printFlags(stdout, fs)
			return exitOK
		}
		fmt.Fprintf(stderr, "eos provider: %v\n", err)
		return exitUsage
	}
	switch {
	case o.store == "":
		fmt.Fprintln(stderr, "eos provider: --store: required (sqlite:///path.db, postgres://…, redis://…)")
		return exitUsage
	case !serve.IsLoopback(o.addr):
		fmt.Fprintf(stderr, "eos provider: --addr: %q is not a loopback address (the simulator has no authentication)\n", o.addr)
		return exitUsage
	}
	log := worker.NewLogger(stderr, slog.LevelWarn)
	cfg := httpidem.Config{Lenient: o.lenient, Lease: o.lease, Wait: o.wait, Logger: log}
	h, closeStore, err := openProvider(ctx, o.store, cfg, log)
	if err != nil {
		fmt.Fprintf(stderr, "eos provider: --store: %s\n", redact.Text(err.Error()))
		return exitUsage
	}
	defer closeStore()
	ln, err := net.Listen("tcp", o.addr)
	if err != nil {
		fmt.Fprintf(stderr, "eos provider: %v\n", err)
		return exitUsage
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	fmt.Fprintf(stdout, "eos provider: POST http://%s%s (store %s; interrupt to stop)\n", ln.Addr(), provider.ChargesPath, redact.URL(o.store))
	select {
	case <-ctx.Done():
	case err := <-done:
		fmt.Fprintf(stderr, "eos provider: %v\n", err)
		return exitFailed
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	srv.Shutdown(sctx)
	return exitOK
}

// openProvider opens the store the URL names and the provider over it.
func openProvider(ctx context.Context, store string, cfg httpidem.Config, log *slog.Logger) (http.Handler, func(), error) {
	u, err := url.Parse(store)
	if err != nil {
		return nil, nil, fmt.Errorf("not a URL")
	}
	switch u.Scheme {
	case "sqlite":
		return openProviderSQLite(ctx, strings.TrimPrefix(strings.TrimPrefix(store, "sqlite:"), "//"), cfg)
	case "postgres", "postgresql":
		return openProviderPostgres(ctx, store, cfg)
	case "redis", "rediss":
		opt, err := redis.ParseURL(store)
		if err != nil {
			return nil, nil, err
		}
		c := redis.NewClient(opt)
		if err := c.Ping(ctx).Err(); err != nil {
			c.Close()
			return nil, nil, err
		}
		s, err := redisstore.New(ctx, c, redisstore.Config{Logger: log})
		if err != nil {
			c.Close()
			return nil, nil, err
		}
		p, err := provider.New(s, cfg)
		if err != nil {
			c.Close()
			return nil, nil, err
		}
		return p, func() { c.Close() }, nil
	}
	return nil, nil, fmt.Errorf("want sqlite:///path.db, postgres://… or redis://…, got scheme %q", u.Scheme)
}

func openProviderSQLite(ctx context.Context, path string, cfg httpidem.Config) (http.Handler, func(), error) {
	if path == "" {
		return nil, nil, errors.New("sqlite: no path (sqlite:///path/to.db)")
	}
	d, err := sqlite.Open(ctx, path, sqlite.Config{})
	if err != nil {
		return nil, nil, err
	}
	p, err := func() (http.Handler, error) {
		if _, err := d.Migrator().Up(ctx); err != nil {
			return nil, err
		}
		s, err := dedupe.NewSQL(d, dedupe.Config{})
		if err != nil {
			return nil, err
		}
		l, err := provider.NewSQLLedger(ctx, d.DB())
		if err != nil {
			return nil, err
		}
		return provider.NewTx(s, d, l, cfg)
	}()
	if err != nil {
		d.Close()
		return nil, nil, err
	}
	return p, func() { d.Close() }, nil
}

func openProviderPostgres(ctx context.Context, dsn string, cfg httpidem.Config) (http.Handler, func(), error) {
	pool, err := pgxpool.New(ctx, dsn)
	if err != nil {
		return nil, nil, err
	}
	p, err := func() (http.Handler, error) {
		d, err := postgres.New(pool, postgres.Config{})
		if err != nil {
			return nil, err
		}
		if _, err := d.Migrator().Up(ctx); err != nil {
			return nil, err
		}
		s, err := dedupe.NewSQL(d, dedupe.Config{})
		if err != nil {
			return nil, err
		}
		l, err := provider.NewPgxLedger(ctx, pool)
		if err != nil {
			return nil, err
		}
		return provider.NewTx(s, d, l, cfg)
	}()
	if err != nil {
		pool.Close()
		return nil, nil, err
	}
	return p, pool.Close, nil
}
