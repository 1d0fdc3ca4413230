package intents_test

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/eoskit/eos/examples/payments"
	"github.com/eoskit/eos/outbox"
	"github.com/eoskit/eos/torture/intents"
)

func TestLogRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "intents.jsonl")
	l, err := intents.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	a := payments.Order{ID: "o1", Account: "acct-1", Amount: 5}
	b := payments.Order{ID: "o2", Account: "acct-2", Amount: 7}
	env := func(o payments.Order) outbox.Envelope {
		return outbox.Envelope{Topic: "t", Message: o.Message(time.Now())}
	}
	bad := payments.Malformed("acct-1")[0]
	steps := []error{
		l.Orders([]outbox.Envelope{env(a), env(b), env(a)}), // the second a is a retry
		l.Resend([]outbox.Envelope{env(b)}),
		l.Copy("o1"),
		l.Poison(bad),
		l.Close(),
	}
	if err := errors.Join(steps...); err != nil {
		t.Fatal(err)
	}
	got, err := intents.Read(path)
	if err != nil {
		t.Fatal(err)
	}
	want := []intents.Intent{
		{Kind: intents.Order, ID: "o1", Account: "acct-1", Amount: 5},
		{Kind: intents.Order, ID: "o2", Account: "acct-2", Amount: 7},
		{Kind: intents.Retry, ID: "o1"},
		{Kind: intents.Resend, ID: "o2"},
		{Kind: intents.Copy, ID: "o1"},
		{Kind: intents.Poison, ID: bad.Message.ID, Payload: bad.Message.Payload, Why: bad.Why},
	}
	if !slices.EqualFunc(got, want, func(x, y intents.Intent) bool {
		return x.Kind == y.Kind && x.ID == y.ID && x.Account == y.Account && x.Amount == y.Amount && string(x.Payload) == string(y.Payload) && x.Why == y.Why
	}) {
		t.Errorf("read back\n%+v\nwant\n%+v", got, want)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("log file: %v, %v; want mode 0600", fi.Mode(), err)
	}
}

func TestNilLogRecordsNothing(t *testing.T) {
	var l *intents.Log
	if err := errors.Join(l.Orders([]outbox.Envelope{{}}), l.Copy("x"), l.Resend([]outbox.Envelope{{}}), l.Poison(payments.BadInput{}), l.Close()); err != nil {
		t.Fatal(err)
	}
}

func TestReadReportsTheBadLine(t *testing.T) {
	path := filepath.Join(t.TempDir(), "intents.jsonl")
	if err := os.WriteFile(path, []byte(`{"kind":"order","id":"o1"}`+"\n"+`{"kind":"ord`), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := intents.Read(path)
	if !errors.Is(err, intents.ErrLog) || !strings.Contains(err.Error(), "line 2") {
		t.Errorf("torn last line: %v; want ErrLog naming line 2", err)
	}
	if _, err := intents.Read(filepath.Join(t.TempDir(), "missing")); !errors.Is(err, intents.ErrLog) {
		t.Errorf("missing log: %v; want ErrLog", err)
	}
}
