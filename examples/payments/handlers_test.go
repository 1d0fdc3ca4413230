package payments_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"path/filepath"
	"testing"

	"github.com/eoskit/eos"
	"github.com/eoskit/eos/callonce"
	"github.com/eoskit/eos/dedupe"
	"github.com/eoskit/eos/examples/payments"
	"github.com/eoskit/eos/inbox"
	"github.com/eoskit/eos/inbox/inboxtest"
)

// TestPaymentHandlerChargesOnce: charges, some delivered twice, against a
// provider that fails a third of its requests before charging and a third
// after (the client cannot tell whether it was charged): every order is
// charged exactly once and recorded once, and redelivering everything
// afterwards makes no provider call at all.
func TestPaymentHandlerChargesOnce(t *testing.T) {
	eachEngine(t, func(t *testing.T, open func(t testing.TB, accounts int) db) {
		ctx := context.Background()
		e := open(t, 4)
		prov, err := payments.OpenProvider(ctx, filepath.Join(t.TempDir(), "provider.db"),
			payments.ProviderConfig{FailBefore: 0.3, FailAfter: 0.3, Seed: 7})
		if err != nil {
			t.Fatal(err)
		}
		srv := httptest.NewServer(prov)
		t.Cleanup(func() { srv.Close(); prov.Close() })
		client, err := payments.NewProviderClient(srv.URL, srv.Client())
		if err != nil {
			t.Fatal(err)
		}
		store, err := dedupe.NewSQL(e.drv, dedupe.Config{})
		if err != nil {
			t.Fatal(err)
		}
		caller, err := callonce.New(callonce.Batched(e.drv, store), callonce.Config{MaxAttempts: 2, RetryDelay: 1, MaxRetryDelay: 1})
		if err != nil {
			t.Fatal(err)
		}
		h, err := payments.NewPaymentHandler(ctx, e.store, client, caller)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { h.Close() })
		p, err := inbox.New(e.drv, h.Handle, inbox.Config{Consumer: payments.PaymentsConsumer, Isolation: inbox.IsolateSavepoint, MaxAttempts: 1000})
		if err != nil {
			t.Fatal(err)
		}

		const n = 40
		var msgs []eos.Message
		for i := range n {
			c := payments.Charge{OrderID: fmt.Sprintf("ord-%03d", i), Account: payments.Account(i%4, 4), Amount: int64(100 + i)}
			body, err := json.Marshal(c)
			if err != nil {
				t.Fatal(err)
			}
			m := eos.Message{ID: payments.ChargeID(c.OrderID), Key: c.Account, Payload: body}
			msgs = append(msgs, m)
			if i%5 == 0 {
				msgs = append(msgs, m) // a redelivery in the same batch
			}
		}
		pending := msgs
		for round := 0; len(pending) > 0; round++ {
			if round == 100 {
				t.Fatalf("%d charges still pending after %d rounds", len(pending), round)
			}
			res, err := p.Process(ctx, h.Prepare(ctx, inboxtest.NewDeliveries(pending...).Inbox()))
			if err != nil {
				t.Fatal(err)
			}
			var again []eos.Message
			for i, r := range res.Results {
				switch r.Outcome {
				case inbox.Applied, inbox.Duplicate:
				case inbox.Retry:
					again = append(again, pending[i])
				default:
					t.Fatalf("%s: %v (%v)", r.ID, r.Outcome, r.Err)
				}
			}
			pending = again
		}
		check := func() payments.ProviderStats {
			t.Helper()
			charges, err := prov.Charges(ctx)
			if err != nil {
				t.Fatal(err)
			}
			per := map[string]int{}
			for _, c := range charges {
				per[c.OrderID]++
			}
			rows, err := e.store.PaymentRows(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if len(per) != n || len(rows) != n {
				t.Fatalf("%d orders charged, %d recorded; want %d", len(per), len(rows), n)
			}
			for id, k := range per {
				if k != 1 || rows[id] != 1 {
					t.Fatalf("%s charged %d times, recorded %d times", id, k, rows[id])
				}
			}
			st, err := prov.Stats(ctx)
			if err != nil {
				t.Fatal(err)
			}
			return st
		}
		before := check()
		if before.Replays == 0 {
			t.Fatalf("provider stats %+v: the failures after charging made no replay; the test proves nothing", before)
		}
		// Everything again: the inbox's claims and the recorded answers
		// stop it all before the provider.
		res, err := p.Process(ctx, h.Prepare(ctx, inboxtest.NewDeliveries(msgs...).Inbox()))
		if err != nil || res.Count(inbox.Duplicate) != len(msgs) {
			t.Fatalf("redelivery: %v, %+v", err, res)
		}
		if after := check(); after != before {
			t.Fatalf("provider stats %+v after redelivering everything, %+v before: the provider was called", after, before)
		}
	})
}
