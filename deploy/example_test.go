package deploy_test

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/eoskit/eos/deploy"
)

// Write the rule files where Prometheus reads them (here a temporary
// directory), from the build that exports the metrics they use.
func ExampleRuleFiles() {
	dir, err := os.MkdirTemp("", "eos-rules")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)
	for _, name := range deploy.RuleFiles() {
		b, err := fs.ReadFile(deploy.FS(), name)
		if err != nil {
			fmt.Println(err)
			return
		}
		if err := os.WriteFile(filepath.Join(dir, filepath.Base(name)), b, 0o600); err != nil {
			fmt.Println(err)
			return
		}
		fmt.Println("rule_files:", filepath.Base(name))
	}
	fmt.Println("dashboards:", deploy.Dashboards())
	// Output:
	// rule_files: eos-alerts.yml
	// rule_files: eos-rules.yml
	// dashboards: [grafana/eos-debug.json grafana/eos-executive.json grafana/eos-oncall.json]
}
