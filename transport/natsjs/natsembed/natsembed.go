package natsembed

import (
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/eoskit/eos"
	"github.com/eoskit/eos/internal/config"
)

// DefaultReadyTimeout is the default of Config.ReadyTimeout.
const DefaultReadyTimeout = 10 * time.Second

// Config configures an embedded server. [Config.WithDefaults] applies the
// defaults (Start does).
type Config struct {
	// Dir is where JetStream keeps its files. Required.
	Dir string
	// Listen, when set, also listens on 127.0.0.1 (Port, or a free port when
	// Port is 0) so that other processes can connect. Otherwise the server
	// only takes in-process connections.
	Listen bool
	Port   int
	// SyncInterval, when positive, syncs JetStream's files at that interval
	// instead of on every write; see the package documentation for what
	// that risks. Default 0: sync always.
	SyncInterval time.Duration
	// ReadyTimeout bounds how long Start waits for the server. Default 10s.
	ReadyTimeout time.Duration
}

// Server is a running embedded NATS server.
type Server struct {
	s   *server.Server
	cfg Config
}

// WithDefaults returns a copy of c with the defaults applied, or a
// *eos.ConfigError naming the first invalid field.
func (c Config) WithDefaults() (Config, error) {
	if c.Dir == "" {
		return c, &eos.ConfigError{Field: "natsembed.Config.Dir", Reason: "empty"}
	}
	if c.Port < 0 || c.Port > 65535 {
		return c, &eos.ConfigError{Field: "natsembed.Config.Port", Reason: fmt.Sprintf("out of range: %d", c.Port)}
	}
	if c.SyncInterval < 0 {
		return c, &eos.ConfigError{Field: "natsembed.Config.SyncInterval", Reason: "negative"}
	}
	err := config.Duration("natsembed.Config.ReadyTimeout", &c.ReadyTimeout, DefaultReadyTimeout)
	return c, err
}

// Start starts a server.
func Start(cfg Config) (*Server, error) {
	cfg, err := cfg.WithDefaults()
	if err != nil {
		return nil, err
	}
	opts := &server.Options{
		ServerName: "eos-embedded",
		JetStream:  true,
		StoreDir:   cfg.Dir,
		Host:       "127.0.0.1",
		Port:       server.RANDOM_PORT,
		DontListen: !cfg.Listen,
		NoSigs:     true,
		NoLog:      true,
	}
	if cfg.Port != 0 {
		opts.Port = cfg.Port
	}
	if cfg.SyncInterval > 0 {
		opts.SyncInterval = cfg.SyncInterval
	} else {
		opts.SyncAlways = true
		opts.SyncInterval = 2 * time.Minute // also sync on this schedule, as the server does
	}
	s, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("natsembed: %w", err)
	}
	go s.Start()
	if !s.ReadyForConnections(cfg.ReadyTimeout) {
		s.Shutdown()
		return nil, errors.New("natsembed: server not ready within " + cfg.ReadyTimeout.String())
	}
	return &Server{s: s, cfg: cfg}, nil
}

// ClientURL is the URL other processes connect to; empty unless Listen.
func (s *Server) ClientURL() string {
	if !s.cfg.Listen {
		return ""
	}
	return s.s.ClientURL()
}

// Connect opens a connection to the server: in-process (no socket), with
// reconnects disabled (an in-process server going away does not come back
// at the same place).
func (s *Server) Connect(opts ...nats.Option) (*nats.Conn, error) {
	opts = append([]nats.Option{nats.InProcessServer(s.s), nats.Name("eos-inprocess"), nats.NoReconnect()}, opts...)
	return nats.Connect("", opts...)
}

// Shutdown stops the server and waits until it has stopped.
func (s *Server) Shutdown() {
	s.s.Shutdown()
	s.s.WaitForShutdown()
}
