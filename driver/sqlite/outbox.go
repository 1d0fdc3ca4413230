package sqlite

import (
	"cmp"
	"context"
	"database/sql"
	"slices"
	"strings"
	"time"

	"github.com/eoskit/eos/driver"
	"github.com/eoskit/eos/internal/sqlutil"
)

const (
	outboxCols = "seq, id, topic, key, payload, headers, created_at, enqueued_at"
	parkedCols = outboxCols + ", parked_at, parked_error"
)

// OutboxClaim reads the oldest unsent rows that are not parked and not
// behind a parked row of their key. The read runs on the writer connection,
// after any transaction in flight; the publish that follows holds no lock,
// and Complete records the outcome in a short transaction.
func (d *Driver) OutboxClaim(ctx context.Context, limit int) (driver.OutboxBatch, error) {
	if !d.relay.TryLock() {
		return &outboxBatch{d: d}, nil
	}
	b := &outboxBatch{d: d, locked: true}
	rows, err := d.db.QueryContext(ctx, "SELECT "+outboxCols+" FROM "+d.t.outbox+" o WHERE sent_at IS NULL AND parked_at IS NULL "+
		"AND (key = '' OR NOT EXISTS (SELECT 1 FROM "+d.t.outbox+" p WHERE p.key = o.key AND p.parked_at IS NOT NULL AND p.seq < o.seq)) "+
		"ORDER BY seq LIMIT ?", limit)
	if err == nil {
		err = scanOutbox(rows, func(r driver.ParkedOutboxRow) { b.rows = append(b.rows, r.OutboxRow) })
	}
	if err != nil {
		b.Abort(ctx)
		return nil, err
	}
	return b, nil
}

// scanOutbox calls add for each row of rows, which select outboxCols or
// parkedCols, and closes rows.
func scanOutbox(rows *sql.Rows, add func(driver.ParkedOutboxRow)) error {
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return err
	}
	for rows.Next() {
		var r driver.ParkedOutboxRow
		var h []byte
		var created, enq int64
		var parkedAt sql.NullInt64
		var parkedErr sql.NullString
		dest := []any{&r.Seq, &r.ID, &r.Topic, &r.Key, &r.Payload, &h, &created, &enq, &parkedAt, &parkedErr}
		if err := rows.Scan(dest[:len(cols)]...); err != nil {
			return err
		}
		if r.Headers, err = sqlutil.DecodeHeaders(h); err != nil {
			return err
		}
		r.CreatedAt, r.EnqueuedAt = fromMicros(created), fromMicros(enq)
		r.ParkedAt, r.Error = fromMicros(parkedAt.Int64), parkedErr.String
		add(r)
	}
	return rows.Err()
}

type outboxBatch struct {
	d      *Driver
	rows   []driver.OutboxRow
	locked bool
}

func (b *outboxBatch) Rows() []driver.OutboxRow { return b.rows }

// Complete marks (or deletes) the sent rows and parks the parked ones in one
// transaction.
func (b *outboxBatch) Complete(ctx context.Context, o driver.OutboxOutcome) error {
	defer b.release()
	if len(o.Sent) == 0 && len(o.Parked) == 0 {
		return nil
	}
	tx, err := b.d.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if len(o.Sent) > 0 {
		args := make([]any, 0, len(o.Sent)+1)
		var q strings.Builder
		if o.DeleteSent {
			q.WriteString("DELETE FROM " + b.d.t.outbox + " WHERE seq IN (")
		} else {
			q.WriteString("UPDATE " + b.d.t.outbox + " SET sent_at = ? WHERE seq IN (")
			args = append(args, micros(o.At))
		}
		q.WriteString(sqlutil.Placeholders(len(o.Sent)) + ")")
		args = append(args, seqArgs(o.Sent)...)
		if _, err := tx.ExecContext(ctx, q.String(), args...); err != nil {
			return err
		}
	}
	// One statement per parked row: parking is the exception.
	for _, p := range o.Parked {
		if _, err := tx.ExecContext(ctx, "UPDATE "+b.d.t.outbox+" SET parked_at = ?, parked_error = ? WHERE seq = ? AND sent_at IS NULL",
			micros(o.At), p.Error, p.Seq); err != nil {
			return err
		}
	}
	return tx.Commit()
}

func (b *outboxBatch) Abort(context.Context) error {
	b.release()
	return nil
}

func (b *outboxBatch) release() {
	if b.locked {
		b.locked = false
		b.d.relay.Unlock()
	}
}

func (e *executor) OutboxParkedStats(ctx context.Context) (int64, time.Time, error) {
	var n int64
	var oldest sql.NullInt64
	err := e.tx.QueryRowContext(ctx, "SELECT count(*), min(parked_at) FROM "+e.d.t.outbox+" WHERE parked_at IS NOT NULL").Scan(&n, &oldest)
	return n, fromMicros(oldest.Int64), err
}

func (e *executor) OutboxUnsentList(ctx context.Context, afterSeq int64, limit int) ([]driver.OutboxRow, error) {
	rows, err := e.tx.QueryContext(ctx, "SELECT "+outboxCols+" FROM "+e.d.t.outbox+" WHERE sent_at IS NULL AND parked_at IS NULL AND seq > ? ORDER BY seq LIMIT ?", afterSeq, limit)
	if err != nil {
		return nil, err
	}
	var out []driver.OutboxRow
	err = scanOutbox(rows, func(r driver.ParkedOutboxRow) { out = append(out, r.OutboxRow) })
	return out, err
}

func (e *executor) OutboxParkedList(ctx context.Context, afterSeq int64, limit int) ([]driver.ParkedOutboxRow, error) {
	rows, err := e.tx.QueryContext(ctx, "SELECT "+parkedCols+" FROM "+e.d.t.outbox+" WHERE parked_at IS NOT NULL AND seq > ? ORDER BY seq LIMIT ?", afterSeq, limit)
	if err != nil {
		return nil, err
	}
	var out []driver.ParkedOutboxRow
	err = scanOutbox(rows, func(r driver.ParkedOutboxRow) { out = append(out, r) })
	return out, err
}

func (e *executor) OutboxParkedRequeue(ctx context.Context, seqs []int64) (int, error) {
	if len(seqs) == 0 {
		return 0, nil
	}
	res, err := e.tx.ExecContext(ctx, "UPDATE "+e.d.t.outbox+" SET parked_at = NULL, parked_error = NULL WHERE parked_at IS NOT NULL AND seq IN ("+
		sqlutil.Placeholders(len(seqs))+")", seqArgs(seqs)...)
	if err != nil {
		return 0, err
	}
	n, err := res.RowsAffected()
	if n > 0 {
		e.d.wake.Notify()
	}
	return int(n), err
}

func (e *executor) OutboxParkedDelete(ctx context.Context, seqs []int64) ([]driver.ParkedOutboxRow, error) {
	if len(seqs) == 0 {
		return nil, nil
	}
	rows, err := e.tx.QueryContext(ctx, "DELETE FROM "+e.d.t.outbox+" WHERE parked_at IS NOT NULL AND seq IN ("+
		sqlutil.Placeholders(len(seqs))+") RETURNING "+parkedCols, seqArgs(seqs)...)
	if err != nil {
		return nil, err
	}
	var out []driver.ParkedOutboxRow
	err = scanOutbox(rows, func(r driver.ParkedOutboxRow) { out = append(out, r) })
	slices.SortFunc(out, func(a, b driver.ParkedOutboxRow) int { return cmp.Compare(a.Seq, b.Seq) })
	if len(out) > 0 {
		e.d.wake.Notify()
	}
	return out, err
}

func seqArgs(seqs []int64) []any {
	args := make([]any, len(seqs))
	for i, s := range seqs {
		args[i] = s
	}
	return args
}
