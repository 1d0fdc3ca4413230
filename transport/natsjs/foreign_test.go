package natsjs

import (
	"context"
	"database/sql"
	"errors"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/eoskit/eos"
	"github.com/eoskit/eos/failpoint"
	"github.com/eoskit/eos/inbox"
	"github.com/eoskit/eos/internal/testdb"
)

// TestCloudEventsFromPlainPublisher: a producer that is not eos publishes
// CloudEvents in binary mode with a plain nats.Publish, carrying the ce-id
// header and no Nats-Msg-Id, on two subjects of a consumer of orders.>. With
// ID: CloudEventsID each event is applied once, with the subject it came
// on: the producer's re-publish (which JetStream stores, having no
// Nats-Msg-Id to dedupe on) and a redelivery after a lost ack are
// suppressed by the inbox.
func TestCloudEventsFromPlainPublisher(t *testing.T) {
	js := embedded(t, "orders.>")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cons, _, err := EnsureConsumer(ctx, js, ConsumerConfig{Stream: "S", Durable: "d", AckWait: testAckWait})
	if err != nil {
		t.Fatal(err)
	}
	fps := &failpoint.Set{}
	fps.Arm(FailAckLost, failpoint.Times(1, failpoint.Error())) // the first ack: the first event's
	sub := newSubscriber(t, cons, SubscriberConfig{ID: CloudEventsID, Test: eos.TestConfig{Failpoints: fps}})

	e := testdb.SQLite(t)
	e.Script(t, "CREATE TABLE applied (id TEXT NOT NULL, subject TEXT NOT NULL, payload TEXT NOT NULL)")
	handler := func(ctx context.Context, tx *sql.Tx, m eos.Message) error {
		_, err := tx.ExecContext(ctx, "INSERT INTO applied (id, subject, payload) VALUES ($1, $2, $3)", m.ID, m.Subject, string(m.Payload))
		return err
	}
	p, err := inbox.New(e.Driver, handler, inbox.Config{Consumer: "orders"})
	if err != nil {
		t.Fatal(err)
	}

	nc := js.Conn()
	publish := func(subject, ceID, data string) {
		t.Helper()
		m := &nats.Msg{Subject: subject, Data: []byte(data), Header: nats.Header{HeaderCloudEventsID: {ceID}}}
		if err := nc.PublishMsg(m); err != nil {
			t.Fatal(err)
		}
	}
	publish("orders.created", "evt%201", "created") // the binding percent-encodes the space of "evt 1"
	publish("orders.created", "evt%201", "created") // the producer's retry
	publish("orders.cancelled", "evt-2", "cancelled")

	// Three stream messages and the redelivery of the first, whose ack was lost.
	type outcome struct {
		id      string
		outcome inbox.Outcome
	}
	var got []outcome
	for len(got) < 4 {
		ds, err := sub.Fetch(ctx, 4, 10*time.Millisecond)
		if err != nil {
			t.Fatalf("after %v: %v", got, err)
		}
		res, err := p.Process(ctx, ds)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range res.Results {
			got = append(got, outcome{r.ID, r.Outcome})
		}
	}
	want := []outcome{{"evt 1", inbox.Applied}, {"evt 1", inbox.Duplicate}, {"evt-2", inbox.Applied}, {"evt 1", inbox.Duplicate}}
	if !slices.Equal(got, want) {
		t.Errorf("outcomes %v, want %v", got, want)
	}

	tx, err := e.Driver.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Driver.Rollback(ctx, tx)
	rows, err := tx.QueryContext(ctx, "SELECT id, subject, payload FROM applied ORDER BY id")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var applied [][3]string
	for rows.Next() {
		var r [3]string
		if err := rows.Scan(&r[0], &r[1], &r[2]); err != nil {
			t.Fatal(err)
		}
		applied = append(applied, r)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	wantApplied := [][3]string{{"evt 1", "orders.created", "created"}, {"evt-2", "orders.cancelled", "cancelled"}}
	if !slices.Equal(applied, wantApplied) {
		t.Errorf("applied %v, want %v", applied, wantApplied)
	}
}

func TestIDFuncs(t *testing.T) {
	h := nats.Header{"Nats-Msg-Id": {"n-1"}, "ce-id": {"a%2Fb%20c"}, "X-Id": {"x-1"}}
	for _, c := range []struct {
		name string
		f    IDFunc
		h    nats.Header
		want string
	}{
		{"default", nil, h, "n-1"},
		{"header", HeaderID("X-Id"), h, "x-1"},
		{"header is case sensitive", HeaderID("x-id"), h, ""},
		{"cloudevents decodes", CloudEventsID, h, "a/b c"},
		{"cloudevents plain", CloudEventsID, nats.Header{"ce-id": {"0190a5f2-6c1e"}}, "0190a5f2-6c1e"},
		{"cloudevents bad escape kept", CloudEventsID, nats.Header{"ce-id": {"50%"}}, "50%"},
		{"cloudevents missing", CloudEventsID, nats.Header{"Nats-Msg-Id": {"n-1"}}, ""},
	} {
		cfg, err := SubscriberConfig{ID: c.f}.WithDefaults()
		if err != nil {
			t.Fatal(err)
		}
		if got := fromNATS("s", c.h, nil, cfg.ID).ID; got != c.want {
			t.Errorf("%s: id %q, want %q", c.name, got, c.want)
		}
	}
}

// TestSubjectKeptByDeadLettersAndQuarantine: a dead letter keeps the
// subject its message came on, so that Requeue hands the handler the
// message it failed on (a consumer of orders.> dispatches by subject); a
// quarantined conflict keeps the subject of the conflicting delivery.
func TestSubjectKeptByDeadLettersAndQuarantine(t *testing.T) {
	js := embedded(t, "orders.>")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cons, _, err := EnsureConsumer(ctx, js, ConsumerConfig{Stream: "S", Durable: "d", AckWait: testAckWait})
	if err != nil {
		t.Fatal(err)
	}
	sub := newSubscriber(t, cons, SubscriberConfig{ID: CloudEventsID})
	e := testdb.SQLite(t)
	e.Script(t, "CREATE TABLE applied (id TEXT NOT NULL, subject TEXT NOT NULL)")
	var down atomic.Bool
	down.Store(true)
	handler := func(ctx context.Context, tx *sql.Tx, m eos.Message) error {
		switch {
		case m.Subject == "":
			return inbox.Permanent(errors.New("no subject to dispatch on"))
		case down.Load():
			return inbox.Permanent(errors.New("downstream refused"))
		}
		_, err := tx.ExecContext(ctx, "INSERT INTO applied (id, subject) VALUES ($1, $2)", m.ID, m.Subject)
		return err
	}
	p, err := inbox.New(e.Driver, handler, inbox.Config{Consumer: "orders"})
	if err != nil {
		t.Fatal(err)
	}
	process := func(subject, data string, want inbox.Outcome) {
		t.Helper()
		m := &nats.Msg{Subject: subject, Data: []byte(data), Header: nats.Header{HeaderCloudEventsID: {"evt-1"}}}
		if err := js.Conn().PublishMsg(m); err != nil {
			t.Fatal(err)
		}
		ds, err := sub.Fetch(ctx, 1, 0)
		if err != nil {
			t.Fatal(err)
		}
		res, err := p.Process(ctx, ds)
		if err != nil {
			t.Fatal(err)
		}
		if got := res.Results[0].Outcome; got != want {
			t.Fatalf("%s: %v (%v), want %v", subject, got, res.Results[0].Err, want)
		}
	}
	process("orders.created", "a", inbox.DeadLettered)
	process("orders.updated", "b", inbox.Quarantined) // the same id with other content

	dls, err := p.DeadLetters(ctx, "", 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(dls) != 1 || dls[0].Subject != "orders.created" {
		t.Errorf("dead letters %+v, want evt-1 with subject orders.created", dls)
	}
	qs, err := p.Quarantine(ctx, 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(qs) != 1 || qs[0].Subject != "orders.updated" {
		t.Errorf("quarantine %+v, want evt-1 with subject orders.updated", qs)
	}

	down.Store(false)
	res, err := p.Requeue(ctx, "evt-1")
	if err != nil || res.Results[0].Outcome != inbox.Applied {
		t.Fatalf("Requeue: %v %+v", err, res)
	}
	var subject string
	tx, err := e.Driver.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Driver.Rollback(ctx, tx)
	if err := tx.QueryRowContext(ctx, "SELECT subject FROM applied WHERE id = 'evt-1'").Scan(&subject); err != nil || subject != "orders.created" {
		t.Errorf("requeued evt-1 applied with subject %q (%v), want orders.created", subject, err)
	}
}
