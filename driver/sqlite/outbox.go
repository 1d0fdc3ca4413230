package sqlite

import (
	"context"
	"strings"
	"time"

	"github.com/eoskit/eos/driver"
	"github.com/eoskit/eos/internal/sqlutil"
)

// ClaimOutbox reads the oldest unsent rows. The read runs on the writer
// connection, after any transaction in flight; the publish that follows holds
// no lock, and Complete marks the rows in a short transaction.
func (d *Driver) ClaimOutbox(ctx context.Context, limit int) (driver.OutboxBatch, error) {
	if !d.relay.TryLock() {
		return &outboxBatch{d: d}, nil
	}
	rows, err := d.db.QueryContext(ctx, "SELECT seq, id, topic, key, payload, headers, created_at, enqueued_at FROM "+d.t.outbox+" WHERE sent_at IS NULL ORDER BY seq LIMIT ?", limit)
	if err != nil {
		d.relay.Unlock()
		return nil, err
	}
	defer rows.Close()
	b := &outboxBatch{d: d, locked: true}
	for rows.Next() {
		var r driver.OutboxRow
		var h []byte
		var created, enq int64
		if err := rows.Scan(&r.Seq, &r.ID, &r.Topic, &r.Key, &r.Payload, &h, &created, &enq); err != nil {
			b.Abort(ctx)
			return nil, err
		}
		if r.Headers, err = sqlutil.DecodeHeaders(h); err != nil {
			b.Abort(ctx)
			return nil, err
		}
		r.CreatedAt, r.EnqueuedAt = fromMicros(created), fromMicros(enq)
		b.rows = append(b.rows, r)
	}
	if err := rows.Err(); err != nil {
		b.Abort(ctx)
		return nil, err
	}
	return b, nil
}

type outboxBatch struct {
	d      *Driver
	rows   []driver.OutboxRow
	locked bool
}

func (b *outboxBatch) Rows() []driver.OutboxRow { return b.rows }

func (b *outboxBatch) Complete(ctx context.Context, sent int, now time.Time, del bool) error {
	defer b.release()
	if sent <= 0 {
		return nil
	}
	args := make([]any, 0, sent+1)
	var q strings.Builder
	if del {
		q.WriteString("DELETE FROM " + b.d.t.outbox + " WHERE seq IN (")
	} else {
		q.WriteString("UPDATE " + b.d.t.outbox + " SET sent_at = ? WHERE seq IN (")
		args = append(args, micros(now))
	}
	q.WriteString(sqlutil.Placeholders(sent) + ")")
	for _, r := range b.rows[:sent] {
		args = append(args, r.Seq)
	}
	_, err := b.d.db.ExecContext(ctx, q.String(), args...)
	return err
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
