package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"path/filepath"
	"testing"
)

// TestCheckPragmas runs Open's read-back on a connection opened without
// any of the settings: each one Config asks for is reported, by name.
func TestCheckPragmas(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "plain.db")
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	cfg := Config{Synchronous: SyncNormal}
	if err := cfg.applyDefaults(); err != nil {
		t.Fatal(err)
	}
	err = checkPragmas(ctx, db, path, cfg.pragmas())
	if !errors.Is(err, ErrPragma) {
		t.Fatalf("got %v, want ErrPragma", err)
	}
	missing := map[string]bool{}
	for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
		var pe *PragmaError
		if !errors.As(e, &pe) {
			t.Fatalf("%v is not a *PragmaError", e)
		}
		missing[pe.Pragma] = true
	}
	for _, p := range []string{"journal_mode", "synchronous", "busy_timeout", "foreign_keys", "cache_size"} {
		if !missing[p] {
			t.Errorf("%s not reported (got %v)", p, err)
		}
	}
}
