package inbox_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/eoskit/eos"
	"github.com/eoskit/eos/inbox"
	"github.com/eoskit/eos/inbox/inboxtest"
	"github.com/eoskit/eos/internal/testdb"
	"github.com/eoskit/eos/internal/testdb/engines"
	"github.com/eoskit/eos/internal/testenv"
)

// FuzzInbox drives the whole inbox path with arbitrary bytes as id, key,
// header name and value, payload and handler error text, on SQLite and (when
// EOS_TEST_POSTGRES_URL is set) PostgreSQL through pgx and database/sql.
// Every delivery must end applied, duplicate, quarantined or dead-lettered
// within a bounded number of batches; no batch may fail (a failure would
// stall Run); a redelivery never applies twice.
//
// shape picks the handler's behaviour (bits 0-2: succeed, fail once, always
// fail, fail permanently, panic) and the traffic (bit 3: a second delivery
// in the same batch; bit 4: a copy with other content later; bit 5: the
// handler runs as a batch handler).
func FuzzInbox(f *testing.F) {
	for _, s := range []struct {
		id, key, hname, hval string
		payload              []byte
		errText              string
		shape                uint8
	}{
		{"order-1", "acct-1", "Trace", "t1", []byte("12"), "", 0},
		{"order-2", "", "", "", nil, "card declined", 1},
		{"order-3", "k", "X", "v", []byte("x"), "provider said: \x00\xff" + string(make([]byte, 5000)), 2},
		{"order-4", "k", "X", "v", []byte("x"), "malformed", 3 | 8},
		{"order-5", "k", "X", "v", []byte("x"), "boom\xc3", 4 | 16},
		{"order-6", "k", "X", "v", []byte("x"), "card declined\x00", 2 | 8 | 32},
		{"order-7", "k", "", "", []byte("x"), "", 1 | 16 | 32},
		{"", "k", "X", "v", []byte("no id"), "", 0},
		{"é\x00\xff", "k\x00", "Bad Name", "v\r\n", make([]byte, 3000), "", 8},
		{string(make([]byte, 300)), "k", "", "", nil, "", 16},
	} {
		f.Add(s.id, s.key, s.hname, s.hval, s.payload, s.errText, s.shape)
	}
	type target struct {
		name string
		run  func(t *testing.T, c fuzzCase)
	}
	targets := []target{{"sqlite", fuzzTarget(f, testdb.SQLite(f))}}
	if testenv.Wanted("EOS_TEST_POSTGRES_URL") {
		targets = append(targets, target{"postgres", fuzzTarget(f, engines.Postgres(f))},
			target{"postgres-stdlib", fuzzTarget(f, engines.PostgresStdlib(f))})
	}
	f.Fuzz(func(t *testing.T, id, key, hname, hval string, payload []byte, errText string, shape uint8) {
		c := fuzzCase{msg: eos.Message{ID: id, Key: key, Payload: payload}, errText: errText, shape: shape}
		if hname != "" || hval != "" {
			c.msg.Headers = map[string]string{hname: hval}
		}
		for _, tg := range targets {
			tg.run(t, c)
		}
	})
}

type fuzzCase struct {
	msg     eos.Message
	errText string
	shape   uint8
}

// fuzzConsumers makes each case's consumer name unique: claims of earlier
// cases (the fuzzer repeats inputs) must not interfere.
var fuzzConsumers atomic.Int64

const fuzzMaxAttempts = 3

func fuzzTarget[TTx any](tb testing.TB, e *testdb.Engine[TTx]) func(*testing.T, fuzzCase) {
	e.Script(tb, "CREATE TABLE fuzz_effects (consumer TEXT NOT NULL)")
	return func(t *testing.T, c fuzzCase) { runFuzzCase(t, e, c) }
}

func runFuzzCase[TTx any](t *testing.T, e *testdb.Engine[TTx], c fuzzCase) {
	ctx := context.Background()
	consumer := fmt.Sprintf("fuzz-%d", fuzzConsumers.Add(1))
	var calls int
	h := func(ctx context.Context, tx TTx, m eos.Message) error {
		calls++
		switch c.shape & 7 {
		case 1:
			if calls == 1 {
				return errors.New(c.errText)
			}
		case 2:
			return errors.New(c.errText)
		case 3:
			return inbox.Permanent(errors.New(c.errText))
		case 4:
			panic(c.errText)
		}
		return e.Exec(ctx, tx, "INSERT INTO fuzz_effects (consumer) VALUES ($1)", consumer)
	}
	cfg := inbox.Config{Consumer: consumer, MaxAttempts: fuzzMaxAttempts, RetryDelay: 1, MaxRetryDelay: 1}
	var p *inbox.Processor[TTx]
	var err error
	if c.shape&32 != 0 { // the same handler as a batch handler
		p, err = inbox.NewBatch(e.Driver, func(ctx context.Context, tx TTx, b *inbox.Batch) error {
			for _, m := range b.Messages {
				if err := h(ctx, tx, m); err != nil {
					return err
				}
			}
			return nil
		}, cfg)
	} else {
		p, err = inbox.New(e.Driver, h, cfg)
	}
	if err != nil {
		t.Fatal(err)
	}
	batch := []eos.Message{c.msg}
	if c.shape&8 != 0 {
		batch = append(batch, c.msg)
	}
	applied := 0
	settled := false
	for round := 0; round <= fuzzMaxAttempts && !settled; round++ {
		ds := inboxtest.NewDeliveries(batch...)
		res, err := p.Process(ctx, ds.Inbox())
		if err != nil {
			t.Fatalf("%s: batch %d failed (Run would stall on it): %v", e.Name, round, err)
		}
		settled = true
		for _, r := range res.Results {
			switch r.Outcome {
			case inbox.Applied:
				applied++
			case inbox.Retry:
				settled = false
			case inbox.Duplicate, inbox.Quarantined, inbox.DeadLettered:
			default:
				t.Fatalf("%s: outcome %v", e.Name, r.Outcome)
			}
		}
	}
	if !settled {
		t.Fatalf("%s: not settled after %d batches", e.Name, fuzzMaxAttempts+1)
	}
	// A redelivery, and a copy with other content, never apply again.
	later := []eos.Message{c.msg}
	if c.shape&16 != 0 {
		other := c.msg
		other.Payload = append([]byte("other:"), c.msg.Payload...)
		later = append(later, other)
	}
	ds := inboxtest.NewDeliveries(later...)
	res, err := p.Process(ctx, ds.Inbox())
	if err != nil {
		t.Fatalf("%s: redelivery failed: %v", e.Name, err)
	}
	for _, r := range res.Results {
		if r.Outcome == inbox.Applied || r.Outcome == inbox.Retry {
			t.Fatalf("%s: redelivery %v", e.Name, r.Outcome)
		}
	}
	effects := e.Int(t, "SELECT count(*) FROM fuzz_effects WHERE consumer = $1", consumer)
	if applied > 1 || effects != int64(applied) {
		t.Fatalf("%s: applied %d times, %d effects", e.Name, applied, effects)
	}
	if _, err := p.DeadLetters(ctx, "", 10); err != nil {
		t.Fatalf("%s: dead letters unreadable: %v", e.Name, err)
	}
}
