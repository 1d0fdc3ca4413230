package schema

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"path"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"text/template"
	"time"

	"github.com/eoskit/eos/driver"
)

// Migration is one versioned schema change.
type Migration = driver.Migration

var fileRE = regexp.MustCompile(`^(\d{4})_([a-z0-9_]+)\.(up|down)\.sql$`)

// Load reads NNNN_name.up.sql / NNNN_name.down.sql files from dir in fsys and
// renders each as a text/template with vars (whose string fields must already
// be validated identifiers).
func Load(fsys fs.FS, dir string, vars any) ([]Migration, error) {
	entries, err := fs.ReadDir(fsys, dir)
	if err != nil {
		return nil, err
	}
	byVersion := map[int]*Migration{}
	for _, e := range entries {
		m := fileRE.FindStringSubmatch(e.Name())
		if m == nil {
			return nil, fmt.Errorf("schema: unexpected migration file %q", e.Name())
		}
		v, _ := strconv.Atoi(m[1])
		raw, err := fs.ReadFile(fsys, path.Join(dir, e.Name()))
		if err != nil {
			return nil, err
		}
		t, err := template.New(e.Name()).Option("missingkey=error").Parse(string(raw))
		if err != nil {
			return nil, err
		}
		var buf bytes.Buffer
		if err := t.Execute(&buf, vars); err != nil {
			return nil, err
		}
		mig := byVersion[v]
		if mig == nil {
			mig = &Migration{Version: v, Name: m[2]}
			byVersion[v] = mig
		}
		if m[3] == "up" {
			mig.Up = buf.String()
		} else {
			mig.Down = buf.String()
		}
	}
	out := make([]Migration, 0, len(byVersion))
	for _, m := range byVersion {
		if m.Up == "" || m.Down == "" {
			return nil, fmt.Errorf("schema: migration %04d_%s needs both up and down files", m.Version, m.Name)
		}
		out = append(out, *m)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Version < out[j].Version })
	return out, nil
}

// Tx is one migration transaction of an engine.
type Tx interface {
	// Exec runs a script (one or more statements, no arguments).
	Exec(ctx context.Context, script string) error
	// QueryVersions runs a query returning (integer, text) rows.
	QueryVersions(ctx context.Context, query string) ([]VersionRow, error)
}

// VersionRow is one row of the migrations table.
type VersionRow struct {
	Version   int
	AppliedAt string
}

// Conn runs fn in one transaction that holds the engine's migration lock
// (so that two processes migrating at once apply each version once).
type Conn interface {
	MigrationTx(ctx context.Context, fn func(ctx context.Context, tx Tx) error) error
}

// Runner implements driver.Migrator over a Conn.
type Runner struct {
	Conn       Conn
	Table      string // validated, possibly schema-qualified
	Migrations []Migration
	Now        func() time.Time
}

var _ driver.Migrator = (*Runner)(nil)

func (r *Runner) applied(ctx context.Context, tx Tx) (map[int]time.Time, error) {
	if err := tx.Exec(ctx, "CREATE TABLE IF NOT EXISTS "+r.Table+" (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)"); err != nil {
		return nil, err
	}
	rows, err := tx.QueryVersions(ctx, "SELECT version, applied_at FROM "+r.Table+" ORDER BY version")
	if err != nil {
		return nil, err
	}
	out := make(map[int]time.Time, len(rows))
	for _, row := range rows {
		t, _ := time.Parse(time.RFC3339Nano, row.AppliedAt)
		out[row.Version] = t
	}
	return out, nil
}

func (r *Runner) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

// Up applies every pending migration in one transaction (one MigrationTx
// call): the migrations table's creation, the read of the applied
// versions, and every pending migration with its record. An error rolls
// back all of them.
func (r *Runner) Up(ctx context.Context) ([]int, error) {
	var done []int
	err := r.Conn.MigrationTx(ctx, func(ctx context.Context, tx Tx) error {
		done = nil
		have, err := r.applied(ctx, tx)
		if err != nil {
			return err
		}
		for _, m := range r.Migrations {
			if _, ok := have[m.Version]; ok {
				continue
			}
			if err := tx.Exec(ctx, m.Up); err != nil {
				return fmt.Errorf("migration %04d_%s up: %w", m.Version, m.Name, err)
			}
			ins := fmt.Sprintf("INSERT INTO %s (version, name, applied_at) VALUES (%d, '%s', '%s')",
				r.Table, m.Version, m.Name, r.now().UTC().Format(time.RFC3339Nano))
			if err := tx.Exec(ctx, ins); err != nil {
				return err
			}
			done = append(done, m.Version)
		}
		return nil
	})
	return done, err
}

// Down reverts applied migrations with versions above target, newest first,
// in one transaction.
func (r *Runner) Down(ctx context.Context, target int) ([]int, error) {
	var done []int
	err := r.Conn.MigrationTx(ctx, func(ctx context.Context, tx Tx) error {
		done = nil
		have, err := r.applied(ctx, tx)
		if err != nil {
			return err
		}
		for i := len(r.Migrations) - 1; i >= 0; i-- {
			m := r.Migrations[i]
			if _, ok := have[m.Version]; !ok || m.Version <= target {
				continue
			}
			if err := tx.Exec(ctx, m.Down); err != nil {
				return fmt.Errorf("migration %04d_%s down: %w", m.Version, m.Name, err)
			}
			if err := tx.Exec(ctx, fmt.Sprintf("DELETE FROM %s WHERE version = %d", r.Table, m.Version)); err != nil {
				return err
			}
			done = append(done, m.Version)
		}
		return nil
	})
	return done, err
}

// Status lists every known migration and whether it is applied.
func (r *Runner) Status(ctx context.Context) ([]driver.MigrationStatus, error) {
	var out []driver.MigrationStatus
	err := r.Conn.MigrationTx(ctx, func(ctx context.Context, tx Tx) error {
		have, err := r.applied(ctx, tx)
		if err != nil {
			return err
		}
		out = out[:0]
		for _, m := range r.Migrations {
			at, ok := have[m.Version]
			out = append(out, driver.MigrationStatus{Version: m.Version, Name: m.Name, Applied: ok, AppliedAt: at})
		}
		return nil
	})
	return out, err
}

// SplitStatements splits a script on semicolons at line ends, for engines
// whose Exec takes one statement at a time.
func SplitStatements(script string) []string {
	var out []string
	for _, s := range strings.Split(script, ";\n") {
		if s = strings.TrimSpace(s); s != "" && s != ";" {
			out = append(out, strings.TrimSuffix(s, ";"))
		}
	}
	return out
}
