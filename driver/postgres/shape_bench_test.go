package postgres_test

import (
	"context"
	"encoding/hex"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/eoskit/eos"
	"github.com/eoskit/eos/driver"
	"github.com/eoskit/eos/driver/postgres"
	"github.com/eoskit/eos/internal/testdb"
	"github.com/eoskit/eos/internal/testdb/engines"
)

// BenchmarkClaimShape weighs shapes of the claim against each other and
// against no claim at all, with the payments handler of BenchmarkInbox
// (one balance update, one ledger insert per event) in every transaction:
//
//   - alo: the handler alone (at-least-once);
//   - driver: eos's claim as the driver runs it (text id, text consumer);
//   - text: the same claim written here, the reference for the next ones;
//   - uuid: the id in a uuid column (16 bytes instead of 37);
//   - int: the consumer as an integer;
//   - uuid+int: both;
//   - prepared (batches up to 64): the one-round-trip claim EXECUTEs a
//     statement prepared on each connection instead of an INSERT parsed and
//     planned every time;
//   - unprepared (batches past 64): the text claim parsed and planned on
//     every call, which pgx's statement cache spares the driver;
//   - pipelined (batches past 64): BEGIN and the claim sent together (one
//     round trip instead of two);
//   - empty: a statement that does nothing (SELECT 1) where the claim goes:
//     what any one more statement costs.
//
// Batches of up to 64 begin and claim in one round trip, as the driver
// does (driver.ClaimBeginner); larger ones claim with unnest. The shapes
// take turns batch by batch, in a rotating order, on one database, so that
// all see the same machine state; each reports events/s and its ratio to
// alo. Only the first delivery of each id is measured (no duplicates).
func BenchmarkClaimShape(b *testing.B) {
	for _, batch := range []int{1, 16, 256} {
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) { benchClaimShape(b, batch) })
	}
}

// claimShape is a claim table and how to claim into it.
type claimShape struct {
	name, idType, consType, consumer string // consumer: a SQL literal
	unprepared                       bool
}

func (s claimShape) table() string {
	return "claim_" + strings.NewReplacer("+", "_", "-", "_").Replace(s.name)
}

func (s claimShape) ddl() string {
	return "CREATE TABLE " + s.table() + " (consumer " + s.consType + " NOT NULL, id " + s.idType + " NOT NULL, fingerprint bytea NOT NULL, " +
		"claimed_at timestamptz NOT NULL, PRIMARY KEY (consumer, id)); CREATE INDEX ON " + s.table() + " USING brin (claimed_at)"
}

// begin begins a transaction that has claimed ms.
func (s claimShape) begin(ctx context.Context, d *postgres.Driver, ms []eos.Message, now time.Time) (pgx.Tx, error) {
	isUUID := s.idType == "uuid"
	if len(ms) <= 64 {
		var q strings.Builder
		q.WriteString("BEGIN; INSERT INTO " + s.table() + " (consumer, id, fingerprint, claimed_at) VALUES ")
		ts := postgres.Literal(now.UTC().Format("2006-01-02 15:04:05.999999Z07:00")) + "::timestamptz"
		for i, m := range ms {
			if i > 0 {
				q.WriteByte(',')
			}
			id := postgres.Literal(m.ID)
			if isUUID {
				id += "::uuid"
			}
			q.WriteString("(" + s.consumer + "," + id + ",decode('" + hex.EncodeToString(eos.Fingerprint(m)) + "','hex')," + ts + ")")
		}
		return d.Pool().BeginTx(ctx, pgx.TxOptions{BeginQuery: q.String()})
	}
	tx, err := d.Begin(ctx)
	if err != nil {
		return nil, err
	}
	fps := make([][]byte, len(ms))
	var ids any
	if isUUID {
		us := make([][16]byte, len(ms))
		for i, m := range ms {
			us[i] = uuid.MustParse(m.ID)
			fps[i] = eos.Fingerprint(m)
		}
		ids = us
	} else {
		ids, fps = claimArrays(ms)
	}
	args := []any{now, ids, fps}
	if s.unprepared {
		args = append([]any{pgx.QueryExecModeExec}, args...)
	}
	elem := "text"
	if isUUID {
		elem = "uuid"
	}
	rows, err := tx.Query(ctx, "INSERT INTO "+s.table()+" (consumer, id, fingerprint, claimed_at) SELECT "+s.consumer+", u.id, u.fp, $1 "+
		"FROM unnest($2::"+elem+"[], $3::bytea[]) AS u(id, fp) ORDER BY u.id ON CONFLICT (consumer, id) DO NOTHING RETURNING id", args...)
	if err != nil {
		tx.Rollback(ctx)
		return nil, err
	}
	n := 0
	for rows.Next() {
		n++
	}
	if err := rows.Err(); err != nil || n != len(ms) {
		tx.Rollback(ctx)
		return nil, fmt.Errorf("claimed %d of %d: %v", n, len(ms), err)
	}
	return tx, nil
}

func benchClaimShape(b *testing.B, batch int) {
	e := engines.Postgres(b)
	d := e.Driver.(*postgres.Driver)
	pay := testdb.Payments[pgx.Tx]{E: e}
	pay.Setup(b, 1000, 1<<40)
	shapes := []claimShape{
		{name: "text", idType: `text COLLATE "C"`, consType: "text", consumer: "'bench'"},
		{name: "uuid", idType: "uuid", consType: "text", consumer: "'bench'"},
		{name: "int", idType: `text COLLATE "C"`, consType: "integer", consumer: "1"},
		{name: "uuid+int", idType: "uuid", consType: "integer", consumer: "1"},
	}
	if batch > 64 {
		shapes = append(shapes, claimShape{name: "unprepared", idType: `text COLLATE "C"`, consType: "text", consumer: "'bench'", unprepared: true})
	}
	now := time.Now()
	turns := []testdb.Turn{
		pay.Turn("alo", func(ctx context.Context, _ []eos.Message) (pgx.Tx, error) { return d.Begin(ctx) }),
		pay.Turn("driver", func(ctx context.Context, ms []eos.Message) (pgx.Tx, error) { return driverClaim(ctx, d, ms, now) }),
	}
	for _, s := range shapes {
		e.Script(b, s.ddl())
		turns = append(turns, pay.Turn(s.name, func(ctx context.Context, ms []eos.Message) (pgx.Tx, error) { return s.begin(ctx, d, ms, now) }))
	}
	if batch <= 64 {
		turns = append(turns, pay.Turn("prepared", preparedClaim(b, e, d, now)),
			pay.Turn("empty", func(ctx context.Context, _ []eos.Message) (pgx.Tx, error) {
				return d.Pool().BeginTx(ctx, pgx.TxOptions{BeginQuery: "BEGIN; SELECT 1"})
			}))
	} else {
		turns = append(turns, pay.Turn("pipelined", pipelinedClaim(b, e, d, now)),
			pay.Turn("empty", func(ctx context.Context, _ []eos.Message) (pgx.Tx, error) {
				tx, err := d.Begin(ctx)
				if err == nil {
					_, err = tx.Exec(ctx, "SELECT 1")
				}
				return tx, err
			}))
	}
	testdb.TakeTurns(b, batch, turns)
}

// driverClaim begins and claims ms as the inbox does with this driver.
func driverClaim(ctx context.Context, d *postgres.Driver, ms []eos.Message, now time.Time) (pgx.Tx, error) {
	claims := make([]driver.Claim, len(ms))
	for i, m := range ms {
		claims[i] = driver.Claim{ID: m.ID, Fingerprint: eos.Fingerprint(m)}
	}
	tx, ok, err := d.BeginClaim(ctx, "bench", now, claims)
	if err != nil || ok {
		return tx, err
	}
	if tx, err = d.Begin(ctx); err != nil {
		return nil, err
	}
	if _, err := d.Executor(tx).InboxClaim(ctx, "bench", now, claims); err != nil {
		tx.Rollback(ctx)
		return nil, err
	}
	return tx, nil
}

// claimArrays returns the ids and fingerprints of ms, for an unnest claim.
func claimArrays(ms []eos.Message) ([]string, [][]byte) {
	ids, fps := make([]string, len(ms)), make([][]byte, len(ms))
	for i, m := range ms {
		ids[i], fps[i] = m.ID, eos.Fingerprint(m)
	}
	return ids, fps
}

const claimPrepared = "claim_prepared"

// preparedClaim is the one-round-trip claim of batches up to 64 with the
// INSERT prepared once on every connection of the pool: BEGIN and an
// EXECUTE in one simple-protocol query.
func preparedClaim(b *testing.B, e *testdb.Engine[pgx.Tx], d *postgres.Driver, now time.Time) func(context.Context, []eos.Message) (pgx.Tx, error) {
	ctx := context.Background()
	e.Script(b, "CREATE TABLE "+claimPrepared+` (consumer text NOT NULL, id text COLLATE "C" NOT NULL, fingerprint bytea NOT NULL, `+
		"claimed_at timestamptz NOT NULL, PRIMARY KEY (consumer, id)); CREATE INDEX ON "+claimPrepared+" USING brin (claimed_at)")
	var conns []*pgxpool.Conn
	for range d.Pool().Config().MaxConns {
		c, err := d.Pool().Acquire(ctx)
		if err != nil {
			b.Fatal(err)
		}
		conns = append(conns, c)
		if _, err := c.Exec(ctx, "PREPARE eos_claim(text, text[], bytea[], timestamptz) AS INSERT INTO "+claimPrepared+
			" (consumer, id, fingerprint, claimed_at) SELECT $1, u.id, u.fp, $4 FROM unnest($2, $3) AS u(id, fp) ORDER BY u.id"); err != nil {
			b.Fatal(err)
		}
	}
	for _, c := range conns {
		c.Release()
	}
	ts := postgres.Literal(now.UTC().Format("2006-01-02 15:04:05.999999Z07:00")) + "::timestamptz"
	return func(ctx context.Context, ms []eos.Message) (pgx.Tx, error) {
		var ids, fps []string
		for _, m := range ms {
			ids = append(ids, postgres.Literal(m.ID))
			fps = append(fps, "decode('"+hex.EncodeToString(eos.Fingerprint(m))+"','hex')")
		}
		return d.Pool().BeginTx(ctx, pgx.TxOptions{BeginQuery: "BEGIN; EXECUTE eos_claim('bench', ARRAY[" + strings.Join(ids, ",") + "], ARRAY[" +
			strings.Join(fps, ",") + "], " + ts + ")"})
	}
}

// pipelinedClaim sends BEGIN and the claim (prepared, with parameters) in
// one round trip, on a connection it holds until the commit.
func pipelinedClaim(b *testing.B, e *testdb.Engine[pgx.Tx], d *postgres.Driver, now time.Time) func(context.Context, []eos.Message) (pgx.Tx, error) {
	const table = "claim_pipelined"
	e.Script(b, "CREATE TABLE "+table+` (consumer text NOT NULL, id text COLLATE "C" NOT NULL, fingerprint bytea NOT NULL, `+
		"claimed_at timestamptz NOT NULL, PRIMARY KEY (consumer, id)); CREATE INDEX ON "+table+" USING brin (claimed_at)")
	return func(ctx context.Context, ms []eos.Message) (pgx.Tx, error) {
		c, err := d.Pool().Acquire(ctx)
		if err != nil {
			return nil, err
		}
		ids, fps := claimArrays(ms)
		var batch pgx.Batch
		batch.Queue("BEGIN")
		batch.Queue("INSERT INTO "+table+" (consumer, id, fingerprint, claimed_at) SELECT 'bench', u.id, u.fp, $1 "+
			"FROM unnest($2::text[], $3::bytea[]) AS u(id, fp) ORDER BY u.id ON CONFLICT (consumer, id) DO NOTHING RETURNING id", now, ids, fps)
		if err := c.SendBatch(ctx, &batch).Close(); err != nil {
			c.Release()
			return nil, err
		}
		return &connTx{c: c}, nil
	}
}

// connTx is the part of pgx.Tx the payments handler and the benchmark use,
// over a connection whose transaction was begun by hand.
type connTx struct {
	pgx.Tx
	c *pgxpool.Conn
}

func (t *connTx) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	return t.c.Exec(ctx, sql, args...)
}

func (t *connTx) Commit(ctx context.Context) error { return t.end(ctx, "COMMIT") }

func (t *connTx) Rollback(ctx context.Context) error { return t.end(ctx, "ROLLBACK") }

// end ends the transaction and gives the connection back, once; later
// calls do nothing.
func (t *connTx) end(ctx context.Context, sql string) error {
	if t.c == nil {
		return nil
	}
	defer func() { t.c.Release(); t.c = nil }()
	_, err := t.c.Exec(ctx, sql)
	return err
}
