package payments_test

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx"

	"github.com/eoskit/eos"
	"github.com/eoskit/eos/driver"
	"github.com/eoskit/eos/driver/postgres"
	"github.com/eoskit/eos/driver/sqlite"
	"github.com/eoskit/eos/examples/payments"
	"github.com/eoskit/eos/inbox"
	"github.com/eoskit/eos/inbox/inboxtest"
	"github.com/eoskit/eos/outbox"
	"github.com/eoskit/eos/outbox/outboxtest"
)

// db is a migrated eos database with the scenario's tables.
type db struct {
	drv   driver.Driver[*sql.Tx]
	store payments.Store
}

// The package's tests may not import eos's internal test helpers (see
// TestNoInternalImports), so they open their databases themselves: SQLite
// in a temporary directory, PostgreSQL (EOS_TEST_POSTGRES_URL) in a fresh
// schema dropped at the end.
func openSQLite(t testing.TB, accounts int) db {
	t.Helper()
	d, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "eos.db"), sqlite.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return setup(t, db{drv: d, store: payments.Store{DB: d.DB(), Dialect: payments.SQLite}}, accounts)
}

func openPostgres(t testing.TB, accounts int) db {
	t.Helper()
	url := os.Getenv("EOS_TEST_POSTGRES_URL")
	if url == "" {
		if os.Getenv("EOS_TEST_REQUIRE_SERVICES") == "1" {
			t.Fatal("EOS_TEST_POSTGRES_URL is not set and EOS_TEST_REQUIRE_SERVICES=1")
		}
		t.Skip("EOS_TEST_POSTGRES_URL not set: skipping the PostgreSQL test")
	}
	var b [6]byte
	rand.Read(b[:])
	schema := "pay_t_" + hex.EncodeToString(b[:])
	sdb, err := sql.Open("pgx", url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sdb.Close() })
	if _, err := sdb.Exec("CREATE SCHEMA " + schema); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sdb.Exec("DROP SCHEMA " + schema + " CASCADE") })
	d, err := postgres.NewStdlib(sdb, postgres.Config{Schema: schema})
	if err != nil {
		t.Fatal(err)
	}
	return setup(t, db{drv: d, store: payments.Store{DB: sdb, Dialect: payments.Postgres, Schema: schema}}, accounts)
}

func setup(t testing.TB, e db, accounts int) db {
	t.Helper()
	ctx := context.Background()
	if _, err := e.drv.Migrator().Up(ctx); err != nil {
		t.Fatal(err)
	}
	if err := e.store.Setup(ctx, accounts, 1_000_000); err != nil {
		t.Fatal(err)
	}
	return e
}

// eachEngine runs test on SQLite and on PostgreSQL; open gives it fresh
// databases of that engine.
func eachEngine(t *testing.T, test func(t *testing.T, open func(t testing.TB, accounts int) db)) {
	t.Run("sqlite", func(t *testing.T) { test(t, openSQLite) })
	t.Run("postgres", func(t *testing.T) { test(t, openPostgres) })
}

// orderProcessor returns the "orders" processor of e with the per-message
// handler (batch false) or the batch handler.
func orderProcessor(t testing.TB, e db, batch bool, cfg inbox.Config) *inbox.Processor[*sql.Tx] {
	t.Helper()
	ctx := context.Background()
	ob, err := outbox.New(e.drv, outbox.Config{})
	if err != nil {
		t.Fatal(err)
	}
	cfg.Consumer = payments.OrdersConsumer
	var p *inbox.Processor[*sql.Tx]
	if batch {
		h, err := payments.NewOrderBatchHandler(ctx, e.store, ob, "payments.charge")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { h.Close() })
		p, err = inbox.NewBatch(e.drv, h.Handle, cfg)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	h, err := payments.NewOrderHandler(ctx, e.store, ob, "payments.charge")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	if p, err = inbox.New(e.drv, h.Handle, cfg); err != nil {
		t.Fatal(err)
	}
	return p
}

// state is what the order handlers leave behind, minus the time each
// order was applied.
type state struct {
	Outcomes    [][]inbox.Outcome
	Balances    []payments.Balance
	Ledger      []payments.LedgerRow
	Charges     []outbox.Envelope
	DeadLetters []string // id: error
}

func readState(t testing.TB, e db, p *inbox.Processor[*sql.Tx]) state {
	t.Helper()
	ctx := context.Background()
	var s state
	var err error
	if s.Balances, err = e.store.Balances(ctx); err != nil {
		t.Fatal(err)
	}
	if s.Ledger, err = e.store.Ledger(ctx); err != nil {
		t.Fatal(err)
	}
	for i := range s.Ledger {
		s.Ledger[i].AppliedUS = 0
	}
	pub := outboxtest.NewPublisher()
	relay, err := outbox.NewRelay(e.drv, pub, outbox.RelayConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := relay.Forward(ctx); err != nil {
		t.Fatal(err)
	}
	for _, env := range pub.Published() {
		env.Message.CreatedAt = env.Message.CreatedAt.UTC()
		s.Charges = append(s.Charges, env)
	}
	dls, err := p.DeadLetters(ctx, "", 1000)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range dls {
		if !d.Invalid {
			s.DeadLetters = append(s.DeadLetters, d.ID+": "+d.LastError)
		}
	}
	slices.Sort(s.DeadLetters)
	return s
}

// The batch handler leaves exactly the state the per-message handler
// leaves for the same deliveries: balances, ledger rows in delivery order,
// charges, outcomes and dead letters, with malformed orders, unknown
// accounts, mismatched ids and duplicates (in a batch and across batches).
func TestOrderBatchHandlerMatchesOrderHandler(t *testing.T) {
	eachEngine(t, func(t *testing.T, open func(testing.TB, int) db) {
		const accounts = 5
		created := time.UnixMicro(1_700_000_000_000_000)
		var batches [][]eos.Message
		orders := payments.GenerateOrders(3, 90, accounts)
		for b := 0; b < 3; b++ {
			var ms []eos.Message
			for i, o := range orders[b*30 : (b+1)*30] {
				ms = append(ms, o.Message(created.Add(time.Duration(i)*time.Millisecond)))
				if i%7 == 0 { // a duplicate in the batch
					ms = append(ms, ms[len(ms)-1])
				}
			}
			if b > 0 { // duplicates of the batch before
				ms = append(ms, batches[b-1][0], batches[b-1][5])
			}
			batches = append(batches, ms)
		}
		mixed := batches[1]
		for _, bad := range payments.Malformed(payments.Account(1, accounts)) {
			mixed = append(mixed, bad.Message)
		}
		mismatch := payments.Order{ID: "other-id", Account: payments.Account(2, accounts), Amount: 7}.Message(created)
		mismatch.ID = "ord-mismatch"
		mixed = append(mixed, mismatch,
			// Unknown accounts next to known ones, one of them twice.
			payments.Order{ID: "ord-nobody-1", Account: "acct-nobody", Amount: 3}.Message(created),
			payments.Order{ID: "ord-nobody-2", Account: "acct-nobody", Amount: 4}.Message(created),
			payments.Order{ID: "ord-zzz", Account: "zzz", Amount: 5}.Message(created))
		batches[1] = mixed
		batches = append(batches, []eos.Message{ // a batch of rejections only
			payments.Order{ID: "ord-nobody-3", Account: "acct-nobody", Amount: 3}.Message(created), mixed[len(mixed)-5]})

		var got [2]state
		for k, batch := range []bool{false, true} {
			e := open(t, accounts)
			p := orderProcessor(t, e, batch, inbox.Config{OrderByKey: true})
			var outcomes [][]inbox.Outcome
			for _, ms := range batches {
				res, _ := inboxtest.Process(context.Background(), t, p, ms...)
				outcomes = append(outcomes, inboxtest.Outcomes(res))
			}
			got[k] = readState(t, e, p)
			got[k].Outcomes = outcomes
		}
		msg, bat := got[0], got[1]
		if len(msg.Ledger) != len(orders) || len(msg.DeadLetters) != 9 {
			t.Fatalf("per-message handler: %d ledger rows, dead letters %q; want %d and 9", len(msg.Ledger), msg.DeadLetters, len(orders))
		}
		for _, c := range []struct {
			what     string
			msg, bat any
		}{
			{"outcomes", msg.Outcomes, bat.Outcomes},
			{"balances", msg.Balances, bat.Balances},
			{"ledger", msg.Ledger, bat.Ledger},
			{"charges", msg.Charges, bat.Charges},
			{"dead letters", msg.DeadLetters, bat.DeadLetters},
		} {
			if fmt.Sprint(c.msg) != fmt.Sprint(c.bat) {
				t.Errorf("%s differ:\nper message %v\nbatch       %v", c.what, c.msg, c.bat)
			}
		}
	})
}

// A database error on one order fails that order alone: the inbox bisects
// the batch, and the rest of it commits with its effects.
func TestOrderBatchHandlerIsolatesDatabaseErrors(t *testing.T) {
	eachEngine(t, func(t *testing.T, open func(testing.TB, int) db) {
		ctx := context.Background()
		const accounts = 3
		e := open(t, accounts)
		// A trigger refuses the ledger row of one order.
		ledger := "ledger"
		if e.store.Schema != "" {
			ledger = e.store.Schema + ".ledger"
			for _, q := range []string{
				"CREATE FUNCTION " + e.store.Schema + ".poison() RETURNS trigger LANGUAGE plpgsql AS " +
					"$$BEGIN IF NEW.order_id = 'ord-00000011' THEN RAISE EXCEPTION 'poisoned'; END IF; RETURN NEW; END$$",
				"CREATE TRIGGER poison BEFORE INSERT ON " + ledger + " FOR EACH ROW EXECUTE FUNCTION " + e.store.Schema + ".poison()",
			} {
				if _, err := e.store.DB.Exec(q); err != nil {
					t.Fatal(err)
				}
			}
		} else if _, err := e.store.DB.Exec("CREATE TRIGGER poison BEFORE INSERT ON ledger WHEN NEW.order_id = 'ord-00000011' " +
			"BEGIN SELECT RAISE(ABORT, 'poisoned'); END"); err != nil {
			t.Fatal(err)
		}
		orders := payments.GenerateOrders(5, 40, accounts)
		var ms []eos.Message
		want := map[string]int64{}
		for _, o := range orders {
			ms = append(ms, o.Message(time.Now()))
			if o.ID != "ord-00000011" {
				want[o.Account] += o.Amount
			}
		}
		p := orderProcessor(t, e, true, inbox.Config{MaxAttempts: 1})
		res, _ := inboxtest.Process(ctx, t, p, ms...)
		if res.Count(inbox.Applied) != len(orders)-1 || res.Count(inbox.DeadLettered) != 1 || res.Results[11].Outcome != inbox.DeadLettered {
			t.Fatalf("outcomes %v, want all applied but order 11", inboxtest.Outcomes(res))
		}
		s := readState(t, e, p)
		if len(s.Ledger) != len(orders)-1 || len(s.Charges) != len(orders)-1 {
			t.Errorf("%d ledger rows, %d charges; want %d", len(s.Ledger), len(s.Charges), len(orders)-1)
		}
		for _, b := range s.Balances {
			if b.Initial-b.Balance != want[b.Account] {
				t.Errorf("%s debited %d, want %d", b.Account, b.Initial-b.Balance, want[b.Account])
			}
		}
		if len(s.DeadLetters) != 1 || !slices.ContainsFunc(s.DeadLetters, func(d string) bool { return d[:12] == "ord-00000011" }) {
			t.Errorf("dead letters %q, want order 11's", s.DeadLetters)
		}
	})
}

// On PostgreSQL the batch handler locks its accounts in account order,
// whatever order its messages come in: a batch of B then A waits for a
// transaction holding A before it takes B, so that transaction can go on
// to B without a deadlock.
func TestOrderBatchHandlerLocksAccountsInOrder(t *testing.T) {
	ctx := context.Background()
	e := openPostgres(t, 2)
	a, b := payments.Account(0, 2), payments.Account(1, 2)
	ob, err := outbox.New(e.drv, outbox.Config{})
	if err != nil {
		t.Fatal(err)
	}
	h, err := payments.NewOrderBatchHandler(ctx, e.store, ob, "payments.charge")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	batch := func(orders ...payments.Order) *inbox.Batch {
		bt := &inbox.Batch{}
		for _, o := range orders {
			bt.Messages = append(bt.Messages, o.Message(time.Now()))
		}
		return bt
	}
	first, err := e.store.DB.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer first.Rollback()
	if _, err := first.Exec("UPDATE "+e.store.Schema+".accounts SET balance = balance - 1 WHERE id = $1", a); err != nil {
		t.Fatal(err)
	}
	second, err := e.store.DB.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer second.Rollback()
	var pid int
	if err := second.QueryRow("SELECT pg_backend_pid()").Scan(&pid); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		err := h.Handle(ctx, second, batch(payments.Order{ID: "o-b", Account: b, Amount: 1}, payments.Order{ID: "o-a", Account: a, Amount: 1}))
		if err == nil {
			err = second.Commit()
		}
		done <- err
	}()
	// Wait until the second transaction waits for a lock (the one on A).
	for waiting := false; !waiting; {
		if err := e.store.DB.QueryRow("SELECT EXISTS (SELECT 1 FROM pg_locks WHERE pid = $1 AND NOT granted)", pid).Scan(&waiting); err != nil {
			t.Fatal(err)
		}
		select {
		case err := <-done:
			t.Fatalf("the second batch did not wait for account %s: %v", a, err)
		default:
		}
	}
	// B is free: the second batch has not locked it while it waits for A.
	if err := h.Handle(ctx, first, batch(payments.Order{ID: "o-b2", Account: b, Amount: 1})); err != nil {
		t.Fatalf("the first transaction on %s: %v", b, err)
	}
	if err := first.Commit(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("the second batch: %v", err)
	}
	bs, err := e.store.Balances(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if bs[0].Initial-bs[0].Balance != 2 || bs[1].Initial-bs[1].Balance != 2 {
		t.Fatalf("balances %+v, want both debited by 2", bs)
	}
}

// BenchmarkOrderHandlers applies batches of 256 orders over 1000 accounts
// through the inbox with the per-message handler and with the batch
// handler, each on its own database, taking turns batch by batch; it
// reports each one's orders/s and the batch handler's as a ratio to the
// per-message one's.
func BenchmarkOrderHandlers(b *testing.B) {
	for _, engine := range []struct {
		name string
		open func(testing.TB, int) db
	}{{"sqlite", openSQLite}, {"postgres", openPostgres}} {
		b.Run(engine.name, func(b *testing.B) {
			const accounts, batch = 1000, 256
			var procs [2]*inbox.Processor[*sql.Tx]
			var took [2]time.Duration
			for k, isBatch := range []bool{false, true} {
				procs[k] = orderProcessor(b, engine.open(b, accounts), isBatch, inbox.Config{OrderByKey: true, MaxBatch: batch})
			}
			orders := payments.GenerateOrders(1, b.N*batch, accounts)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				ms := make([]eos.Message, batch)
				for j, o := range orders[i*batch : (i+1)*batch] {
					ms[j] = o.Message(time.Now())
				}
				for k := range procs {
					k = (k + i) % 2 // alternate which goes first
					start := time.Now()
					if _, err := procs[k].Process(context.Background(), inboxtest.NewDeliveries(ms...).Inbox()); err != nil {
						b.Fatal(err)
					}
					took[k] += time.Since(start)
				}
			}
			n := float64(b.N * batch)
			b.ReportMetric(n/took[0].Seconds(), "message-orders/s")
			b.ReportMetric(n/took[1].Seconds(), "batch-orders/s")
			b.ReportMetric(took[0].Seconds()/took[1].Seconds(), "batch/message")
		})
	}
}
