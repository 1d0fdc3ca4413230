package metrics_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/eoskit/eos/callonce"
)

// A real Caller over a SQLite store calls, replays, is told of a key
// reused, gets no definitive answer, then meets its store closed: each
// ending is counted, the replay as a suppressed duplicate and the failure
// as a store error of the SLIs, under the hook's name.
func TestCallOnce(t *testing.T) {
	ctx := context.Background()
	m, reg := newMetrics(t)
	d, store := dedupeSQLite(t)
	c, err := callonce.New(store, callonce.Config{MaxAttempts: 1, Hooks: []callonce.Hook{m.CallOnceHook("charges")}})
	if err != nil {
		t.Fatal(err)
	}
	done := func(context.Context, string) callonce.Outcome { return callonce.Done([]byte("ch_1")) }
	unknown := func(context.Context, string) callonce.Outcome { return callonce.Unknown(errors.New("timeout")) }
	for _, s := range []struct {
		key, fp string
		call    callonce.Func
		ok      bool
	}{{"o1", "a", done, true}, {"o1", "a", done, true}, {"o1", "b", done, false}, {"o2", "a", unknown, false}} {
		if _, err := c.Do(ctx, "pay", s.key, []byte(s.fp), s.call); (err == nil) != s.ok {
			t.Fatalf("Do(%s, %s): %v", s.key, s.fp, err)
		}
	}
	d.Close()
	if _, err := c.Do(ctx, "pay", "o3", []byte("a"), done); err == nil {
		t.Fatal("Do with the store closed: no error")
	}
	byName := func(outcome string) map[string]string {
		return map[string]string{"name": "charges", "outcome": outcome}
	}
	charges := map[string]string{"consumer": "charges"}
	for _, c := range []struct {
		metric string
		labels map[string]string
		want   float64
	}{
		{"eos_callonce_calls_total", byName("called"), 1},
		{"eos_callonce_calls_total", byName("replayed"), 1},
		{"eos_callonce_calls_total", byName("mismatch"), 1},
		{"eos_callonce_calls_total", byName("unknown"), 1},
		{"eos_callonce_calls_total", byName("store_error"), 1},
		{"eos_callonce_calls_total", byName("failed"), 0},
		{"eos_duplicates_suppressed_total", charges, 1},
		{"eos_dedupe_store_errors_total", charges, 1},
	} {
		if got := counterValue(reg, c.metric, c.labels); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.metric, c.labels, got, c.want)
		}
	}
	// The help names every outcome, so that it stays the documentation of
	// the label.
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "eos_callonce_calls_total" {
			continue
		}
		for _, e := range callonce.Endings() {
			if !strings.Contains(mf.GetHelp(), string(e)) {
				t.Errorf("eos_callonce_calls_total's help does not name outcome %s", e)
			}
		}
	}
}
