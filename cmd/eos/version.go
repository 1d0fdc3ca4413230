package main

import (
	"fmt"
	"io"
	"runtime/debug"
	"strings"
)

const versionUsage = `Usage: eos version

Prints the version of eos this executable was built from, and the Go
version that built it. A release installed with 'go install
github.com/eoskit/eos/cmd/eos@vX.Y.Z' shows vX.Y.Z; an executable built
from a checkout shows (devel), with the commit and whether the tree had
changes when the build stamped them.
`

func runVersion(args []string, stdout, stderr io.Writer) int {
	switch {
	case len(args) == 1 && isHelp(args[0]):
		fmt.Fprint(stdout, versionUsage)
		return exitOK
	case len(args) > 0:
		fmt.Fprintf(stderr, "eos version: unexpected argument %q (see eos version -h)\n", args[0])
		return exitUsage
	}
	info, _ := debug.ReadBuildInfo() // nil without build information
	fmt.Fprint(stdout, versionText(info))
	return exitOK
}

func isHelp(arg string) bool {
	switch arg {
	case "-h", "-help", "--help", "help":
		return true
	}
	return false
}

// versionText describes the build info, or says it is missing (nil: an
// executable built without module support).
//
//	eos v0.4.0
//	go  go1.26.0
//
//	eos (devel)
//	vcs git 1669094b9c0e5d1f0e2a3b4c5d6e7f8091a2b3c4 (modified), 2026-11-30T10:00:00Z
//	go  go1.26.0
func versionText(info *debug.BuildInfo) string {
	if info == nil {
		return "eos (unknown version: no build information)\n"
	}
	v := info.Main.Version
	if v == "" {
		v = "(devel)"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "eos %s\n", v)
	settings := map[string]string{}
	for _, s := range info.Settings {
		settings[s.Key] = s.Value
	}
	if rev := settings["vcs.revision"]; rev != "" {
		line := settings["vcs"] + " " + rev
		if settings["vcs.modified"] == "true" {
			line += " (modified)"
		}
		if at := settings["vcs.time"]; at != "" {
			line += ", " + at
		}
		fmt.Fprintf(&b, "vcs %s\n", strings.TrimSpace(line))
	}
	fmt.Fprintf(&b, "go  %s\n", info.GoVersion)
	return b.String()
}
