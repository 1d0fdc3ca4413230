package deploy

import (
	"embed"
	"io/fs"
)

// Directories of FS.
const (
	// DashboardsDir holds the Grafana dashboards, one JSON file each.
	DashboardsDir = "grafana"
	// RulesDir holds the Prometheus rule files: recording rules and alerts.
	RulesDir = "prometheus"
)

// files are the deployable files; the tests of the rules (prometheus/tests)
// stay out.
//
//go:embed grafana/*.json prometheus/*.yml
var files embed.FS

// FS returns the dashboards (DashboardsDir/*.json) and the rule files
// (RulesDir/*.yml), read-only.
func FS() fs.FS { return files }

// Dashboards returns the paths in FS of the Grafana dashboards, sorted.
func Dashboards() []string { return glob(DashboardsDir + "/*.json") }

// RuleFiles returns the paths in FS of the Prometheus rule files, sorted.
// Load them all: the alerts read series the recording rules write.
func RuleFiles() []string { return glob(RulesDir + "/*.yml") }

// glob lists the embedded files matching pattern, one of the constant
// patterns above: fs.Glob fails only on a malformed pattern, which the
// tests would show as an empty list.
func glob(pattern string) []string {
	names, _ := fs.Glob(files, pattern)
	return names
}
