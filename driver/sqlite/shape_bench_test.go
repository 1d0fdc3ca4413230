package sqlite_test

import (
	"context"
	"database/sql"
	"encoding/hex"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/eoskit/eos"
	"github.com/eoskit/eos/driver"
	"github.com/eoskit/eos/driver/sqlite"
	"github.com/eoskit/eos/internal/testdb"
)

// BenchmarkClaimShape weighs shapes of the claim against each other and
// against no claim at all, with the payments handler of BenchmarkInbox
// (one balance update, one ledger insert per event) in every transaction:
//
//   - alo: the handler alone (at-least-once);
//   - driver: eos's claim as the driver runs it (text id, text consumer);
//   - text: the same claim written here, the reference for the next ones;
//   - blob: the id as 16 bytes instead of 36 characters of text;
//   - int: the consumer as an integer;
//   - blob+int: both;
//   - norowid: a WITHOUT ROWID table keyed by (consumer, id), one B-tree
//     instead of a rowid table and a unique index;
//   - empty: a statement that does nothing (SELECT 1) where the claim goes:
//     what any one more statement costs.
//
// Every claim is a prepared statement: the batch as one JSON parameter
// (one value for a single message), as the driver does. The shapes take
// turns batch by batch, in a rotating order, on one database file, so
// that all see the same disk; each reports events/s and its ratio to alo.
// Only the first delivery of each id is measured (no duplicates).
func BenchmarkClaimShape(b *testing.B) {
	for _, batch := range []int{1, 16, 256} {
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) { benchClaimShape(b, batch) })
	}
}

var claimShapes = []claimShape{
	{name: "text", consumer: "bench"},
	{name: "blob", blob: true, consumer: "bench"},
	{name: "int", consumer: 1},
	{name: "blob_int", blob: true, consumer: 1},
	{name: "norowid", consumer: "bench", norowid: true},
}

// claimShape is a claim table and how to claim into it.
type claimShape struct {
	name     string
	blob     bool // ids as 16 bytes
	consumer any  // "bench" or 1
	norowid  bool
}

func (s claimShape) ddl() string {
	cons, id := "TEXT", "TEXT"
	if s.blob {
		id = "BLOB"
	}
	if _, ok := s.consumer.(int); ok {
		cons = "INTEGER"
	}
	t := "claim_" + s.name
	if s.norowid {
		return "CREATE TABLE " + t + " (consumer " + cons + " NOT NULL, id " + id + " NOT NULL, fingerprint BLOB NOT NULL, claimed_at INTEGER NOT NULL, " +
			"PRIMARY KEY (consumer, id)) WITHOUT ROWID"
	}
	return "CREATE TABLE " + t + " (seq INTEGER PRIMARY KEY, consumer " + cons + " NOT NULL, id " + id + " NOT NULL, fingerprint BLOB NOT NULL, " +
		"claimed_at INTEGER NOT NULL, UNIQUE (consumer, id))"
}

// statements prepares the shape's claims of one message and of many.
func (s claimShape) statements(b testing.TB, db *sql.DB) (one, many *sql.Stmt) {
	ins := "INSERT INTO claim_" + s.name + " (consumer, id, fingerprint, claimed_at) "
	id := "substr(j.value, 33)"
	if s.blob {
		id = "unhex(substr(j.value, 33))"
	}
	one, err := db.Prepare(ins + "VALUES (?1, ?3, ?4, ?2) ON CONFLICT (consumer, id) DO NOTHING")
	if err != nil {
		b.Fatal(err)
	}
	many, err = db.Prepare(ins + "SELECT ?1, " + id + ", unhex(substr(j.value, 1, 32)), ?2 FROM json_each(?3) AS j WHERE true ON CONFLICT (consumer, id) DO NOTHING")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { one.Close(); many.Close() })
	return one, many
}

// claim claims ms in tx and checks that every claim was new.
func (s claimShape) claim(ctx context.Context, tx *sql.Tx, one, many *sql.Stmt, ms []eos.Message, now int64) error {
	idOf := func(m eos.Message) any {
		if s.blob {
			u := uuid.MustParse(m.ID)
			return u[:]
		}
		return m.ID
	}
	var res sql.Result
	var err error
	if len(ms) == 1 {
		st := tx.StmtContext(ctx, one)
		defer st.Close()
		res, err = st.ExecContext(ctx, s.consumer, now, idOf(ms[0]), eos.Fingerprint(ms[0]))
	} else {
		// As the driver's claimJSON: each row one string, the hex
		// fingerprint then the id (hex when it is a blob); v7 ids need no
		// escaping.
		js := []byte{'['}
		for i, m := range ms {
			if i > 0 {
				js = append(js, ',')
			}
			js = append(js, '"')
			js = hex.AppendEncode(js, eos.Fingerprint(m))
			if s.blob {
				u := uuid.MustParse(m.ID)
				js = hex.AppendEncode(js, u[:])
			} else {
				js = append(js, m.ID...)
			}
			js = append(js, '"')
		}
		st := tx.StmtContext(ctx, many)
		defer st.Close()
		res, err = st.ExecContext(ctx, s.consumer, now, string(append(js, ']')))
	}
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err != nil || n != int64(len(ms)) {
		return fmt.Errorf("claimed %d of %d (%v)", n, len(ms), err)
	}
	return nil
}

func benchClaimShape(b *testing.B, batch int) {
	e := testdb.SQLite(b)
	d := e.Driver.(*sqlite.Driver)
	pay := testdb.Payments[*sql.Tx]{E: e}
	pay.Setup(b, 1000, 1<<40)
	now := time.Now()
	// claimed begins a transaction and claims in it with claim.
	claimed := func(claim func(ctx context.Context, tx *sql.Tx, ms []eos.Message) error) func(context.Context, []eos.Message) (*sql.Tx, error) {
		return func(ctx context.Context, ms []eos.Message) (*sql.Tx, error) {
			tx, err := d.Begin(ctx)
			if err != nil {
				return nil, err
			}
			if err := claim(ctx, tx, ms); err != nil {
				d.Rollback(ctx, tx)
				return nil, err
			}
			return tx, nil
		}
	}
	turns := []testdb.Turn{
		pay.Turn("alo", claimed(func(context.Context, *sql.Tx, []eos.Message) error { return nil })),
		pay.Turn("driver", claimed(func(ctx context.Context, tx *sql.Tx, ms []eos.Message) error {
			claims := make([]driver.Claim, len(ms))
			for i, m := range ms {
				claims[i] = driver.Claim{ID: m.ID, Fingerprint: eos.Fingerprint(m)}
			}
			_, err := d.Executor(tx).InboxClaim(ctx, "bench", now, claims)
			return err
		})),
	}
	for _, s := range claimShapes {
		e.Script(b, s.ddl())
		one, many := s.statements(b, d.DB())
		turns = append(turns, pay.Turn(s.name, claimed(func(ctx context.Context, tx *sql.Tx, ms []eos.Message) error {
			return s.claim(ctx, tx, one, many, ms, now.UnixMicro())
		})))
	}
	empty, err := d.DB().Prepare("SELECT 1")
	if err != nil {
		b.Fatal(err)
	}
	defer empty.Close()
	turns = append(turns, pay.Turn("empty", claimed(func(ctx context.Context, tx *sql.Tx, _ []eos.Message) error {
		st := tx.StmtContext(ctx, empty)
		defer st.Close()
		var one int
		return st.QueryRowContext(ctx).Scan(&one)
	})))
	testdb.TakeTurns(b, batch, turns)
}

// BenchmarkClaimShapeWAL counts the pages (WAL frames) each commit writes,
// for the shapes of BenchmarkClaimShape and the handler alone (alo), each
// on a database of its own with automatic checkpoints off: the disk's share
// of a claim's cost, measured without timing. It reports wal-frames/commit
// over 200 transactions whatever b.N.
func BenchmarkClaimShapeWAL(b *testing.B) {
	for _, batch := range []int{1, 256} {
		for _, s := range append([]claimShape{{name: "alo"}}, claimShapes...) {
			b.Run(fmt.Sprintf("batch=%d/shape=%s", batch, s.name), func(b *testing.B) {
				b.ReportMetric(walFramesPerCommit(b, s, batch, 200), "wal-frames/commit")
			})
		}
	}
}

func walFramesPerCommit(b *testing.B, s claimShape, batch, commits int) float64 {
	ctx := context.Background()
	e := testdb.SQLite(b)
	d := e.Driver.(*sqlite.Driver)
	pay := testdb.Payments[*sql.Tx]{E: e}
	pay.Setup(b, 1000, 1<<40)
	claim := func(*sql.Tx, []eos.Message) error { return nil }
	if s.name != "alo" {
		e.Script(b, s.ddl())
		one, many := s.statements(b, d.DB())
		claim = func(tx *sql.Tx, ms []eos.Message) error {
			return s.claim(ctx, tx, one, many, ms, time.Now().UnixMicro())
		}
	}
	frames := func() int {
		var busy, log, done int
		if err := d.DB().QueryRow("PRAGMA wal_checkpoint(PASSIVE)").Scan(&busy, &log, &done); err != nil {
			b.Fatal(err)
		}
		return log
	}
	e.Script(b, "PRAGMA wal_autocheckpoint = 0")
	if _, err := d.DB().Exec("PRAGMA wal_checkpoint(TRUNCATE)"); err != nil {
		b.Fatal(err)
	}
	before := frames()
	for range commits {
		ms := make([]eos.Message, batch)
		for i := range ms {
			ms[i] = testdb.Message(eos.NewID(), testdb.Account(i%1000), 1)
		}
		tx, err := d.Begin(ctx)
		if err != nil {
			b.Fatal(err)
		}
		if err := claim(tx, ms); err != nil {
			b.Fatal(err)
		}
		for _, m := range ms {
			if err := pay.Handler(ctx, tx, m); err != nil {
				b.Fatal(err)
			}
		}
		if err := d.Commit(ctx, tx); err != nil {
			b.Fatal(err)
		}
	}
	return float64(frames()-before) / float64(commits)
}
