package metrics_test

import (
	"errors"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/eoskit/eos"
	"github.com/eoskit/eos/inbox"
	"github.com/eoskit/eos/metrics"
)

// The activity series are read at each scrape: a stall shows while it
// lasts, and the stall count stays when it is over.
func TestWatchInbox(t *testing.T) {
	m, reg := newMetrics(t)
	var now atomic.Pointer[inbox.Activity]
	now.Store(&inbox.Activity{InFlight: 512, Stalled: 2, Stalls: 3})
	if err := m.WatchInbox("orders", func() inbox.Activity { return *now.Load() }); err != nil {
		t.Fatal(err)
	}
	expect := func(inFlight, stalled, stalls int) string {
		return strings.NewReplacer("IN", strconv.Itoa(inFlight), "ST", strconv.Itoa(stalled), "SS", strconv.Itoa(stalls)).Replace(`
# HELP eos_inbox_in_flight_messages Deliveries the inbox holds and has not settled yet: the batch in process (a stalled one included) and the one fetched ahead.
# TYPE eos_inbox_in_flight_messages gauge
eos_inbox_in_flight_messages{consumer="orders"} IN
# HELP eos_inbox_stalled 1 while the inbox retries a batch after a store failure (nothing of it acknowledged meanwhile), else 0.
# TYPE eos_inbox_stalled gauge
eos_inbox_stalled{consumer="orders"} ST
# HELP eos_inbox_stalls_total Store failures that stalled the inbox, each counted once however many retries it took.
# TYPE eos_inbox_stalls_total counter
eos_inbox_stalls_total{consumer="orders"} SS
`)
	}
	names := []string{"eos_inbox_in_flight_messages", "eos_inbox_stalled", "eos_inbox_stalls_total"}
	if err := testutil.GatherAndCompare(reg, strings.NewReader(expect(512, 1, 3)), names...); err != nil {
		t.Error(err)
	}
	now.Store(&inbox.Activity{Stalls: 3})
	if err := testutil.GatherAndCompare(reg, strings.NewReader(expect(0, 0, 3)), names...); err != nil {
		t.Error(err)
	}

	var re *metrics.RegisterError
	if err := m.WatchInbox("orders", func() inbox.Activity { return inbox.Activity{} }); !errors.As(err, &re) {
		t.Errorf("second WatchInbox of one consumer: %v, want a *RegisterError", err)
	}
	var ce *eos.ConfigError
	if err := m.WatchInbox("", func() inbox.Activity { return inbox.Activity{} }); !errors.As(err, &ce) {
		t.Errorf("empty consumer: %v, want a *eos.ConfigError", err)
	}
	if err := m.WatchInbox("x", nil); !errors.As(err, &ce) {
		t.Errorf("nil activity: %v, want a *eos.ConfigError", err)
	}
}
