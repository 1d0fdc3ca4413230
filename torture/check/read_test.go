package check_test

import (
	"context"
	"database/sql"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/stdlib"

	"github.com/eoskit/eos"
	"github.com/eoskit/eos/callonce"
	"github.com/eoskit/eos/dedupe"
	"github.com/eoskit/eos/driver"
	"github.com/eoskit/eos/driver/postgres"
	"github.com/eoskit/eos/driver/sqlite"
	"github.com/eoskit/eos/examples/payments"
	"github.com/eoskit/eos/inbox"
	"github.com/eoskit/eos/inbox/inboxtest"
	"github.com/eoskit/eos/internal/testdb/engines"
	"github.com/eoskit/eos/outbox"
	"github.com/eoskit/eos/outbox/outboxtest"
	"github.com/eoskit/eos/torture/check"
	"github.com/eoskit/eos/torture/intents"
)

// env is one engine for the pipeline test.
type env struct {
	drv   driver.Driver[*sql.Tx]
	store payments.Store
}

func sqliteEnv(t *testing.T) env {
	d, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "eos.db"), sqlite.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return env{drv: d, store: payments.Store{DB: d.DB(), Dialect: payments.SQLite}}
}

func postgresEnv(t *testing.T) env {
	schema, pool := engines.PostgresSchema(t)
	db := stdlib.OpenDBFromPool(pool)
	t.Cleanup(func() { db.Close() })
	d, err := postgres.NewStdlib(db, postgres.Config{Schema: schema})
	if err != nil {
		t.Fatal(err)
	}
	return env{drv: d, store: payments.Store{DB: db, Dialect: payments.Postgres, Schema: schema}}
}

// TestReadAndJudgeAPipeline runs orders (with copies and malformed inputs)
// through the scenario's handlers on each engine, reads the database as
// the harness does (the scenario's tables, eos's admin API) and checks the
// verdict, then plants faults in the rows and checks that they are caught.
func TestReadAndJudgeAPipeline(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) { testPipeline(t, sqliteEnv(t)) })
	t.Run("postgres", func(t *testing.T) { testPipeline(t, postgresEnv(t)) })
}

// run is what testPipeline made and what the checker reads besides the
// database.
type run struct {
	env
	orders   []payments.Order
	intents  []intents.Intent
	stored   map[string]int
	broker   check.BrokerStats
	provider *payments.Provider
	provURL  string
	reader   *check.Reader
}

// facts reads the facts of the run, with the provider's charges less those
// of the orders in without (a charge never made).
func (r *run) facts(t *testing.T, incomplete bool, without ...string) check.Facts {
	t.Helper()
	ctx := context.Background()
	st, err := r.reader.Store(ctx)
	if err != nil {
		t.Fatal(err)
	}
	charges, err := r.provider.Charges(ctx)
	if err != nil {
		t.Fatal(err)
	}
	charges = slices.DeleteFunc(charges, func(c payments.ChargeRecord) bool { return slices.Contains(without, c.OrderID) })
	return check.Facts{Intents: r.intents, Stored: r.stored, Broker: r.broker, Store: st, Charges: charges, Incomplete: incomplete}
}

func (r *run) verdict(t *testing.T, incomplete bool, without ...string) check.Report {
	t.Helper()
	return check.Verdict(r.facts(t, incomplete, without...))
}

func (r *run) exec(t *testing.T, q string, args ...any) {
	t.Helper()
	if _, err := r.store.DB.ExecContext(context.Background(), q, args...); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

func (r *run) table(name string) string {
	if r.store.Schema == "" {
		return name
	}
	return r.store.Schema + "." + name
}

func testPipeline(t *testing.T, e env) {
	r := runPipeline(t, e)
	ctx := context.Background()
	p, err := r.reader.Pipeline(ctx)
	if err != nil || p != (check.Pipeline{Applied: 40, Paid: 40, DeadLettered: 5}) {
		t.Fatalf("pipeline %+v, %v", p, err)
	}
	rep := r.verdict(t, false)
	if !rep.OK || rep.Applied != 40 || rep.ChargedOnce != 40 || rep.DeadLettered != 5 || len(rep.DeadLetters) != 5 ||
		rep.DuplicatesSuppressed != 4 || rep.Reprocessed != 1 || rep.Retries != 0 || rep.PartialCommits != 0 {
		t.Fatalf("report: %+v", rep)
	}
	// The same rows from a run that timed out: not OK, no failure.
	if rep := r.verdict(t, true); rep.OK || !rep.Incomplete || len(rep.Failures) > 0 {
		t.Fatalf("incomplete: ok %v, incomplete %v, failures %q", rep.OK, rep.Incomplete, rep.Failures)
	}

	// Planted faults: a second ledger row for an order, and a second charge
	// of another order under a different key.
	o0, o1 := r.orders[0], r.orders[1]
	r.exec(t, "INSERT INTO "+r.table("ledger")+" (order_id, account, amount, created_us, applied_us) VALUES ($1, $2, $3, 0, 0)",
		o0.ID, o0.Account, o0.Amount)
	req, _ := http.NewRequest(http.MethodPost, r.provURL+payments.ChargesPath, strings.NewReader(
		`{"order_id":"`+o1.ID+`","account":"`+o1.Account+`","amount":`+strconv.FormatInt(o1.Amount, 10)+`}`))
	req.Header.Set("Idempotency-Key", `"another-key"`)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusCreated {
		t.Fatalf("second charge: %v %v", resp, err)
	}
	for _, incomplete := range []bool{false, true} { // what must hold at every moment
		rep = r.verdict(t, incomplete)
		if rep.OK || rep.Duplicated != 1 || rep.DuplicateCharges != 1 || !has(rep, "1 duplicate effects") || !has(rep, "not charged exactly once") ||
			(!incomplete && rep.BalanceMismatches == 0) {
			t.Fatalf("incomplete %v: planted duplicates not caught: %+v", incomplete, rep)
		}
	}

	// A planted loss: orders[2] acknowledged and never applied (no ledger
	// row, debit, payment or charge).
	lost := r.orders[2]
	r.exec(t, "DELETE FROM "+r.table("ledger")+" WHERE order_id = $1", lost.ID)
	r.exec(t, "DELETE FROM "+r.table("payments")+" WHERE order_id = $1", lost.ID)
	r.exec(t, "UPDATE "+r.table("accounts")+" SET balance = balance + $1 WHERE id = $2", lost.Amount, lost.Account)
	rep = r.verdict(t, false, lost.ID)
	if rep.Lost != 1 || rep.Applied != 39 || !has(rep, "1 acknowledged orders lost") {
		t.Fatalf("planted loss not caught: lost %d, failures %q", rep.Lost, rep.Failures)
	}
	if rep = r.verdict(t, true, lost.ID); has(rep, "lost") {
		t.Fatalf("incomplete run: an order in flight is reported lost: %q", rep.Failures)
	}

	// The payment worker applies orders[3] twice; the provider replays the
	// second request by its key, so only the worker's rows show it. And a
	// payment row for an order never intended.
	ins := "INSERT INTO " + r.table("payments") + " (order_id, charge_id, account, amount, created_us, paid_us) VALUES ($1, 'ch', $2, $3, 0, 0)"
	r.exec(t, ins, r.orders[3].ID, r.orders[3].Account, r.orders[3].Amount)
	r.exec(t, ins, "ghost", r.orders[3].Account, 1)
	for _, incomplete := range []bool{false, true} {
		rep = r.verdict(t, incomplete, lost.ID)
		if rep.Duplicated != 2 || rep.Unexpected != 1 || !has(rep, "1 orders applied that were never intended") {
			t.Fatalf("incomplete %v: planted payment rows not caught: duplicated %d, failures %q", incomplete, rep.Duplicated, rep.Failures)
		}
	}
}

func has(r check.Report, want string) bool {
	return slices.ContainsFunc(r.Failures, func(f string) bool { return strings.Contains(f, want) })
}

// runPipeline applies 40 orders (4 of them delivered twice) and the
// malformed inputs through the order handler, forwards the charges, and
// applies them (one delivered twice) through the payment handler.
func runPipeline(t *testing.T, e env) *run {
	ctx := context.Background()
	if _, err := e.drv.Migrator().Up(ctx); err != nil {
		t.Fatal(err)
	}
	const accounts = 5
	if err := e.store.Setup(ctx, accounts, 1_000_000); err != nil {
		t.Fatal(err)
	}
	r := &run{env: e, orders: payments.GenerateOrders(1, 40, accounts), stored: map[string]int{}}
	bad := payments.Malformed(payments.Account(0, accounts))
	ob, err := outbox.New(e.drv, outbox.Config{})
	if err != nil {
		t.Fatal(err)
	}
	oh, err := payments.NewOrderHandler(ctx, e.store, ob, "payments.charge")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { oh.Close() })
	op, err := inbox.New(e.drv, oh.Handle, inbox.Config{Consumer: payments.OrdersConsumer})
	if err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(t.TempDir(), "intents.jsonl")
	log, err := intents.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	var envs []outbox.Envelope
	var ms []eos.Message
	for i, o := range r.orders {
		envs = append(envs, outbox.Envelope{Topic: "orders", Message: o.Message(time.Now())})
		ms = append(ms, o.Message(time.Now()))
		if i%10 == 0 { // a copy past the broker's dedupe
			ms = append(ms, o.Message(time.Now()))
		}
	}
	if err := log.Orders(envs); err != nil {
		t.Fatal(err)
	}
	for _, b := range bad {
		ms = append(ms, b.Message)
		if err := log.Poison(b); err != nil {
			t.Fatal(err)
		}
	}
	for _, m := range ms {
		r.stored[m.ID]++
	}
	if err := log.Close(); err != nil {
		t.Fatal(err)
	}
	if r.intents, err = intents.Read(logPath); err != nil {
		t.Fatal(err)
	}
	res, _ := inboxtest.Process(ctx, t, op, ms...)
	if n := res.Count(inbox.Applied); n != len(r.orders) {
		t.Fatalf("applied %d of %d: %+v", n, len(r.orders), res.Results)
	}
	if r.reader, err = check.NewReader(e.drv, e.store); err != nil {
		t.Fatal(err)
	}
	if p, err := r.reader.Pipeline(ctx); err != nil || p.Unsent != int64(len(r.orders)) {
		t.Fatalf("before the relay: %+v, %v; want every charge unsent", p, err)
	}

	broker := outboxtest.NewPublisher() // between the relay and the payment worker
	relay, err := outbox.NewRelay(e.drv, broker, outbox.RelayConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if n, err := relay.Forward(ctx); err != nil || n != len(r.orders) {
		t.Fatalf("relay forwarded %d, %v", n, err)
	}

	if r.provider, err = payments.OpenProvider(ctx, filepath.Join(t.TempDir(), "provider.db"), payments.ProviderConfig{}); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(r.provider)
	t.Cleanup(func() { srv.Close(); r.provider.Close() })
	r.provURL = srv.URL
	client, err := payments.NewProviderClient(srv.URL, srv.Client())
	if err != nil {
		t.Fatal(err)
	}
	calls, err := dedupe.NewSQL(e.drv, dedupe.Config{})
	if err != nil {
		t.Fatal(err)
	}
	caller, err := callonce.New(calls, callonce.Config{})
	if err != nil {
		t.Fatal(err)
	}
	ph, err := payments.NewPaymentHandler(ctx, e.store, client, caller)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ph.Close() })
	pp, err := inbox.New(e.drv, ph.Handle, inbox.Config{Consumer: payments.PaymentsConsumer, Isolation: inbox.IsolateSavepoint})
	if err != nil {
		t.Fatal(err)
	}
	var pms []eos.Message
	for _, env := range broker.Published() {
		pms = append(pms, env.Message)
	}
	pms = append(pms, pms[0]) // a redelivery
	if res, err := pp.Process(ctx, ph.Prepare(ctx, inboxtest.NewDeliveries(pms...).Inbox())); err != nil || res.Count(inbox.Applied) != len(r.orders) || res.Count(inbox.Duplicate) != 1 {
		t.Fatalf("payments: %v %+v", err, res)
	}
	r.broker = check.BrokerStats{OrdersStored: uint64(len(ms)), OrdersDelivered: uint64(len(ms)),
		PaymentsStored: uint64(len(broker.Published())), PaymentsDelivered: uint64(len(pms))}
	return r
}
