package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"strconv"
	"strings"

	"github.com/eoskit/eos/internal/redact"
	"github.com/eoskit/eos/internal/storable"
	"github.com/eoskit/eos/torture/worker"
)

// printFlags lists fs's flags as the usage texts and the docs spell them,
// with two dashes (the flag package accepts one or two).
func printFlags(w io.Writer, fs *flag.FlagSet) {
	fs.VisitAll(func(f *flag.Flag) {
		kind, usage := flag.UnquoteUsage(f)
		line := "  --" + f.Name
		if kind != "" {
			line += " " + kind
		}
		switch f.DefValue {
		case "", "0", "0s", "false":
		default:
			if kind == "string" {
				usage += fmt.Sprintf(" (default %q)", f.DefValue)
			} else {
				usage += fmt.Sprintf(" (default %s)", f.DefValue)
			}
		}
		fmt.Fprintln(w, line)
		for _, l := range wrap(usage, flagIndent, flagIndent, reportWidth) {
			fmt.Fprintln(w, l)
		}
	})
}

// flagIndent indents a flag's description under its name.
const flagIndent = "        "

// checkServiceURLs checks the --postgres and --nats flags, each optional,
// quoting a bad one with its secrets masked.
func checkServiceURLs(postgres, natsURL string) error {
	if postgres != "" {
		if u, err := url.Parse(postgres); err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") || u.Host == "" {
			return fmt.Errorf("--postgres: want a URL like postgres://user@host:5432/db, got %q", redact.URL(postgres))
		}
	}
	if natsURL != "" {
		if u, err := url.Parse(natsURL); err != nil || (u.Scheme != "nats" && u.Scheme != "tls") || u.Host == "" {
			return fmt.Errorf("--nats: want a URL like nats://host:4222, got %q", redact.URL(natsURL))
		}
	}
	return nil
}

// transportFlags defines --transport and --kafka.
func transportFlags(fs *flag.FlagSet, transport, kafkaBrokers *string) {
	fs.StringVar(transport, "transport", worker.TransportNATS, "the broker: "+worker.TransportNATS+" (JetStream) or "+worker.TransportKafka+
		" (an embedded kfake cluster unless --kafka)")
	fs.StringVar(kafkaBrokers, "kafka", "", "with --transport kafka: the Kafka seed brokers (host:port,…) instead of the embedded cluster")
}

// checkTransport checks --transport, --nats and --kafka together and
// returns the seed brokers --kafka lists.
func checkTransport(transport, natsURL, kafkaBrokers string) ([]string, error) {
	switch transport {
	case worker.TransportNATS:
		if kafkaBrokers != "" {
			return nil, errors.New("--kafka: needs --transport kafka")
		}
		return nil, nil
	case worker.TransportKafka:
	default:
		return nil, fmt.Errorf("--transport: want %s or %s, got %q", worker.TransportNATS, worker.TransportKafka, storable.Text(transport, 40))
	}
	if natsURL != "" {
		return nil, errors.New("--nats: not with --transport kafka")
	}
	if kafkaBrokers == "" {
		return nil, nil
	}
	var brokers []string
	for _, b := range strings.Split(kafkaBrokers, ",") {
		b = strings.TrimSpace(b)
		host, port, err := net.SplitHostPort(b)
		if p, perr := strconv.Atoi(port); err != nil || perr != nil || host == "" || p < 1 || p > 65535 {
			return nil, fmt.Errorf("--kafka: want host:port[,host:port…], got %q", storable.Text(b, 100))
		}
		brokers = append(brokers, b)
	}
	return brokers, nil
}
