package deploy_test

import (
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/eoskit/eos/deploy"
	"github.com/eoskit/eos/internal/testenv"
)

const (
	runbookDir    = "../docs/runbooks"
	runbookPrefix = "https://github.com/eoskit/eos/blob/main/docs/runbooks/"
)

// ruleFile is the part of a Prometheus rule file the tests read.
type ruleFile struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []rule `yaml:"rules"`
	} `yaml:"groups"`
}

type rule struct {
	Record      string            `yaml:"record"`
	Alert       string            `yaml:"alert"`
	Expr        string            `yaml:"expr"`
	Labels      map[string]string `yaml:"labels"`
	Annotations map[string]string `yaml:"annotations"`
}

// decode reads the embedded file name into v.
func decode(t *testing.T, name string, unmarshal func([]byte, any) error, v any) {
	t.Helper()
	b, err := fs.ReadFile(deploy.FS(), name)
	if err != nil {
		t.Fatal(err)
	}
	if err := unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
}

// rules reads every rule of the embedded rule files.
func rules(t *testing.T) []rule {
	t.Helper()
	var all []rule
	for _, name := range deploy.RuleFiles() {
		var f ruleFile
		decode(t, name, yaml.Unmarshal, &f)
		for _, g := range f.Groups {
			all = append(all, g.Rules...)
		}
	}
	if len(all) == 0 {
		t.Fatal("no rules embedded")
	}
	return all
}

func TestFS(t *testing.T) {
	if got, want := deploy.Dashboards(), []string{"grafana/eos-debug.json", "grafana/eos-executive.json", "grafana/eos-oncall.json"}; !slices.Equal(got, want) {
		t.Errorf("Dashboards() = %q, want %q", got, want)
	}
	if got, want := deploy.RuleFiles(), []string{"prometheus/eos-alerts.yml", "prometheus/eos-rules.yml"}; !slices.Equal(got, want) {
		t.Errorf("RuleFiles() = %q, want %q", got, want)
	}
}

// TestPromtoolCheckRules runs promtool's own checks (syntax, PromQL,
// templates) on every embedded rule file.
func TestPromtoolCheckRules(t *testing.T) {
	promtool := testenv.Tool(t, "promtool")
	for _, name := range deploy.RuleFiles() {
		if out, err := exec.Command(promtool, "check", "rules", name).CombinedOutput(); err != nil {
			t.Errorf("promtool check rules %s: %v\n%s", name, err, out)
		}
	}
}

// TestPromtoolTestRules runs the unit tests of the rules and alerts
// (prometheus/tests): the page alerts fire, the burn-rate alerts fire on a
// fast burn and stay quiet on a short burst, the tickets open on trends.
func TestPromtoolTestRules(t *testing.T) {
	promtool := testenv.Tool(t, "promtool")
	files, err := filepath.Glob("prometheus/tests/*.yml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no rule tests in prometheus/tests (%v)", err)
	}
	if out, err := exec.Command(promtool, append([]string{"test", "rules"}, files...)...).CombinedOutput(); err != nil {
		t.Errorf("promtool test rules: %v\n%s", err, out)
	}
}

// TestAlerts checks what every alert must carry: a severity routing can
// use, a summary, a description and the runbook_url of its own page.
func TestAlerts(t *testing.T) {
	names := map[string]bool{}
	for _, r := range rules(t) {
		if r.Alert == "" {
			continue
		}
		if names[r.Alert] {
			t.Errorf("alert %s is defined twice", r.Alert)
		}
		names[r.Alert] = true
		if s := r.Labels["severity"]; s != "page" && s != "ticket" {
			t.Errorf("alert %s: severity %q, want page or ticket", r.Alert, s)
		}
		if r.Annotations["summary"] == "" || r.Annotations["description"] == "" {
			t.Errorf("alert %s: summary or description missing", r.Alert)
		}
		if got, want := r.Annotations["runbook_url"], runbookPrefix+r.Alert+".md"; got != want {
			t.Errorf("alert %s: runbook_url %q, want %q", r.Alert, got, want)
		}
		if !strings.Contains(r.Expr, "service") && !strings.HasPrefix(strings.TrimSpace(r.Expr), "(eos:") &&
			!strings.HasPrefix(strings.TrimSpace(r.Expr), "eos:") {
			t.Errorf("alert %s: groups neither by service nor on a recorded eos: series", r.Alert)
		}
	}
	if len(names) == 0 {
		t.Fatal("no alerts")
	}
}

// TestRunbooks checks that every alert has a runbook page and every page
// an alert, and that each page says what it means, how to confirm it and
// what to do first.
func TestRunbooks(t *testing.T) {
	alerts := map[string]bool{}
	for _, r := range rules(t) {
		if r.Alert != "" {
			alerts[r.Alert] = true
		}
	}
	entries, err := os.ReadDir(runbookDir)
	if err != nil {
		t.Fatal(err)
	}
	pages := map[string]bool{}
	for _, e := range entries {
		name, ok := strings.CutSuffix(e.Name(), ".md")
		if !ok || name == "README" {
			continue
		}
		pages[name] = true
		if !alerts[name] {
			t.Errorf("runbook %s.md has no alert of that name", name)
			continue
		}
		b, err := os.ReadFile(filepath.Join(runbookDir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		text := string(b)
		for _, want := range []string{"# " + name + "\n", "## What it means", "## Confirm", "## First actions", "```promql"} {
			if !strings.Contains(text, want) {
				t.Errorf("runbook %s.md lacks %q", name, want)
			}
		}
	}
	for a := range alerts {
		if !pages[a] {
			t.Errorf("alert %s has no runbook (%s/%s.md)", a, runbookDir, a)
		}
	}
}

// dashboard is the part of a Grafana dashboard the tests read.
type dashboard struct {
	UID           string  `json:"uid"`
	Title         string  `json:"title"`
	SchemaVersion int     `json:"schemaVersion"`
	Panels        []panel `json:"panels"`
	Templating    struct {
		List []struct {
			Name       string `json:"name"`
			Type       string `json:"type"`
			Definition string `json:"definition"`
			Datasource *struct {
				UID string `json:"uid"`
			} `json:"datasource"`
		} `json:"list"`
	} `json:"templating"`
}

type panel struct {
	ID         int     `json:"id"`
	Type       string  `json:"type"`
	Title      string  `json:"title"`
	Panels     []panel `json:"panels"` // a collapsed row's
	Datasource *struct {
		UID string `json:"uid"`
	} `json:"datasource"`
	Targets []struct {
		Expr       string `json:"expr"`
		Exemplar   bool   `json:"exemplar"`
		Datasource *struct {
			UID string `json:"uid"`
		} `json:"datasource"`
	} `json:"targets"`
}

const dataSource = "${DS_PROMETHEUS}"

func dashboards(t *testing.T) map[string]dashboard {
	t.Helper()
	ds := map[string]dashboard{}
	for _, name := range deploy.Dashboards() {
		var d dashboard
		decode(t, name, json.Unmarshal, &d)
		ds[name] = d
	}
	return ds
}

// panels returns a dashboard's panels, those of collapsed rows included.
func (d dashboard) panels() []panel {
	var all []panel
	var walk func([]panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			all = append(all, p)
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	return all
}

// TestDashboards checks the dashboards' frame: the data source variable,
// the service and consumer variables, unique panel ids, a query on every
// panel, and exemplars on the debug dashboard's duplicates.
func TestDashboards(t *testing.T) {
	uids := map[string]bool{}
	for name, d := range dashboards(t) {
		if d.UID == "" || uids[d.UID] {
			t.Errorf("%s: uid %q empty or not unique", name, d.UID)
		}
		uids[d.UID] = true
		if d.SchemaVersion < 36 {
			t.Errorf("%s: schemaVersion %d", name, d.SchemaVersion)
		}
		vars := map[string]string{}
		for _, v := range d.Templating.List {
			vars[v.Name] = v.Type
			if v.Datasource != nil && v.Datasource.UID != dataSource {
				t.Errorf("%s: variable %s uses data source %q, want %q", name, v.Name, v.Datasource.UID, dataSource)
			}
		}
		for v, typ := range map[string]string{"DS_PROMETHEUS": "datasource", "service": "query", "consumer": "query"} {
			if vars[v] != typ {
				t.Errorf("%s: variable %s is %q, want a %s variable", name, v, vars[v], typ)
			}
		}
		ids := map[int]bool{}
		for _, p := range d.panels() {
			if ids[p.ID] {
				t.Errorf("%s: panel id %d twice", name, p.ID)
			}
			ids[p.ID] = true
			if p.Type == "row" {
				continue
			}
			if p.Datasource == nil || p.Datasource.UID != dataSource || len(p.Targets) == 0 {
				t.Errorf("%s: panel %q: no query on data source %s", name, p.Title, dataSource)
			}
			for _, q := range p.Targets {
				if q.Datasource == nil || q.Datasource.UID != dataSource {
					t.Errorf("%s: panel %q: a query not on data source %s", name, p.Title, dataSource)
				}
			}
		}
	}
	var exemplars []string
	for _, p := range dashboards(t)["grafana/eos-debug.json"].panels() {
		for _, q := range p.Targets {
			if q.Exemplar {
				exemplars = append(exemplars, metricNames(substitute(q.Expr, "x"))...)
			}
		}
	}
	for _, want := range []string{"eos_duplicates_suppressed_total", "eos_quarantined_total"} {
		if !slices.Contains(exemplars, want) {
			t.Errorf("debug dashboard: no panel shows the exemplars of %s", want)
		}
	}
}

// query is a PromQL expression, variables substituted, and where it comes
// from. A dashboard panel's query also has all, its variables set to All.
type query struct{ where, expr, all string }

var (
	labelValues = regexp.MustCompile(`^label_values\((.*),\s*[A-Za-z_][A-Za-z0-9_]*\)$`)
	promqlBlock = regexp.MustCompile("(?s)```promql\n(.*?)```")
)

// queries collects every PromQL expression eos ships: the rules', the
// dashboards' (targets and the variables' label_values selectors) and the
// runbooks' promql blocks, variables substituted.
func queries(t *testing.T) []query {
	t.Helper()
	var qs []query
	for _, r := range rules(t) {
		qs = append(qs, query{where: "rule " + r.Record + r.Alert, expr: r.Expr})
	}
	for name, d := range dashboards(t) {
		for _, v := range d.Templating.List {
			if v.Type != "query" {
				continue
			}
			m := labelValues.FindStringSubmatch(v.Definition)
			if m == nil {
				t.Errorf("%s: variable %s: query %q is not label_values(selector, label)", name, v.Name, v.Definition)
				continue
			}
			qs = append(qs, query{where: fmt.Sprintf("%s variable %s", name, v.Name), expr: substitute(m[1], "x")})
		}
		for _, p := range d.panels() {
			for i, q := range p.Targets {
				qs = append(qs, query{where: fmt.Sprintf("%s panel %q query %d", name, p.Title, i),
					expr: substitute(q.Expr, "x"), all: substitute(q.Expr, ".*")})
			}
		}
	}
	pages, err := filepath.Glob(filepath.Join(runbookDir, "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, page := range pages {
		b, err := os.ReadFile(page)
		if err != nil {
			t.Fatal(err)
		}
		for _, block := range promqlBlock.FindAllStringSubmatch(string(b), -1) {
			for line := range strings.Lines(block[1]) {
				if line = strings.TrimSpace(line); line != "" {
					qs = append(qs, query{where: filepath.Base(page), expr: substitute(line, "x")})
				}
			}
		}
	}
	return qs
}

// TestQueriesParse writes every query as a recording rule and has promtool
// parse them all; on failure it checks them one by one to name the bad
// ones.
func TestQueriesParse(t *testing.T) {
	promtool := testenv.Tool(t, "promtool")
	qs := queries(t)
	check := func(qs []query) ([]byte, error) {
		var b strings.Builder
		b.WriteString("groups:\n  - name: eos-queries\n    rules:\n")
		for i, q := range qs {
			expr, err := json.Marshal(q.expr) // a JSON string is a YAML string
			if err != nil {
				t.Fatal(err)
			}
			fmt.Fprintf(&b, "      - record: eos_query:q%d\n        expr: %s\n", i, expr)
		}
		path := filepath.Join(t.TempDir(), "queries.yml")
		if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
			t.Fatal(err)
		}
		return exec.Command(promtool, "check", "rules", path).CombinedOutput()
	}
	if _, err := check(qs); err == nil {
		return
	}
	for _, q := range qs {
		if out, err := check([]query{q}); err != nil {
			t.Errorf("%s: %q does not parse: %v\n%s", q.where, q.expr, err, out)
		}
	}
}

// TestQueriesNameExportedSeries checks that every query names only series
// eos exports (derived from the metrics package), series the rules record,
// or Prometheus's own.
func TestQueriesNameExportedSeries(t *testing.T) {
	known := exportedSeries(t).series
	for _, r := range rules(t) {
		if r.Record != "" {
			known[r.Record] = true
		}
	}
	used := map[string]bool{}
	for _, q := range queries(t) {
		if strings.Contains(q.expr, "$") {
			t.Errorf("%s: %q: a variable is left", q.where, q.expr)
		}
		names := metricNames(q.expr)
		if len(names) == 0 && !strings.HasPrefix(q.where, "rule") {
			t.Errorf("%s: %q names no series", q.where, q.expr)
		}
		for _, n := range names {
			used[n] = true
			if !known[n] {
				t.Errorf("%s: %q names %s, which eos neither exports nor records", q.where, q.expr, n)
			}
		}
	}
	for _, r := range rules(t) {
		if r.Record != "" && !used[r.Record] {
			t.Errorf("recorded series %s is used by no alert, dashboard or runbook: use it or drop the rule", r.Record)
		}
	}
}
