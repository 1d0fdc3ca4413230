package reconcile_test

import (
	"context"
	"database/sql"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/eoskit/eos"
	"github.com/eoskit/eos/internal/testdb"
	"github.com/eoskit/eos/internal/testenv"
	"github.com/eoskit/eos/internal/testjs"
	"github.com/eoskit/eos/reconcile"
	"github.com/eoskit/eos/transport/natsjs"
)

// eachNATS runs test on an embedded server and on the external one.
func eachNATS(t *testing.T, test func(t *testing.T, js jetstream.JetStream)) {
	t.Run("embedded", func(t *testing.T) {
		js, _ := testjs.Start(t)
		test(t, js)
	})
	t.Run("external", func(t *testing.T) {
		nc, err := nats.Connect(testenv.NATSURL(t))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(nc.Close)
		test(t, jetstreamOf(t, nc))
	})
}

func jetstreamOf(t *testing.T, nc *nats.Conn) jetstream.JetStream {
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return js
}

// TestJetStreamSource publishes through natsjs's Publisher (which sets the
// ids) on two subjects, plus one message without an id, and reconciles a
// consumer that applied all but one, in ranges by subject, sequence and
// time.
func TestJetStreamSource(t *testing.T) {
	eachNATS(t, func(t *testing.T, js jetstream.JetStream) {
		ctx := context.Background()
		name := testenv.Name("RECON_")
		subj := testenv.Name("recon.")
		if _, _, err := natsjs.EnsureStream(ctx, js, natsjs.StreamConfig{Name: name, Subjects: []string{subj + ".>"}}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { js.DeleteStream(context.Background(), name) })
		pub, err := natsjs.NewPublisher(js, natsjs.PublisherConfig{})
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for i := range 7 {
			id := eos.NewID()
			ids = append(ids, id)
			sub := subj + ".a"
			if i%2 == 1 {
				sub = subj + ".b"
			}
			if _, err := pub.PublishMessage(ctx, sub, eos.Message{ID: id, Payload: []byte("p")}); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := js.Publish(ctx, subj+".a", []byte("no id")); err != nil { // sequence 8
			t.Fatal(err)
		}
		e := testdb.SQLite(t)
		s := store[*sql.Tx]{d: e.Driver}
		s.claim(t, "c", time.Now(), slices.Delete(slices.Clone(ids), 2, 3)...) // ids[2] (on .a, sequence 3) is missed

		run := func(src reconcile.JetStreamSource, pageSize int) *reconcile.Report {
			t.Helper()
			src.JS, src.Stream = js, name
			r, err := reconcile.New(e.Driver, src, reconcile.Config{Consumer: "c", PageSize: pageSize})
			if err != nil {
				t.Fatal(err)
			}
			rep, err := r.Run(ctx)
			if err != nil {
				t.Fatal(err)
			}
			return rep
		}
		rep := run(reconcile.JetStreamSource{}, 3)
		if rep.SourceEntries != 7 || rep.SourceWithoutID != 1 || rep.Applied != 6 || rep.Missed.Count != 1 || rep.Missed.Sample[0] != ids[2] ||
			rep.Unexpected.Count != 0 || rep.ClaimsChecked != 6 || rep.Source != "jetstream:"+name {
			t.Errorf("whole stream: %+v", rep)
		}
		if rep := run(reconcile.JetStreamSource{Subject: subj + ".b"}, 2); rep.SourceEntries != 3 || rep.Missed.Count != 0 || rep.SourceWithoutID != 0 {
			t.Errorf("subject b: %+v", rep)
		}
		// Sequences 4..7: ids[3..6], all applied. The range is bounded: the
		// claims, all made after the last publish, fall after its window.
		rep = run(reconcile.JetStreamSource{FirstSeq: 4, LastSeq: 7}, 10)
		if rep.SourceEntries != 4 || rep.Missed.Count != 0 || rep.Unexpected.Count != 0 || rep.ClaimsChecked != 0 {
			t.Errorf("sequences 4..7: %+v", rep)
		}
		// From sequence 4 to the end: the claims of ids[0] and ids[1] were
		// made inside the window (from the range's first message to the
		// run), so they are unexpected here: a range that does not start
		// at the stream's first message sees the applies of earlier
		// messages claimed late.
		rep = run(reconcile.JetStreamSource{FirstSeq: 4}, 10)
		if rep.SourceEntries != 4 || rep.SourceWithoutID != 1 || rep.Missed.Count != 0 || rep.Unexpected.Count != 2 {
			t.Errorf("sequences 4..: %+v", rep)
		}
		// A range starting after the last message holds nothing (a fetch
		// waiting for messages that will not come would fail the run).
		if rep := run(reconcile.JetStreamSource{From: time.Now().Add(time.Hour)}, 10); rep.SourceEntries != 0 || rep.ClaimsChecked != 0 {
			t.Errorf("time range after the stream: %+v", rep)
		}
		// A time range ending before the first message holds nothing.
		if rep := run(reconcile.JetStreamSource{To: time.Unix(1, 0)}, 10); rep.SourceEntries != 0 || rep.Missed.Count != 0 {
			t.Errorf("time range before the stream: %+v", rep)
		}
	})
}
