package main

import (
	"flag"
	"fmt"
	"io"
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
