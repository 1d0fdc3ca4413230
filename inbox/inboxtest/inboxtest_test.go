package inboxtest_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/eoskit/eos"
	"github.com/eoskit/eos/inbox"
	"github.com/eoskit/eos/inbox/inboxtest"
	"github.com/eoskit/eos/internal/testdb"
)

// A nacked delivery comes back as the next delivery of its message, with
// its position, and Run over a closed Source ends once every message is
// settled for good. Each delivery says which of its message it is
// (inbox.DeliveryCounter), and the results carry it.
func TestSourceRedeliversNacked(t *testing.T) {
	e := testdb.SQLite(t)
	fails := map[string]int{"m2": 2} // m2 fails twice, then applies
	var mu sync.Mutex
	var results []string
	hook := inbox.BatchDoneFunc(func(_ context.Context, r *inbox.BatchResult) {
		mu.Lock()
		defer mu.Unlock()
		for _, res := range r.Results {
			results = append(results, fmt.Sprintf("%s#%d:%s", res.ID, res.DeliveryCount, res.Outcome))
		}
	})
	p, err := inbox.New(e.Driver, func(_ context.Context, _ *sql.Tx, m eos.Message) error {
		if fails[m.ID] > 0 {
			fails[m.ID]--
			return errors.New("not yet")
		}
		return nil
	}, inbox.Config{Consumer: "c", MaxBatch: 2, Hooks: []inbox.Hook{hook}})
	if err != nil {
		t.Fatal(err)
	}
	src := inboxtest.NewSource()
	first := src.Deliver(eos.Message{ID: "m1"}, eos.Message{ID: "m2"}, eos.Message{ID: "m3"})
	src.Close()
	if err := p.Run(context.Background(), src); !errors.Is(err, inbox.ErrSourceClosed) {
		t.Fatalf("Run: %v", err)
	}
	var got []string
	for _, d := range src.Handed() {
		got = append(got, fmt.Sprintf("%s#%d@%s:%d/%d", d.Message().ID, d.Num(), d.Position(), d.Acks(), d.Nacks()))
		if d.DeliveryCount() != d.Num() {
			t.Errorf("%s#%d: DeliveryCount %d", d.Message().ID, d.Num(), d.DeliveryCount())
		}
	}
	want := "[m1#1@inboxtest:1:1/0 m2#1@inboxtest:2:0/1 m3#1@inboxtest:3:1/0 m2#2@inboxtest:2:0/1 m2#3@inboxtest:2:1/0]"
	if fmt.Sprint(got) != want {
		t.Fatalf("deliveries\n got %v\nwant %s", got, want)
	}
	mu.Lock()
	wantResults := "[m1#1:applied m2#1:retry m3#1:applied m2#2:retry m2#3:applied]"
	if fmt.Sprint(results) != wantResults {
		t.Errorf("results\n got %v\nwant %s", results, wantResults)
	}
	mu.Unlock()
	if first[1].NackDelay() <= 0 {
		t.Errorf("nack delay not recorded: %v", first[1].NackDelay())
	}
	if src.Queued() != 0 || len(src.Unsettled()) != 0 {
		t.Fatalf("%d queued, %d unsettled after Run", src.Queued(), len(src.Unsettled()))
	}
}

// Fetch waits for a delivery, hands out at most max, and returns ctx's
// error when ctx ends first.
func TestSourceFetch(t *testing.T) {
	src := inboxtest.NewSource()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if ds, err := src.Fetch(ctx, 10, time.Second); len(ds) != 0 || !errors.Is(err, context.Canceled) {
		t.Fatalf("empty source, ended ctx: %v %v", ds, err)
	}
	got := make(chan []inbox.Delivery)
	go func() {
		ds, _ := src.Fetch(context.Background(), 2, 0)
		got <- ds
	}()
	src.Deliver(eos.Message{ID: "a"}, eos.Message{ID: "b"}, eos.Message{ID: "c"})
	if ds := <-got; len(ds) != 2 || ds[0].Message().ID != "a" {
		t.Fatalf("first fetch: %v", ds)
	}
	if err := src.WaitHanded(context.Background(), 2); err != nil {
		t.Fatal(err)
	}
	if err := src.WaitHanded(ctx, 3); !errors.Is(err, context.Canceled) {
		t.Fatalf("WaitHanded(3) after 2 handed, ended ctx: %v", err)
	}
	if src.Queued() != 1 || len(src.Unsettled()) != 2 {
		t.Fatalf("%d queued, %d unsettled", src.Queued(), len(src.Unsettled()))
	}
	idle := make(chan error)
	go func() { idle <- src.WaitIdle(context.Background()) }()
	ds, err := src.Fetch(context.Background(), 2, 0)
	if err != nil || len(ds) != 1 {
		t.Fatalf("second fetch: %v %v", ds, err)
	}
	for _, d := range src.Handed() {
		select {
		case err := <-idle:
			t.Fatalf("WaitIdle returned %v before %s was settled", err, d.Message().ID)
		default:
		}
		d.Ack(context.Background())
		<-d.Done()
	}
	if err := <-idle; err != nil {
		t.Fatal(err)
	}
	src.Close()
	if _, err := src.Fetch(context.Background(), 2, 0); !errors.Is(err, inbox.ErrSourceClosed) {
		t.Fatalf("fetch after Close: %v", err)
	}
}

func TestProcess(t *testing.T) {
	e := testdb.SQLite(t)
	p, err := inbox.New(e.Driver, func(_ context.Context, _ *sql.Tx, m eos.Message) error {
		if m.ID == "bad" {
			return inbox.Permanent(errors.New("refused"))
		}
		return nil
	}, inbox.Config{Consumer: "c"})
	if err != nil {
		t.Fatal(err)
	}
	res, ds := inboxtest.Process(context.Background(), t, p, eos.Message{ID: "ok"}, eos.Message{ID: "bad"}, eos.Message{ID: "ok"})
	if got := fmt.Sprint(inboxtest.Outcomes(res)); got != "[applied dead_lettered duplicate]" {
		t.Fatalf("outcomes %s", got)
	}
	for _, d := range ds {
		if d.Acks() != 1 || d.Nacks() != 0 || d.Position() != "" {
			t.Fatalf("%s: %d acks %d nacks, position %q", d.Message().ID, d.Acks(), d.Nacks(), d.Position())
		}
	}
	if d := inboxtest.NewDelivery(eos.Message{ID: "x"}).WithPosition("S:1"); d.Position() != "S:1" {
		t.Fatalf("position %q", d.Position())
	}
}
