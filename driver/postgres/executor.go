package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/eoskit/eos/driver"
	"github.com/eoskit/eos/internal/sqlutil"
)

// executor runs eos's statements in one transaction. Every method is one
// statement, whatever the number of rows: lists travel as arrays.
type executor struct {
	c *core
	q tx
}

func (e *executor) InboxClaim(ctx context.Context, consumer string, now time.Time, claims []driver.Claim) ([]bool, error) {
	fresh := make([]bool, len(claims))
	if len(claims) == 0 {
		return fresh, nil
	}
	index := make(map[string]int, len(claims))
	ids := make([]string, len(claims))
	fps := make([][]byte, len(claims))
	for i, c := range claims {
		index[c.ID] = i
		ids[i], fps[i] = c.ID, c.Fingerprint
	}
	// ORDER BY: concurrent claimers take the unique-index entries in one
	// global order, so overlapping batches wait on each other instead of
	// deadlocking.
	err := e.q.query(ctx, "INSERT INTO "+e.c.t.inbox+" (consumer, id, fingerprint, claimed_at) "+
		"SELECT $1, u.id, u.fp, $2 FROM unnest($3::text[], $4::bytea[]) AS u(id, fp) ORDER BY u.id "+
		"ON CONFLICT (consumer, id) DO NOTHING RETURNING id",
		[]any{consumer, now, ids, fps}, func(scan scanFunc) error {
			var id string
			if err := scan(&id); err != nil {
				return err
			}
			fresh[index[id]] = true
			return nil
		})
	if err != nil {
		return nil, err
	}
	return fresh, nil
}

func (e *executor) InboxFingerprints(ctx context.Context, consumer string, ids []string) (map[string][]byte, error) {
	out := make(map[string][]byte, len(ids))
	if len(ids) == 0 {
		return out, nil
	}
	err := e.q.query(ctx, "SELECT id, fingerprint FROM "+e.c.t.inbox+" WHERE consumer = $1 AND id = ANY($2)",
		[]any{consumer, ids}, func(scan scanFunc) error {
			var id string
			var fp []byte
			if err := scan(&id, &fp); err != nil {
				return err
			}
			out[id] = fp
			return nil
		})
	return out, err
}

func (e *executor) deleteIDs(ctx context.Context, table, consumer string, ids []string) (int, error) {
	if len(ids) == 0 {
		return 0, nil
	}
	n, err := e.q.exec(ctx, "DELETE FROM "+table+" WHERE consumer = $1 AND id = ANY($2)", consumer, ids)
	return int(n), err
}

func (e *executor) InboxUnclaim(ctx context.Context, consumer string, ids []string) error {
	_, err := e.deleteIDs(ctx, e.c.t.inbox, consumer, ids)
	return err
}

func (e *executor) InboxClaimsList(ctx context.Context, consumer, afterID string, limit int) ([]driver.ClaimRecord, error) {
	var out []driver.ClaimRecord
	err := e.q.query(ctx, "SELECT id, claimed_at FROM "+e.c.t.inbox+" WHERE consumer = $1 AND id > $2 ORDER BY id LIMIT $3",
		[]any{consumer, afterID, limit}, func(scan scanFunc) error {
			var c driver.ClaimRecord
			if err := scan(&c.ID, &c.ClaimedAt); err != nil {
				return err
			}
			out = append(out, c)
			return nil
		})
	return out, err
}

func (e *executor) SavepointCreate(ctx context.Context, name string) error {
	_, err := e.q.exec(ctx, "SAVEPOINT "+name)
	return err
}

func (e *executor) SavepointRollback(ctx context.Context, name string) error {
	_, err := e.q.exec(ctx, "ROLLBACK TO SAVEPOINT "+name)
	return err
}

func (e *executor) SavepointRelease(ctx context.Context, name string) error {
	_, err := e.q.exec(ctx, "RELEASE SAVEPOINT "+name)
	return err
}

func (e *executor) FailureRecord(ctx context.Context, consumer, id, errText string, now time.Time) (int, error) {
	var n int
	err := e.q.query(ctx, "INSERT INTO "+e.c.t.failures+" AS f (consumer, id, attempts, last_error, updated_at) VALUES ($1, $2, 1, $3, $4) "+
		"ON CONFLICT (consumer, id) DO UPDATE SET attempts = f.attempts + 1, last_error = excluded.last_error, updated_at = excluded.updated_at "+
		"RETURNING attempts",
		[]any{consumer, id, errText, now}, func(scan scanFunc) error { return scan(&n) })
	return n, err
}

func (e *executor) FailuresClear(ctx context.Context, consumer string, ids []string) error {
	_, err := e.deleteIDs(ctx, e.c.t.failures, consumer, ids)
	return err
}

func (e *executor) InboxStats(ctx context.Context, consumer string) (driver.InboxStats, error) {
	var st driver.InboxStats
	err := e.q.query(ctx, "SELECT (SELECT count(*) FROM "+e.c.t.inbox+" WHERE consumer = $1),"+
		" (SELECT coalesce(sum(attempts), 0) FROM "+e.c.t.failures+" WHERE consumer = $1),"+
		" (SELECT count(*) FROM "+e.c.t.deadLetters+" WHERE consumer = $1),"+
		" (SELECT count(*) FROM "+e.c.t.quarantine+" WHERE consumer = $1)",
		[]any{consumer}, func(scan scanFunc) error { return scan(&st.Claims, &st.Attempts, &st.DeadLetters, &st.Quarantined) })
	return st, err
}

func (e *executor) QuarantineInsert(ctx context.Context, rows []driver.Quarantined) error {
	if len(rows) == 0 {
		return nil
	}
	n := len(rows)
	consumers, ids, keys, headers, subjects := make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	stored, fps, payloads, at := make([][]byte, n), make([][]byte, n), make([][]byte, n), make([]time.Time, n)
	for i, r := range rows {
		consumers[i], ids[i], keys[i], headers[i], subjects[i] = r.Consumer, r.ID, r.Key, headerText(r.Headers), r.Subject
		stored[i], fps[i], payloads[i], at[i] = r.StoredFingerprint, r.Fingerprint, r.Payload, r.At
	}
	_, err := e.q.exec(ctx, "INSERT INTO "+e.c.t.quarantine+" (consumer, id, stored_fingerprint, fingerprint, key, payload, headers, subject, at) "+
		"SELECT c, id, sfp, fp, k, p, NULLIF(h, ''), s, at "+
		"FROM unnest($1::text[], $2::text[], $3::bytea[], $4::bytea[], $5::text[], $6::bytea[], $7::text[], $8::text[], $9::timestamptz[]) "+
		"WITH ORDINALITY AS u(c, id, sfp, fp, k, p, h, s, at, n) ORDER BY n",
		consumers, ids, stored, fps, keys, payloads, headers, subjects, at)
	return err
}

func (e *executor) QuarantineList(ctx context.Context, consumer string, afterSeq int64, limit int) ([]driver.Quarantined, error) {
	var out []driver.Quarantined
	err := e.q.query(ctx, "SELECT seq, consumer, id, stored_fingerprint, fingerprint, key, payload, headers, subject, at FROM "+e.c.t.quarantine+
		" WHERE consumer = $1 AND seq > $2 ORDER BY seq LIMIT $3", []any{consumer, afterSeq, limit}, func(scan scanFunc) error {
		var q driver.Quarantined
		var h []byte
		if err := scan(&q.Seq, &q.Consumer, &q.ID, &q.StoredFingerprint, &q.Fingerprint, &q.Key, &q.Payload, &h, &q.Subject, &q.At); err != nil {
			return err
		}
		var err error
		q.Headers, err = sqlutil.DecodeHeaders(h)
		q.At = q.At.UTC()
		out = append(out, q)
		return err
	})
	return out, err
}

func (e *executor) DeadLettersInsert(ctx context.Context, rows []driver.DeadLetter) error {
	if len(rows) == 0 {
		return nil
	}
	n := len(rows)
	consumers, ids, keys, headers, errs := make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	payloads, fps, created, at, attempts := make([][]byte, n), make([][]byte, n), make([]time.Time, n), make([]time.Time, n), make([]int, n)
	invalid, origIDs, positions, sizes, subjects := make([]bool, n), make([]string, n), make([]string, n), make([]int64, n), make([]string, n)
	for i, r := range rows {
		consumers[i], ids[i], keys[i], headers[i], errs[i] = r.Consumer, r.ID, r.Key, headerText(r.Headers), r.LastError
		payloads[i], fps[i], created[i], at[i], attempts[i] = r.Payload, r.Fingerprint, r.CreatedAt, r.At, r.Attempts
		invalid[i], origIDs[i], positions[i], sizes[i], subjects[i] = r.Invalid, r.OriginalID, r.Position, int64(r.PayloadSize), r.Subject
	}
	_, err := e.q.exec(ctx, "INSERT INTO "+e.c.t.deadLetters+" ("+deadLetterCols+") "+
		"SELECT c, id, k, p, NULLIF(h, ''), fp, ca, a, le, at, inv, oid, pos, ps, s "+
		"FROM unnest($1::text[], $2::text[], $3::text[], $4::bytea[], $5::text[], $6::bytea[], $7::timestamptz[], $8::integer[], $9::text[], $10::timestamptz[], "+
		"$11::boolean[], $12::text[], $13::text[], $14::bigint[], $15::text[]) "+
		"AS u(c, id, k, p, h, fp, ca, a, le, at, inv, oid, pos, ps, s) "+
		"ON CONFLICT (consumer, id) DO UPDATE SET attempts = excluded.attempts, last_error = excluded.last_error, at = excluded.at",
		consumers, ids, keys, payloads, headers, fps, created, attempts, errs, at, invalid, origIDs, positions, sizes, subjects)
	return err
}

const deadLetterCols = "consumer, id, key, payload, headers, fingerprint, created_at, attempts, last_error, at, invalid, original_id, position, payload_size, subject"

// deadLetters runs q, which returns deadLetterCols, and scans its rows.
func (e *executor) deadLetters(ctx context.Context, q string, args ...any) ([]driver.DeadLetter, error) {
	var out []driver.DeadLetter
	err := e.q.query(ctx, q, args, func(scan scanFunc) error {
		var r driver.DeadLetter
		var h []byte
		var size int64
		if err := scan(&r.Consumer, &r.ID, &r.Key, &r.Payload, &h, &r.Fingerprint, &r.CreatedAt, &r.Attempts, &r.LastError, &r.At,
			&r.Invalid, &r.OriginalID, &r.Position, &size, &r.Subject); err != nil {
			return err
		}
		var err error
		r.Headers, err = sqlutil.DecodeHeaders(h)
		r.CreatedAt, r.At, r.PayloadSize = r.CreatedAt.UTC(), r.At.UTC(), int(size)
		out = append(out, r)
		return err
	})
	return out, err
}

func (e *executor) DeadLettersList(ctx context.Context, consumer, afterID string, limit int) ([]driver.DeadLetter, error) {
	return e.deadLetters(ctx, "SELECT "+deadLetterCols+" FROM "+e.c.t.deadLetters+" WHERE consumer = $1 AND id > $2 ORDER BY id LIMIT $3", consumer, afterID, limit)
}

// DeadLettersTake deletes and returns in one statement: a row that another
// transaction deletes first is waited for and then not returned.
func (e *executor) DeadLettersTake(ctx context.Context, consumer string, ids []string) ([]driver.DeadLetter, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	return e.deadLetters(ctx, "DELETE FROM "+e.c.t.deadLetters+" WHERE consumer = $1 AND id = ANY($2) RETURNING "+deadLetterCols, consumer, ids)
}

// OutboxInsert inserts the rows in order (seq follows the slice) and queues a
// notification on the relays' channel in the same statement: PostgreSQL
// delivers it when, and only if, the transaction commits.
func (e *executor) OutboxInsert(ctx context.Context, rows []driver.OutboxRow) error {
	if len(rows) == 0 {
		return nil
	}
	n := len(rows)
	ids, topics, keys, headers := make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	payloads, created, enqueued := make([][]byte, n), make([]time.Time, n), make([]time.Time, n)
	for i, r := range rows {
		ids[i], topics[i], keys[i], headers[i] = r.ID, r.Topic, r.Key, headerText(r.Headers)
		payloads[i], created[i], enqueued[i] = r.Payload, r.CreatedAt, r.EnqueuedAt
	}
	_, err := e.q.exec(ctx, "WITH ins AS (INSERT INTO "+e.c.t.outbox+" (id, topic, key, payload, headers, created_at, enqueued_at) "+
		"SELECT id, t, k, p, NULLIF(h, ''), ca, ea "+
		"FROM unnest($1::text[], $2::text[], $3::text[], $4::bytea[], $5::text[], $6::timestamptz[], $7::timestamptz[]) "+
		"WITH ORDINALITY AS u(id, t, k, p, h, ca, ea, n) ORDER BY n) "+
		"SELECT pg_notify($8, '')",
		ids, topics, keys, payloads, headers, created, enqueued, e.c.cfg.NotifyChannel)
	return err
}

func (e *executor) OutboxStats(ctx context.Context) (int64, time.Time, error) {
	var n int64
	var oldest *time.Time
	err := e.q.query(ctx, "SELECT count(*), min(enqueued_at) FROM "+e.c.t.outbox+" WHERE sent_at IS NULL", nil,
		func(scan scanFunc) error { return scan(&n, &oldest) })
	if err != nil || oldest == nil {
		return n, time.Time{}, err
	}
	return n, oldest.UTC(), nil
}

// Compact deletes by ctid, through a bounded subquery: one round costs at
// most limit rows however large the table.
func (e *executor) Compact(ctx context.Context, what driver.Compactable, before time.Time, limit int) (int64, error) {
	var table, cond string
	switch what {
	case driver.CompactInbox:
		table, cond = e.c.t.inbox, "claimed_at < $1"
	case driver.CompactFailures:
		table, cond = e.c.t.failures, "updated_at < $1"
	case driver.CompactOutbox:
		table, cond = e.c.t.outbox, "sent_at < $1"
	case driver.CompactQuarantine:
		table, cond = e.c.t.quarantine, "at < $1"
	case driver.CompactDeadLetters:
		table, cond = e.c.t.deadLetters, "at < $1"
	case driver.CompactDedupe:
		table, cond = e.c.t.dedupe, "expires_at <= $1"
	default:
		return 0, fmt.Errorf("postgres: unknown compactable %q", what)
	}
	return e.q.exec(ctx, "DELETE FROM "+table+" WHERE ctid = ANY(ARRAY(SELECT ctid FROM "+table+" WHERE "+cond+" LIMIT $2))", before, limit)
}

// headerText returns headers as JSON text, "" (stored as NULL) when there
// are none.
func headerText(h map[string]string) string { return string(sqlutil.EncodeHeaders(h)) }

func (e *executor) OffsetsGet(ctx context.Context, consumer, topic string) (map[int32]int64, error) {
	out := map[int32]int64{}
	err := e.q.query(ctx, "SELECT partition, next FROM "+e.c.t.offsets+" WHERE consumer = $1 AND topic = $2",
		[]any{consumer, topic}, func(scan scanFunc) error {
			var p int32
			var next int64
			if err := scan(&p, &next); err != nil {
				return err
			}
			out[p] = next
			return nil
		})
	return out, err
}

func (e *executor) OffsetsAdvance(ctx context.Context, consumer string, advances []driver.OffsetAdvance) error {
	for _, a := range advances {
		var n int64
		var err error
		if a.From == driver.OffsetNone {
			n, err = e.q.exec(ctx, "INSERT INTO "+e.c.t.offsets+" (consumer, topic, partition, next) VALUES ($1, $2, $3, $4)"+
				" ON CONFLICT (consumer, topic, partition) DO NOTHING", consumer, a.Topic, a.Partition, a.To)
		} else {
			n, err = e.q.exec(ctx, "UPDATE "+e.c.t.offsets+" SET next = $1, updated_at = now() WHERE consumer = $2 AND topic = $3 AND partition = $4 AND next = $5",
				a.To, consumer, a.Topic, a.Partition, a.From)
		}
		if err != nil {
			return err
		}
		if n != 1 {
			return fmt.Errorf("postgres: consumer %q, %s/%d: no longer at offset %d: %w", consumer, a.Topic, a.Partition, a.From, driver.ErrOffsetConflict)
		}
	}
	return nil
}
