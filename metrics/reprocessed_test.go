package metrics_test

import (
	"context"
	"errors"
	"testing"

	"github.com/eoskit/eos"
	"github.com/eoskit/eos/inbox"
	"github.com/eoskit/eos/inbox/inboxtest"
	"github.com/eoskit/eos/internal/testdb"
	"github.com/eoskit/eos/internal/testdb/engines"
)

func TestReprocessed(t *testing.T) {
	engines.Each(t, testReprocessed, testReprocessed)
}

// testReprocessed runs a real inbox over an in-memory source that
// redelivers what is nacked: a message applied at once, one failing once
// (applied on its redelivery) and one failing always (dead-lettered on its
// redelivery, MaxAttempts 2). eos_reprocessed_total counts the two
// redeliveries, whatever their outcome, and not the first deliveries that
// failed.
func testReprocessed[TTx any](t *testing.T, e *testdb.Engine[TTx]) {
	ctx := context.Background()
	pay := testdb.Payments[TTx]{E: e}
	pay.Setup(t, 10, 1000)
	m, reg := newMetrics(t)
	flakyFailed := false
	h := func(ctx context.Context, tx TTx, msg eos.Message) error {
		switch msg.ID {
		case "poison":
			return errors.New("poison: always fails")
		case "flaky":
			if !flakyFailed {
				flakyFailed = true
				return errors.New("flaky: first attempt fails")
			}
		}
		return pay.Handler(ctx, tx, msg)
	}
	p, err := inbox.New(e.Driver, h, inbox.Config{Consumer: "pay", MaxAttempts: 2, Hooks: []inbox.Hook{m.InboxHook()}})
	if err != nil {
		t.Fatal(err)
	}
	src := inboxtest.NewSource()
	src.Deliver(testdb.Message("m1", "a1", 1), testdb.Message("flaky", "a2", 2), testdb.Message("poison", "a3", 3))
	src.Close()
	if err := p.Run(ctx, src); !errors.Is(err, inbox.ErrSourceClosed) {
		t.Fatalf("Run: %v", err)
	}
	if n := len(src.Handed()); n != 5 {
		t.Fatalf("%d deliveries, want 5 (three first, two redeliveries)", n)
	}
	counter := func(name string, labels map[string]string) float64 {
		t.Helper()
		mt, err := metricsVec(reg, name, labels)
		if err != nil {
			t.Fatal(err)
		}
		return mt.GetCounter().GetValue()
	}
	byConsumer := map[string]string{"consumer": "pay"}
	if got := counter("eos_reprocessed_total", byConsumer); got != 2 {
		t.Errorf("eos_reprocessed_total = %v, want 2", got)
	}
	for o, want := range map[string]float64{"applied": 2, "retry": 2, "dead_lettered": 1} {
		labels := map[string]string{"consumer": "pay", "outcome": o}
		if got := counter("eos_inbox_messages_total", labels); got != want {
			t.Errorf("eos_inbox_messages_total{outcome=%q} = %v, want %v", o, got, want)
		}
	}
}
