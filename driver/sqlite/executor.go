package sqlite

import (
	"context"
	"database/sql"
	"encoding/hex"
	"fmt"
	"strings"
	"time"

	"github.com/eoskit/eos/driver"
	"github.com/eoskit/eos/internal/sqlutil"
)

type executor struct {
	d  *Driver
	tx *sql.Tx
}

func (e *executor) InboxClaim(ctx context.Context, consumer string, now time.Time, claims []driver.Claim) ([]bool, error) {
	fresh := make([]bool, len(claims))
	if len(claims) == 0 {
		return fresh, nil
	}
	var res sql.Result
	var err error
	if len(claims) == 1 {
		res, err = e.d.claimOne.exec(ctx, e.tx, consumer, micros(now), claims[0].ID, claims[0].Fingerprint)
	} else {
		// The whole batch travels as one JSON parameter: binding two values
		// per row costs more than SQLite parsing them.
		res, err = e.d.claimMany.exec(ctx, e.tx, consumer, micros(now), claimJSON(claims))
	}
	if err != nil {
		return nil, err
	}
	inserted, err := res.RowsAffected()
	if err != nil {
		return nil, err
	}
	if int(inserted) == len(claims) { // the usual case: all new
		for i := range fresh {
			fresh[i] = true
		}
		return fresh, nil
	}
	if inserted == 0 {
		return fresh, nil
	}
	// Some were claimed before. One statement's inserts take consecutive
	// rowids ending at the last insert id (one writer; seq is never reused
	// while larger ones exist), so the new claims are the last `inserted`.
	last, err := res.LastInsertId()
	if err != nil {
		return nil, err
	}
	rows, err := e.tx.QueryContext(ctx, "SELECT id FROM "+e.d.t.inbox+" WHERE seq > ? AND seq <= ?", last-inserted, last)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	index := make(map[string]int, len(claims))
	for i, c := range claims {
		index[c.ID] = i
	}
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		if i, ok := index[id]; ok {
			fresh[i] = true
		}
	}
	return fresh, rows.Err()
}

// claimJSON encodes claims as a JSON array of strings, each the hex
// fingerprint followed by the id: one flat string per row is the cheapest
// shape for SQLite to take apart. Ids are validated UTF-8 without control
// characters, so only quotes and backslashes need escaping.
func claimJSON(claims []driver.Claim) string {
	n := 2
	for _, c := range claims {
		n += len(c.ID) + 2*len(c.Fingerprint) + 4
	}
	b := make([]byte, 0, n)
	b = append(b, '[')
	for i, c := range claims {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, '"')
		b = hex.AppendEncode(b, c.Fingerprint)
		for j := 0; j < len(c.ID); j++ {
			switch ch := c.ID[j]; {
			case ch == '"' || ch == '\\':
				b = append(b, '\\', ch)
			case ch < 0x20:
				b = append(b, fmt.Sprintf("\\u%04x", ch)...)
			default:
				b = append(b, ch)
			}
		}
		b = append(b, '"')
	}
	return string(append(b, ']'))
}

func (e *executor) InboxFingerprints(ctx context.Context, consumer string, ids []string) (map[string][]byte, error) {
	out := make(map[string][]byte, len(ids))
	if len(ids) == 0 {
		return out, nil
	}
	args := make([]any, 0, len(ids)+1)
	args = append(args, consumer)
	for _, id := range ids {
		args = append(args, id)
	}
	rows, err := e.tx.QueryContext(ctx, "SELECT id, fingerprint FROM "+e.d.t.inbox+" WHERE consumer = ? AND id IN ("+sqlutil.Placeholders(len(ids))+")", args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		var fp []byte
		if err := rows.Scan(&id, &fp); err != nil {
			return nil, err
		}
		out[id] = fp
	}
	return out, rows.Err()
}

func (e *executor) deleteIDs(ctx context.Context, table, consumer string, ids []string) (int, error) {
	if len(ids) == 0 {
		return 0, nil
	}
	args := make([]any, 0, len(ids)+1)
	args = append(args, consumer)
	for _, id := range ids {
		args = append(args, id)
	}
	res, err := e.tx.ExecContext(ctx, "DELETE FROM "+table+" WHERE consumer = ? AND id IN ("+sqlutil.Placeholders(len(ids))+")", args...)
	if err != nil {
		return 0, err
	}
	n, err := res.RowsAffected()
	return int(n), err
}

func (e *executor) InboxUnclaim(ctx context.Context, consumer string, ids []string) error {
	_, err := e.deleteIDs(ctx, e.d.t.inbox, consumer, ids)
	return err
}

func (e *executor) InboxClaimsList(ctx context.Context, consumer, afterID string, limit int) ([]driver.ClaimRecord, error) {
	rows, err := e.tx.QueryContext(ctx, "SELECT id, claimed_at FROM "+e.d.t.inbox+" WHERE consumer = ? AND id > ? ORDER BY id LIMIT ?", consumer, afterID, limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []driver.ClaimRecord
	for rows.Next() {
		var c driver.ClaimRecord
		var at int64
		if err := rows.Scan(&c.ID, &at); err != nil {
			return nil, err
		}
		c.ClaimedAt = fromMicros(at)
		out = append(out, c)
	}
	return out, rows.Err()
}

func (e *executor) SavepointCreate(ctx context.Context, name string) error {
	_, err := e.tx.ExecContext(ctx, "SAVEPOINT "+name)
	return err
}

func (e *executor) SavepointRollback(ctx context.Context, name string) error {
	_, err := e.tx.ExecContext(ctx, "ROLLBACK TO SAVEPOINT "+name)
	return err
}

func (e *executor) SavepointRelease(ctx context.Context, name string) error {
	_, err := e.tx.ExecContext(ctx, "RELEASE SAVEPOINT "+name)
	return err
}

func (e *executor) FailureRecord(ctx context.Context, consumer, id, errText string, now time.Time) (int, error) {
	var n int
	err := e.tx.QueryRowContext(ctx, "INSERT INTO "+e.d.t.failures+" (consumer, id, attempts, last_error, updated_at) VALUES (?, ?, 1, ?, ?) "+
		"ON CONFLICT (consumer, id) DO UPDATE SET attempts = attempts + 1, last_error = excluded.last_error, updated_at = excluded.updated_at RETURNING attempts",
		consumer, id, errText, micros(now)).Scan(&n)
	return n, err
}

func (e *executor) FailuresClear(ctx context.Context, consumer string, ids []string) error {
	_, err := e.deleteIDs(ctx, e.d.t.failures, consumer, ids)
	return err
}

func (e *executor) InboxStats(ctx context.Context, consumer string) (driver.InboxStats, error) {
	var st driver.InboxStats
	err := e.tx.QueryRowContext(ctx, "SELECT (SELECT count(*) FROM "+e.d.t.inbox+" WHERE consumer = ?1),"+
		" (SELECT coalesce(sum(attempts), 0) FROM "+e.d.t.failures+" WHERE consumer = ?1),"+
		" (SELECT count(*) FROM "+e.d.t.deadLetters+" WHERE consumer = ?1),"+
		" (SELECT count(*) FROM "+e.d.t.quarantine+" WHERE consumer = ?1)", consumer).
		Scan(&st.Claims, &st.Attempts, &st.DeadLetters, &st.Quarantined)
	return st, err
}

func (e *executor) QuarantineInsert(ctx context.Context, rows []driver.Quarantined) error {
	return e.insertValues(ctx, "INSERT INTO "+e.d.t.quarantine+" (consumer, id, stored_fingerprint, fingerprint, key, payload, headers, subject, at)", 9, "",
		len(rows), func(args []any, i int) []any {
			r := &rows[i]
			return append(args, r.Consumer, r.ID, r.StoredFingerprint, r.Fingerprint, r.Key, r.Payload, sqlutil.EncodeHeaders(r.Headers), r.Subject, micros(r.At))
		})
}

func (e *executor) QuarantineList(ctx context.Context, consumer string, afterSeq int64, limit int) ([]driver.Quarantined, error) {
	rows, err := e.tx.QueryContext(ctx, "SELECT seq, consumer, id, stored_fingerprint, fingerprint, key, payload, headers, subject, at FROM "+e.d.t.quarantine+" WHERE consumer = ? AND seq > ? ORDER BY seq LIMIT ?", consumer, afterSeq, limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []driver.Quarantined
	for rows.Next() {
		var q driver.Quarantined
		var h []byte
		var at int64
		if err := rows.Scan(&q.Seq, &q.Consumer, &q.ID, &q.StoredFingerprint, &q.Fingerprint, &q.Key, &q.Payload, &h, &q.Subject, &at); err != nil {
			return nil, err
		}
		if q.Headers, err = sqlutil.DecodeHeaders(h); err != nil {
			return nil, err
		}
		q.At = fromMicros(at)
		out = append(out, q)
	}
	return out, rows.Err()
}

func (e *executor) DeadLettersInsert(ctx context.Context, rows []driver.DeadLetter) error {
	return e.insertValues(ctx, "INSERT INTO "+e.d.t.deadLetters+" ("+deadLetterCols+")", 15,
		" ON CONFLICT (consumer, id) DO UPDATE SET attempts = excluded.attempts, last_error = excluded.last_error, at = excluded.at",
		len(rows), func(args []any, i int) []any {
			r := &rows[i]
			return append(args, r.Consumer, r.ID, r.Key, r.Payload, sqlutil.EncodeHeaders(r.Headers), r.Fingerprint, micros(r.CreatedAt), r.Attempts, r.LastError, micros(r.At),
				r.Invalid, r.OriginalID, r.Position, r.PayloadSize, r.Subject)
		})
}

const deadLetterCols = "consumer, id, key, payload, headers, fingerprint, created_at, attempts, last_error, at, invalid, original_id, position, payload_size, subject"

// deadLetters runs q, which returns deadLetterCols, and scans its rows.
func (e *executor) deadLetters(ctx context.Context, q string, args ...any) ([]driver.DeadLetter, error) {
	rows, err := e.tx.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []driver.DeadLetter
	for rows.Next() {
		var r driver.DeadLetter
		var h []byte
		var created, at int64
		if err := rows.Scan(&r.Consumer, &r.ID, &r.Key, &r.Payload, &h, &r.Fingerprint, &created, &r.Attempts, &r.LastError, &at,
			&r.Invalid, &r.OriginalID, &r.Position, &r.PayloadSize, &r.Subject); err != nil {
			return nil, err
		}
		if r.Headers, err = sqlutil.DecodeHeaders(h); err != nil {
			return nil, err
		}
		r.CreatedAt, r.At = fromMicros(created), fromMicros(at)
		out = append(out, r)
	}
	return out, rows.Err()
}

func (e *executor) DeadLettersList(ctx context.Context, consumer, afterID string, limit int) ([]driver.DeadLetter, error) {
	return e.deadLetters(ctx, "SELECT "+deadLetterCols+" FROM "+e.d.t.deadLetters+" WHERE consumer = ? AND id > ? ORDER BY id LIMIT ?", consumer, afterID, limit)
}

func (e *executor) DeadLettersTake(ctx context.Context, consumer string, ids []string) ([]driver.DeadLetter, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	args := make([]any, 0, len(ids)+1)
	args = append(args, consumer)
	for _, id := range ids {
		args = append(args, id)
	}
	return e.deadLetters(ctx, "DELETE FROM "+e.d.t.deadLetters+" WHERE consumer = ? AND id IN ("+sqlutil.Placeholders(len(ids))+") RETURNING "+deadLetterCols, args...)
}

// OutboxInsert inserts the rows in one statement; SQLite inserts the rows
// of a VALUES list in order, so seq follows the slice.
func (e *executor) OutboxInsert(ctx context.Context, rows []driver.OutboxRow) error {
	err := e.insertValues(ctx, "INSERT INTO "+e.d.t.outbox+" (id, topic, key, payload, headers, created_at, enqueued_at)", 7, "",
		len(rows), func(args []any, i int) []any {
			r := &rows[i]
			return append(args, r.ID, r.Topic, r.Key, r.Payload, sqlutil.EncodeHeaders(r.Headers), micros(r.CreatedAt), micros(r.EnqueuedAt))
		})
	if err == nil && len(rows) > 0 {
		e.d.wake.Notify()
	}
	return err
}

// maxParams is SQLite's limit on the parameters of one statement
// (SQLITE_MAX_VARIABLE_NUMBER of the library modernc.org/sqlite builds).
const maxParams = 32766

// insertValues runs insert (an INSERT up to its column list), a VALUES list
// of n rows of cols values each, then suffix: one statement for up to
// maxParams/cols rows, and one more for each such number of rows past it.
// row appends the values of row i to args. A VALUES list binds each value
// as a parameter, which costs less here than one statement per row or
// values carried in one JSON parameter (which a blob would enter as hex).
func (e *executor) insertValues(ctx context.Context, insert string, cols int, suffix string, n int, row func(args []any, i int) []any) error {
	tuple := "(" + sqlutil.Placeholders(cols) + ")"
	per := maxParams / cols
	for start := 0; start < n; start += per {
		end := min(start+per, n)
		var q strings.Builder
		q.Grow(len(insert) + len(suffix) + (end-start)*(len(tuple)+1) + 8)
		q.WriteString(insert)
		q.WriteString(" VALUES ")
		args := make([]any, 0, (end-start)*cols)
		for i := start; i < end; i++ {
			if i > start {
				q.WriteByte(',')
			}
			q.WriteString(tuple)
			args = row(args, i)
		}
		q.WriteString(suffix)
		if _, err := e.tx.ExecContext(ctx, q.String(), args...); err != nil {
			return err
		}
	}
	return nil
}

func (e *executor) OutboxStats(ctx context.Context) (int64, time.Time, error) {
	var n int64
	var oldest sql.NullInt64
	err := e.tx.QueryRowContext(ctx, "SELECT count(*), min(enqueued_at) FROM "+e.d.t.outbox+" WHERE sent_at IS NULL").Scan(&n, &oldest)
	return n, fromMicros(oldest.Int64), err
}

func (e *executor) Compact(ctx context.Context, what driver.Compactable, before time.Time, limit int) (int64, error) {
	var q string
	switch what {
	case driver.CompactInbox:
		// seq follows claim order: look at the oldest rows only, so a
		// round costs at most limit rows however large the table.
		q = "DELETE FROM " + e.d.t.inbox + " WHERE seq IN (SELECT seq FROM " + e.d.t.inbox + " ORDER BY seq LIMIT ?2) AND claimed_at < ?1"
	case driver.CompactFailures:
		q = "DELETE FROM " + e.d.t.failures + " WHERE (consumer, id) IN (SELECT consumer, id FROM " + e.d.t.failures + " WHERE updated_at < ?1 LIMIT ?2)"
	case driver.CompactOutbox:
		q = "DELETE FROM " + e.d.t.outbox + " WHERE seq IN (SELECT seq FROM " + e.d.t.outbox + " WHERE sent_at IS NOT NULL AND sent_at < ?1 ORDER BY seq LIMIT ?2)"
	case driver.CompactQuarantine:
		q = "DELETE FROM " + e.d.t.quarantine + " WHERE seq IN (SELECT seq FROM " + e.d.t.quarantine + " WHERE at < ?1 LIMIT ?2)"
	case driver.CompactDeadLetters:
		q = "DELETE FROM " + e.d.t.deadLetters + " WHERE (consumer, id) IN (SELECT consumer, id FROM " + e.d.t.deadLetters + " WHERE at < ?1 LIMIT ?2)"
	case driver.CompactDedupe:
		q = "DELETE FROM " + e.d.t.dedupe + " WHERE (scope, key) IN (SELECT scope, key FROM " + e.d.t.dedupe + " WHERE expires_at <= ?1 ORDER BY expires_at LIMIT ?2)"
	default:
		return 0, fmt.Errorf("sqlite: unknown compactable %q", what)
	}
	res, err := e.tx.ExecContext(ctx, q, micros(before), limit)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

func (e *executor) OffsetsGet(ctx context.Context, consumer, topic string) (map[int32]int64, error) {
	rows, err := e.tx.QueryContext(ctx, "SELECT partition, next FROM "+e.d.t.offsets+" WHERE consumer = ? AND topic = ?", consumer, topic)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[int32]int64{}
	for rows.Next() {
		var p int32
		var next int64
		if err := rows.Scan(&p, &next); err != nil {
			return nil, err
		}
		out[p] = next
	}
	return out, rows.Err()
}

func (e *executor) OffsetsAdvance(ctx context.Context, consumer string, advances []driver.OffsetAdvance) error {
	now := micros(time.Now())
	for _, a := range advances {
		var res sql.Result
		var err error
		if a.From == driver.OffsetNone {
			res, err = e.tx.ExecContext(ctx, "INSERT INTO "+e.d.t.offsets+" (consumer, topic, partition, next, updated_at) VALUES (?, ?, ?, ?, ?)"+
				" ON CONFLICT (consumer, topic, partition) DO NOTHING", consumer, a.Topic, a.Partition, a.To, now)
		} else {
			res, err = e.tx.ExecContext(ctx, "UPDATE "+e.d.t.offsets+" SET next = ?, updated_at = ? WHERE consumer = ? AND topic = ? AND partition = ? AND next = ?",
				a.To, now, consumer, a.Topic, a.Partition, a.From)
		}
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n != 1 {
			return offsetConflict(consumer, a)
		}
	}
	return nil
}

func offsetConflict(consumer string, a driver.OffsetAdvance) error {
	return fmt.Errorf("sqlite: consumer %q, %s/%d: no longer at offset %d: %w", consumer, a.Topic, a.Partition, a.From, driver.ErrOffsetConflict)
}
