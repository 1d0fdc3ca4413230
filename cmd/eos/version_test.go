package main

import (
	"runtime"
	"runtime/debug"
	"strings"
	"testing"
	"time"
)

func TestVersionText(t *testing.T) {
	for _, c := range []struct {
		name string
		info *debug.BuildInfo
		want string
	}{
		{"release", &debug.BuildInfo{GoVersion: "go1.26.0", Main: debug.Module{Path: "github.com/eoskit/eos", Version: "v0.4.0"}},
			"eos v0.4.0\ngo  go1.26.0\n"},
		{"checkout", &debug.BuildInfo{GoVersion: "go1.26.0", Main: debug.Module{Path: "github.com/eoskit/eos", Version: "(devel)"},
			Settings: []debug.BuildSetting{{Key: "vcs", Value: "git"}, {Key: "vcs.revision", Value: "1669094b9c0e"},
				{Key: "vcs.time", Value: "2026-11-30T10:00:00Z"}, {Key: "vcs.modified", Value: "true"}}},
			"eos (devel)\nvcs git 1669094b9c0e (modified), 2026-11-30T10:00:00Z\ngo  go1.26.0\n"},
		{"clean checkout", &debug.BuildInfo{GoVersion: "go1.26.0", Main: debug.Module{Version: "(devel)"},
			Settings: []debug.BuildSetting{{Key: "vcs", Value: "git"}, {Key: "vcs.revision", Value: "1669094b9c0e"}, {Key: "vcs.modified", Value: "false"}}},
			"eos (devel)\nvcs git 1669094b9c0e\ngo  go1.26.0\n"},
		{"no version", &debug.BuildInfo{GoVersion: "go1.26.0"}, "eos (devel)\ngo  go1.26.0\n"},
		{"no build info", nil, "eos (unknown version: no build information)\n"},
	} {
		if got := versionText(c.info); got != c.want {
			t.Errorf("%s:\n%s\nwant:\n%s", c.name, got, c.want)
		}
	}
}

// TestVersionCommand runs eos version as built for the test: the test
// binary's own build information.
func TestVersionCommand(t *testing.T) {
	r := runCmd(t, 10*time.Second, "version")
	if r.code != exitOK || !strings.HasPrefix(r.stdout, "eos ") || !strings.Contains(r.stdout, "go  "+runtime.Version()+"\n") {
		t.Errorf("eos version: code %d, stdout:\n%s\nstderr: %s", r.code, r.stdout, r.stderr)
	}
	if r := runCmd(t, 10*time.Second, "version", "--short"); r.code != exitUsage || !strings.Contains(r.stderr, `unexpected argument "--short"`) {
		t.Errorf("eos version --short: code %d, stderr %q", r.code, r.stderr)
	}
	if r := runCmd(t, 10*time.Second, "version", "-h"); r.code != exitOK || !strings.HasPrefix(r.stdout, "Usage: eos version") {
		t.Errorf("eos version -h: code %d, stdout %q", r.code, r.stdout)
	}
}
