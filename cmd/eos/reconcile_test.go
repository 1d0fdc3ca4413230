package main

import (
	"context"
	"database/sql"
	neturl "net/url"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	_ "modernc.org/sqlite" // database/sql driver "sqlite", to tamper with the demo's database

	"github.com/eoskit/eos"
	"github.com/eoskit/eos/driver"
	"github.com/eoskit/eos/examples/payments"
	"github.com/eoskit/eos/internal/testenv"
	"github.com/eoskit/eos/reconcile"
	"github.com/eoskit/eos/torture/scenario"
	"github.com/eoskit/eos/torture/worker"
	"github.com/eoskit/eos/transport/natsjs"
)

// TestReconcileDemo runs a small demo, reconciles its orders consumer
// (nothing found: exit 0), then deletes one inbox claim, as a lost apply
// would leave it, and reconciles again: exit 1, the id among the missed.
func TestReconcileDemo(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "demo")
	runDemoJSON(t, "--dir", dir, "--orders", "200", "--workers", "1", "--seed", "7")

	var rep reconcile.Report
	if code := runJSON(t, time.Minute, &rep, "reconcile", "--dir", dir); code != exitOK {
		t.Fatalf("finished demo: exit %d, want 0; report %+v", code, rep)
	}
	if rep.Consumer != "orders" || rep.Source != "jetstream:ORDERS" || rep.Applied < 200 || rep.SourceWithoutID != 1 ||
		rep.ClaimsChecked < 200 || !rep.UnexpectedChecked || !rep.DuplicatesChecked || !rep.PartialChecked || !rep.OK() {
		t.Fatalf("finished demo: %+v", rep)
	}

	db, err := sql.Open("sqlite", filepath.Join(dir, scenario.DBFile))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var id string
	ctx := context.Background()
	if err := db.QueryRowContext(ctx, "DELETE FROM eos_inbox WHERE seq = (SELECT min(seq) FROM eos_inbox WHERE consumer = 'orders' AND id NOT LIKE 'bad-%' AND id NOT LIKE 'invalid-%') RETURNING id").Scan(&id); err != nil {
		t.Fatal(err)
	}
	db.Close()
	rep = reconcile.Report{}
	if code := runJSON(t, time.Minute, &rep, "reconcile", "--dir", dir); code != exitFailed {
		t.Fatalf("tampered: exit %d, want 1; report %+v", code, rep)
	}
	if rep.Missed.Count != 1 || !slices.Equal(rep.Missed.Sample, []string{id}) || rep.Findings() != 1 {
		t.Fatalf("tampered: missed %+v, want %s alone; report %+v", rep.Missed, id, rep)
	}

	// A time range before the demo holds nothing to miss.
	rep = reconcile.Report{}
	if code := runJSON(t, time.Minute, &rep, "reconcile", "--dir", dir, "--to", "2001-01-01T00:00:00Z"); code != exitOK || rep.SourceEntries != 0 {
		t.Fatalf("range before the demo: exit %d, report %+v", code, rep)
	}

	// The same for people: the id under "missed", and the verdict.
	r := runCmd(t, time.Minute, "reconcile", "--dir", dir)
	if r.code != exitFailed || !strings.Contains(r.stdout, "missed          1\n    "+id+"\n") || !strings.Contains(r.stdout, "verdict: FINDINGS (1)") {
		t.Fatalf("exit %d, stdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
}

func TestReconcileUsage(t *testing.T) {
	for _, args := range [][]string{
		{"--dir", filepath.Join(t.TempDir(), "none")},
		{"--sample", "0"},
		{"--schema", "s"},
		{"--first-seq", "9", "--last-seq", "3"},
		{"extra"},
		{"--nats", "http://x"},
		{"--from", "yesterday"},
		{"--from", "2026-01-02T00:00:00Z", "--to", "2026-01-01T00:00:00Z"},
	} {
		checkUsageError(t, runCmd(t, time.Minute, append([]string{"reconcile"}, args...)...), "eos reconcile: ")
	}
	if r := runCmd(t, time.Minute, "reconcile", "--postgres", "postgres://bob:hunter2@[::1", "--schema", "s"); strings.Contains(r.stderr, "hunter2") {
		t.Errorf("the password shows: %q", r.stderr)
	}
}

// TestReconcilePostgresNATS reconciles a consumer on PostgreSQL (a fresh
// schema) against a stream on the external NATS server: three orders
// published, two applied.
func TestReconcilePostgresNATS(t *testing.T) {
	ctx := context.Background()
	url, schema, _, _ := freshSchema(t)
	natsURL := testenv.NATSURL(t)
	migrateCmd(t, exitOK, "up", "--postgres", url, "--schema", schema)
	st, err := worker.OpenStore(ctx, worker.StoreConfig{Kind: payments.Postgres, URL: url, Schema: schema}, 2)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()

	nc, err := nats.Connect(natsURL)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	stream, subject := testenv.Name("RECON_"), testenv.Name("recon.")
	if _, _, err := natsjs.EnsureStream(ctx, js, natsjs.StreamConfig{Name: stream, Subjects: []string{subject}}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { js.DeleteStream(context.Background(), stream) })
	pub, err := natsjs.NewPublisher(js, natsjs.PublisherConfig{})
	if err != nil {
		t.Fatal(err)
	}
	ids := []string{eos.NewID(), eos.NewID(), eos.NewID()}
	for _, id := range ids {
		if _, err := pub.PublishMessage(ctx, subject, eos.Message{ID: id, Payload: []byte("{}")}); err != nil {
			t.Fatal(err)
		}
	}
	tx, err := st.Driver.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	fp := make([]byte, eos.FingerprintSize)
	if _, err := st.Driver.Executor(tx).InboxClaim(ctx, "c", time.Now(), []driver.Claim{{ID: ids[0], Fingerprint: fp}, {ID: ids[2], Fingerprint: fp}}); err != nil {
		t.Fatal(err)
	}
	if err := st.Driver.Commit(ctx, tx); err != nil {
		t.Fatal(err)
	}

	var rep reconcile.Report
	code := runJSON(t, time.Minute, &rep, "reconcile", "--postgres", url, "--schema", schema, "--nats", natsURL, "--stream", stream, "--consumer", "c")
	if code != exitFailed || rep.SourceEntries != 3 || rep.Applied != 2 || !slices.Equal(rep.Missed.Sample, ids[1:2]) || rep.Findings() != 1 ||
		rep.DuplicatesChecked || !rep.PartialChecked {
		t.Fatalf("exit %d, report %+v", code, rep)
	}
	// Without --schema, the connection's search_path finds the tables.
	u, err := neturl.Parse(url)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	rep = reconcile.Report{}
	code = runJSON(t, time.Minute, &rep, "reconcile", "--postgres", u.String(), "--nats", natsURL, "--stream", stream, "--consumer", "c")
	if code != exitFailed || !slices.Equal(rep.Missed.Sample, ids[1:2]) || rep.Findings() != 1 {
		t.Fatalf("search_path: exit %d, report %+v", code, rep)
	}
	if r := runCmd(t, time.Minute, "reconcile", "--postgres", url, "--schema", schema, "--nats", natsURL, "--stream", "NO_SUCH_STREAM"); r.code != exitUsage {
		t.Fatalf("missing stream: exit %d, stderr %q", r.code, r.stderr)
	}
}
