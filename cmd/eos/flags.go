package main

import (
	"flag"
	"fmt"
	"io"
	"net/url"

	"github.com/eoskit/eos/internal/redact"
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
