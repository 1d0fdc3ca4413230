package payments_test

import (
	"context"
	"database/sql"
	"errors"
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
	"github.com/eoskit/eos/driver"
	"github.com/eoskit/eos/driver/postgres"
	"github.com/eoskit/eos/driver/sqlite"
	"github.com/eoskit/eos/examples/payments"
	"github.com/eoskit/eos/inbox"
	"github.com/eoskit/eos/internal/testdb/engines"
	"github.com/eoskit/eos/outbox"
)

func TestParseOrder(t *testing.T) {
	for _, c := range []struct {
		payload string
		want    string // "" for valid, else a substring of the error
	}{
		{`{"order_id":"o1","account":"a","amount":5}`, ""},
		{`{"order_id":"o1","account":"a","amount":5,"note":"extra fields are fine"}`, ""},
		{`{"order_id": "o1", "amount": `, "not JSON"},
		{`not json`, "not JSON"},
		{`{"account":"a","amount":5}`, "missing order_id"},
		{`{"order_id":"o1","amount":5}`, "missing account"},
		{`{"order_id":"o1","account":"a","amount":-5}`, "amount must be positive, got -5"},
		{`{"order_id":"o1","account":"a","amount":0}`, "amount must be positive"},
		{`{"order_id":"o1","account":"a","amount":1.5}`, "field amount"},
		{`{"order_id":"o1","account":"a","amount":"5"}`, "field amount"},
		{`{"order_id":"o1","account":"a","amount":100000000001}`, "exceeds the maximum"},
	} {
		o, err := payments.ParseOrder([]byte(c.payload))
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%s: %v", c.payload, err)
		case c.want == "" && (o.ID != "o1" || o.Account != "a" || o.Amount != 5):
			t.Errorf("%s: parsed %+v", c.payload, o)
		case c.want != "":
			var ie *payments.InputError
			if !errors.As(err, &ie) || !strings.Contains(err.Error(), c.want) {
				t.Errorf("%s: got %v, want an InputError with %q", c.payload, err, c.want)
			}
		}
	}
}

func TestMalformedAreRefused(t *testing.T) {
	for _, b := range payments.Malformed("acct-0000") {
		o, err := payments.ParseOrder(b.Message.Payload)
		if err == nil && !b.NoMessageID && o.Account == "acct-0000" {
			t.Errorf("%s (%s) parses as a valid order of an existing account", b.Message.ID, b.Why)
		}
	}
}

func TestGenerateOrdersIsDeterministic(t *testing.T) {
	a, b := payments.GenerateOrders(7, 100, 10), payments.GenerateOrders(7, 100, 10)
	for i := range a {
		if a[i] != b[i] {
			t.Fatalf("order %d differs: %+v %+v", i, a[i], b[i])
		}
		if a[i].Amount < 1 || a[i].Amount > 10_000 {
			t.Fatalf("amount %d out of range", a[i].Amount)
		}
	}
	if c := payments.GenerateOrders(8, 100, 10); c[0] == a[0] && c[1] == a[1] && c[2] == a[2] {
		t.Fatal("another seed gives the same orders")
	}
}

type delivery struct {
	m             eos.Message
	acked, nacked bool
}

func (d *delivery) Message() eos.Message                      { return d.m }
func (d *delivery) Ack(context.Context) error                 { d.acked = true; return nil }
func (d *delivery) Nack(context.Context, time.Duration) error { d.nacked = true; return nil }

func TestSortByKey(t *testing.T) {
	ch := make(chan inbox.Delivery, 5)
	for _, id := range []string{"b1", "a1", "c1", "b2", "a2"} {
		ch <- &delivery{m: eos.Message{ID: id, Key: id[:1]}}
	}
	close(ch)
	ds, err := payments.SortByKey(inbox.ChanSource(ch)).Fetch(context.Background(), 10, 0)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, d := range ds {
		got = append(got, d.Message().ID)
	}
	if strings.Join(got, ",") != "a1,a2,b1,b2,c1" {
		t.Fatalf("order %v", got)
	}
}

func openProvider(t *testing.T, path string, cfg payments.ProviderConfig) (*payments.Provider, *payments.ProviderClient, string) {
	t.Helper()
	p, err := payments.OpenProvider(context.Background(), path, cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(p)
	t.Cleanup(func() { srv.Close(); p.Close() })
	c, err := payments.NewProviderClient(srv.URL, nil)
	if err != nil {
		t.Fatal(err)
	}
	return p, c, srv.URL
}

func TestProviderIdempotency(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "provider.db")
	p, c, url := openProvider(t, path, payments.ProviderConfig{})
	ch := payments.Charge{OrderID: "o1", Account: "a", Amount: 500}
	first, err := c.Charge(ctx, ch)
	if err != nil || first.Replayed || first.ChargeID == "" {
		t.Fatalf("first charge: %+v %v", first, err)
	}
	again, err := c.Charge(ctx, ch)
	if err != nil || !again.Replayed || again.ChargeID != first.ChargeID {
		t.Fatalf("retry: %+v %v, want a replay of %s", again, err, first.ChargeID)
	}
	var pe *payments.ProviderError
	if _, err := c.Charge(ctx, payments.Charge{OrderID: "o1", Account: "a", Amount: 501}); !errors.As(err, &pe) ||
		pe.Status != http.StatusUnprocessableEntity || pe.Temporary() {
		t.Fatalf("same key, other amount: %v", err)
	}
	resp, err := http.Post(url+payments.ChargesPath, "application/json",
		strings.NewReader(`{"order_id":"o2","account":"a","amount":1}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("no Idempotency-Key: status %d", resp.StatusCode)
	}
	if st, err := p.Stats(ctx); err != nil || st.Charged != 1 || st.Keys != 1 || st.Replays != 2 {
		t.Fatalf("stats %+v %v", st, err)
	}
	if p.Executed() != 1 {
		t.Fatalf("executed %d", p.Executed())
	}

	// A provider failing before it records anything: temporary, no charge.
	_, down, _ := openProvider(t, path, payments.ProviderConfig{FailBefore: 1})
	if _, err := down.Charge(ctx, payments.Charge{OrderID: "o3", Account: "a", Amount: 1}); !errors.As(err, &pe) || !pe.Temporary() {
		t.Fatalf("outage: %v", err)
	}
	// One failing after it charged: temporary, and the retry replays.
	_, flaky, _ := openProvider(t, path, payments.ProviderConfig{FailAfter: 1})
	if _, err := flaky.Charge(ctx, payments.Charge{OrderID: "o4", Account: "a", Amount: 1}); !errors.As(err, &pe) || !pe.Temporary() {
		t.Fatalf("failure after charging: %v", err)
	}
	p2, c2, _ := openProvider(t, path, payments.ProviderConfig{})
	if r, err := c2.Charge(ctx, payments.Charge{OrderID: "o4", Account: "a", Amount: 1}); err != nil || !r.Replayed {
		t.Fatalf("retry after the failure: %+v %v", r, err)
	}
	charges, err := p2.Charges(ctx)
	if err != nil || len(charges) != 2 {
		t.Fatalf("records after reopening: %v %v", charges, err)
	}
}

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

func TestPipeline(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) { testPipeline(t, sqliteEnv(t)) })
	t.Run("postgres", func(t *testing.T) { testPipeline(t, postgresEnv(t)) })
}

// collector is the broker between the relay and the payment worker.
type collector struct{ envs []outbox.Envelope }

func (c *collector) Publish(_ context.Context, msgs []outbox.Envelope) (int, error) {
	c.envs = append(c.envs, msgs...)
	return len(msgs), nil
}

// testPipeline runs orders (with copies and malformed inputs) through the
// order handler, the outbox, the payment handler and the provider, then
// checks the report, and that the checker catches planted faults.
func testPipeline(t *testing.T, e env) {
	ctx := context.Background()
	if _, err := e.drv.Migrator().Up(ctx); err != nil {
		t.Fatal(err)
	}
	const accounts = 5
	if err := e.store.Setup(ctx, accounts, 1_000_000); err != nil {
		t.Fatal(err)
	}
	orders := payments.GenerateOrders(1, 40, accounts)
	bad := payments.Malformed(payments.Account(0, accounts))
	ob, err := outbox.New(e.drv, outbox.Config{})
	if err != nil {
		t.Fatal(err)
	}
	oh, err := payments.NewOrderHandler(ctx, e.store, ob, "payments.charge")
	if err != nil {
		t.Fatal(err)
	}
	defer oh.Close()
	op, err := inbox.New(e.drv, oh.Handle, inbox.Config{Consumer: payments.OrdersConsumer})
	if err != nil {
		t.Fatal(err)
	}
	var ds []inbox.Delivery
	for i, o := range orders {
		ds = append(ds, &delivery{m: o.Message(time.Now())})
		if i%10 == 0 { // a copy past the broker's dedupe
			ds = append(ds, &delivery{m: o.Message(time.Now())})
		}
	}
	for _, b := range bad {
		ds = append(ds, &delivery{m: b.Message})
	}
	stored := len(ds)
	res, err := op.Process(ctx, ds)
	if err != nil {
		t.Fatal(err)
	}
	if n := res.Count(inbox.Applied); n != len(orders) {
		t.Fatalf("applied %d of %d: %+v", n, len(orders), res.Results)
	}
	if n := res.Count(inbox.DeadLettered); n != len(bad) {
		t.Fatalf("dead-lettered %d of %d", n, len(bad))
	}

	broker := &collector{}
	relay, err := outbox.NewRelay(e.drv, broker, outbox.RelayConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if n, err := relay.Forward(ctx); err != nil || n != len(orders) {
		t.Fatalf("relay forwarded %d, %v", n, err)
	}

	prov, client, provURL := openProvider(t, filepath.Join(t.TempDir(), "provider.db"), payments.ProviderConfig{})
	ph, err := payments.NewPaymentHandler(ctx, e.store, client)
	if err != nil {
		t.Fatal(err)
	}
	defer ph.Close()
	pp, err := inbox.New(e.drv, ph.Handle, inbox.Config{Consumer: payments.PaymentsConsumer, Isolation: inbox.IsolateSavepoint})
	if err != nil {
		t.Fatal(err)
	}
	var pds []inbox.Delivery
	for _, env := range broker.envs {
		pds = append(pds, &delivery{m: env.Message})
	}
	pds = append(pds, &delivery{m: broker.envs[0].Message}) // a redelivery
	if res, err := pp.Process(ctx, pds); err != nil || res.Count(inbox.Applied) != len(orders) || res.Count(inbox.Duplicate) != 1 {
		t.Fatalf("payments: %v %+v", err, res)
	}

	// checkIn checks with the provider's charges less those of the orders
	// in without (a charge never made), for a run that drained or not.
	checkIn := func(incomplete bool, without ...string) *payments.Report {
		t.Helper()
		charges, err := prov.Charges(ctx)
		if err != nil {
			t.Fatal(err)
		}
		charges = slices.DeleteFunc(charges, func(c payments.ChargeRecord) bool { return slices.Contains(without, c.OrderID) })
		r, err := payments.Check(ctx, e.store, payments.CheckInput{Orders: orders, Malformed: bad, Charges: charges,
			Broker: payments.BrokerStats{OrdersStored: uint64(stored), OrdersDelivered: uint64(stored),
				PaymentsStored: uint64(len(broker.envs)), PaymentsDelivered: uint64(len(pds))}, Incomplete: incomplete})
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	check := func() *payments.Report { t.Helper(); return checkIn(false) }
	r := check()
	if !r.OK || r.Applied != len(orders) || r.Charges != len(orders) || r.DeadLettered != len(bad) ||
		r.DuplicatesSuppressed != 4 || r.Reprocessed != 1 || r.PartialCommits != 0 {
		t.Fatalf("report: %+v", r)
	}
	if !strings.Contains(r.Table(), "verdict: OK") {
		t.Fatalf("table:\n%s", r.Table())
	}
	// The same rows from a run that timed out: not OK, no failure, and the
	// report says INCOMPLETE first.
	r = checkIn(true)
	if r.OK || !r.Incomplete || len(r.Failures) > 0 || !strings.HasPrefix(r.Table(), "INCOMPLETE: ") ||
		!strings.HasSuffix(r.Table(), "verdict: INCOMPLETE\n") {
		t.Fatalf("incomplete: ok %v, incomplete %v, failures %q; table:\n%s", r.OK, r.Incomplete, r.Failures, r.Table())
	}

	// Planted faults: a second ledger row for an order, and a second charge
	// of another order under a different key.
	if _, err := e.store.DB.ExecContext(ctx, "INSERT INTO "+table(e.store, "ledger")+
		" (order_id, account, amount, created_us, applied_us) VALUES ($1, $2, $3, 0, 0)", orders[0].ID, orders[0].Account, orders[0].Amount); err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodPost, provURL+payments.ChargesPath, strings.NewReader(
		`{"order_id":"`+orders[1].ID+`","account":"`+orders[1].Account+`","amount":`+strconv.FormatInt(orders[1].Amount, 10)+`}`))
	req.Header.Set("Idempotency-Key", "another-key")
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusCreated {
		t.Fatalf("second charge: %v %v", resp, err)
	}
	r = check()
	if r.OK || r.DuplicateEffects != 1 || r.DuplicateCharges != 1 || r.BalanceMismatches == 0 || len(r.Failures) < 3 {
		t.Fatalf("planted faults not caught: %+v", r)
	}
	// What must hold at every moment is checked in an incomplete run too.
	r = checkIn(true)
	if r.OK || r.DuplicateEffects != 1 || r.DuplicateCharges != 1 || !hasFailure(r, "1 duplicate effects") || !hasFailure(r, "1 duplicate charges") ||
		!strings.HasPrefix(r.Table(), "INCOMPLETE: ") || !strings.HasSuffix(r.Table(), "verdict: FAILED\n") {
		t.Fatalf("incomplete run with planted duplicates: %+v\n%s", r, r.Table())
	}

	// A planted loss: orders[2] acknowledged but never applied (no ledger
	// row, debit, claim, payment or charge).
	lost := orders[2]
	for _, q := range []string{
		"DELETE FROM " + table(e.store, "ledger") + " WHERE order_id = $1",
		"DELETE FROM " + table(e.store, "payments") + " WHERE order_id = $1",
		"DELETE FROM " + table(e.store, payments.EOSPrefix+"inbox") + " WHERE id = $1",
	} {
		if _, err := e.store.DB.ExecContext(ctx, q, lost.ID); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := e.store.DB.ExecContext(ctx, "UPDATE "+table(e.store, "accounts")+" SET balance = balance + $1 WHERE id = $2", lost.Amount, lost.Account); err != nil {
		t.Fatal(err)
	}
	r = checkIn(false, lost.ID)
	if r.Missing != 1 || r.MissingCharges != 1 || !hasFailure(r, "1 orders not applied") || !hasFailure(r, "1 orders not charged") {
		t.Fatalf("planted loss not caught: missing %d, missing charges %d, failures %q", r.Missing, r.MissingCharges, r.Failures)
	}
	r = checkIn(true, lost.ID)
	if hasFailure(r, "not applied") || hasFailure(r, "not charged") || hasFailure(r, "dedupe records") {
		t.Fatalf("incomplete run: an order in flight is reported lost: %q", r.Failures)
	}

	// The payment worker applies orders[3] twice; the provider replays the
	// second request by its key, so only the worker's rows show it.
	// And a payment row for an order never emitted.
	ins := "INSERT INTO " + table(e.store, "payments") + " (order_id, charge_id, account, amount, created_us, paid_us) VALUES ($1, 'ch', $2, $3, 0, 0)"
	if _, err := e.store.DB.ExecContext(ctx, ins, orders[3].ID, orders[3].Account, orders[3].Amount); err != nil {
		t.Fatal(err)
	}
	if _, err := e.store.DB.ExecContext(ctx, ins, "ghost", orders[3].Account, 1); err != nil {
		t.Fatal(err)
	}
	for _, incomplete := range []bool{false, true} {
		r = checkIn(incomplete, lost.ID)
		if r.DuplicateEffects != 2 || r.DuplicateCharges != 1 || !hasFailure(r, "1 payment records for orders never emitted") {
			t.Fatalf("incomplete %v: planted payment rows not caught: duplicate effects %d, failures %q", incomplete, r.DuplicateEffects, r.Failures)
		}
	}
}

func hasFailure(r *payments.Report, want string) bool {
	return slices.ContainsFunc(r.Failures, func(f string) bool { return strings.Contains(f, want) })
}

func table(s payments.Store, name string) string {
	if s.Schema == "" {
		return name
	}
	return s.Schema + "." + name
}
