package worker

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/eoskit/eos/callonce"
	"github.com/eoskit/eos/dedupe"
	"github.com/eoskit/eos/inbox"
	"github.com/eoskit/eos/internal/testdb"
	"github.com/eoskit/eos/torture/supervisor"
)

// A worker with metrics serves them on loopback, announces where on its
// events pipe, and leaves its final values in a private file when it
// stops; without a MetricsDir it does none of it.
func TestMetricsAnnouncedAndHandedIn(t *testing.T) {
	dir := t.TempDir()
	t.Setenv(supervisor.StartEnv, "3")
	var events bytes.Buffer
	log := slog.New(slog.DiscardHandler)
	wm, err := startMetrics(Config{Name: "orders-0", MetricsDir: dir}, log, supervisor.NewEmitter(&events))
	if err != nil {
		t.Fatal(err)
	}
	addr, ok := strings.CutPrefix(strings.TrimSpace(events.String()), EventMetrics+"=")
	if !ok || !strings.HasPrefix(addr, "127.0.0.1:") {
		t.Fatalf("events %q, want one %s=127.0.0.1:…", events.String(), EventMetrics)
	}
	wm.InboxHook().(inbox.BatchDoneHook).OnBatchDone(context.Background(),
		&inbox.BatchResult{Consumer: "orders", Results: []inbox.Result{{ID: "m", Outcome: inbox.Applied}}})
	// The payment worker's provider calls, made by a real Caller.
	store, err := dedupe.NewSQL(testdb.SQLite(t).Driver, dedupe.Config{})
	if err != nil {
		t.Fatal(err)
	}
	caller, err := callonce.New(store, callonce.Config{Hooks: wm.callHooks()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := caller.Do(context.Background(), "pay", "o1", []byte("p"), func(context.Context, string) callonce.Outcome {
		return callonce.Done(nil)
	}); err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get("http://" + addr)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("scrape: %s", resp.Status)
	}
	if want := `eos_callonce_calls_total{name="` + ChargesName + `",outcome="called"} 1`; !strings.Contains(string(body), want) {
		t.Errorf("scrape lacks %s", want)
	}
	if resp, err := http.Get("http://" + addr[:strings.Index(addr, "/")] + "/metrics"); err == nil {
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Error("the metrics are served without the announced path's token")
		}
	}
	wm.stop()
	fi, err := os.Stat(MetricsFile(dir, "orders-0", 3))
	if err != nil || fi.Mode().Perm() != 0o600 || fi.Size() == 0 {
		t.Fatalf("final values: %v, %v; want a non-empty 0600 file", fi, err)
	}
	if _, err := http.Get("http://" + addr); err == nil {
		t.Error("still served after stop")
	}

	events.Reset()
	off, err := startMetrics(Config{Name: "orders-1"}, log, supervisor.NewEmitter(&events))
	if off != nil || err != nil || events.Len() > 0 || off.callHooks() != nil {
		t.Errorf("metrics off: %v, %v, events %q; want nothing", off, err, events.String())
	}
	off.stop()
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("files %v, want only orders-0's", entries)
	}
}
