package postgres

import (
	"context"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/eoskit/eos/driver"
	"github.com/eoskit/eos/internal/backoff"
	"github.com/eoskit/eos/internal/sqlutil"
	"github.com/eoskit/eos/internal/wake"
)

const (
	outboxCols = "seq, id, topic, key, payload, headers, created_at, enqueued_at"
	parkedCols = outboxCols + ", parked_at, parked_error"
)

// OutboxClaim locks, with FOR UPDATE SKIP LOCKED, the heads of the outbox —
// unsent rows with no earlier unsent row of the same key; every row with key
// "" is its own head — and returns, in seq order and up to limit, the unsent
// rows that are locked heads or share a non-empty key with one. The
// transaction stays open until Complete or Abort (ctx bounds the claim, not
// the batch): no other relay can lock a head of those keys meanwhile, and
// their later rows are not heads.
//
// A parked row is never a head, and the later rows of its key are not heads
// either: it is unsent and earlier. The rows taken with a head also stop at
// its key's parked row, for the case where an earlier row of that key
// committed after the parked one (seq is taken at insert, not at commit).
//
// The claim reads a window of the oldest unsent rows, limit of them at
// first (see claimWindow). The window holds every unsent row earlier than
// its last, so the first row of a key in it is the key's head, and a parked
// row that holds back one of its rows is in it too. When the window was
// full and gave fewer than limit rows (keys held by other relays, or held
// back by a parked row), the claim reads a window four times larger, in the
// same transaction, until it has limit rows or the window holds every
// unsent row: the batch is the one a single pass over all unsent rows would
// give, and its cost follows the rows it has to pass, not the backlog.
func (c *core) OutboxClaim(ctx context.Context, limit int) (driver.OutboxBatch, error) {
	tx, err := c.begin(ctx)
	if err != nil {
		return nil, err
	}
	b := &outboxBatch{c: c, tx: tx}
	for window := limit; ; window *= 4 {
		var n int64
		b.rows, n, err = c.claimWindow(ctx, tx, window, limit)
		if err != nil || len(b.rows) == limit || n < int64(window) {
			break
		}
	}
	if err != nil || len(b.rows) == 0 {
		if err := b.end(ctx, err); err != nil {
			return nil, err
		}
	}
	return b, nil
}

// claimWindow reads the window of the oldest unsent rows, parked or not
// (w), finds in it each key's first row and first parked row (c), locks the
// heads — the first rows of their keys, every row with key "" — that are
// not parked, up to limit in seq order and skipping those another relay
// holds (h), and returns the rows of the window that are locked heads, or
// share a locked head's key and come before the key's first parked row, up
// to limit in seq order; and the number of rows in the window. A row
// ordered first, with seq minus that number, carries the number (seq
// starts at 1).
//
// Each step is bounded by the window, whatever the planner's statistics
// (stale ones see no unsent row at all): the window is the start of the
// unsent index, and the rest works on the window or looks rows up by seq in
// the primary key. h tests "unsent and not parked" (rechecked on the row's
// latest version when it changed since the statement began) as one
// coalesce: the partial indexes' predicate does not follow from it, so the
// planner cannot scan one of them whole, believing it empty, instead of
// looking up the window's heads.
func (c *core) claimWindow(ctx context.Context, tx tx, window, limit int) ([]driver.OutboxRow, int64, error) {
	var rows []driver.OutboxRow
	var n int64
	err := tx.query(ctx, "WITH w AS MATERIALIZED ("+
		"SELECT seq, key, parked_at IS NOT NULL AS parked FROM "+c.t.outbox+" WHERE sent_at IS NULL ORDER BY seq LIMIT $2), "+
		"c AS MATERIALIZED (SELECT seq, key, parked, min(seq) OVER k AS first, min(seq) FILTER (WHERE parked) OVER k AS stop "+
		"FROM w WINDOW k AS (PARTITION BY key)), "+
		"h AS MATERIALIZED (SELECT seq, key FROM "+c.t.outbox+" WHERE seq = ANY(ARRAY(SELECT seq FROM c WHERE NOT parked AND (key = '' OR seq = first))) "+
		"AND coalesce(sent_at, parked_at) IS NULL ORDER BY seq LIMIT $1 FOR UPDATE SKIP LOCKED), "+
		"r AS (SELECT seq FROM c WHERE NOT parked AND (seq IN (SELECT seq FROM h) OR "+
		"key <> '' AND key IN (SELECT key FROM h) AND (stop IS NULL OR seq < stop)) ORDER BY seq LIMIT $1) "+
		"SELECT "+outboxCols+" FROM "+c.t.outbox+" WHERE seq = ANY(ARRAY(SELECT seq FROM r)) "+
		"UNION ALL SELECT -count(*), '', '', '', NULL, NULL, 'epoch', 'epoch' FROM w ORDER BY seq",
		[]any{limit, window}, func(scan scanFunc) error {
			r, err := scanOutbox(scan, false)
			switch {
			case err != nil:
				return err
			case r.Seq <= 0:
				n = -r.Seq
			default:
				rows = append(rows, r.OutboxRow)
			}
			return nil
		})
	return rows, n, err
}

// scanOutbox scans a row of outboxCols, or of parkedCols if parked.
func scanOutbox(scan scanFunc, parked bool) (driver.ParkedOutboxRow, error) {
	var r driver.ParkedOutboxRow
	var h []byte
	var parkedAt *time.Time
	var parkedErr *string
	dest := []any{&r.Seq, &r.ID, &r.Topic, &r.Key, &r.Payload, &h, &r.CreatedAt, &r.EnqueuedAt}
	if parked {
		dest = append(dest, &parkedAt, &parkedErr)
	}
	if err := scan(dest...); err != nil {
		return r, err
	}
	var err error
	r.Headers, err = sqlutil.DecodeHeaders(h)
	r.CreatedAt, r.EnqueuedAt = r.CreatedAt.UTC(), r.EnqueuedAt.UTC()
	if parkedAt != nil {
		r.ParkedAt = parkedAt.UTC()
	}
	if parkedErr != nil {
		r.Error = *parkedErr
	}
	return r, err
}

// outboxBatch holds the claiming transaction; tx is nil once it has ended.
type outboxBatch struct {
	c    *core
	tx   tx
	rows []driver.OutboxRow
}

func (b *outboxBatch) Rows() []driver.OutboxRow { return b.rows }

// Complete marks (or deletes) the sent rows and parks the parked ones in the
// claiming transaction, and commits it.
func (b *outboxBatch) Complete(ctx context.Context, o driver.OutboxOutcome) error {
	if b.tx == nil || len(o.Sent) == 0 && len(o.Parked) == 0 {
		return b.end(ctx, nil)
	}
	var err error
	switch {
	case len(o.Sent) == 0:
	case o.DeleteSent:
		_, err = b.tx.exec(ctx, "DELETE FROM "+b.c.t.outbox+" WHERE seq = ANY($1)", o.Sent)
	default:
		_, err = b.tx.exec(ctx, "UPDATE "+b.c.t.outbox+" SET sent_at = $1 WHERE seq = ANY($2)", o.At, o.Sent)
	}
	if err == nil && len(o.Parked) > 0 {
		seqs, errs := make([]int64, len(o.Parked)), make([]string, len(o.Parked))
		for i, p := range o.Parked {
			seqs[i], errs[i] = p.Seq, p.Error
		}
		_, err = b.tx.exec(ctx, "UPDATE "+b.c.t.outbox+" o SET parked_at = $1, parked_error = u.e "+
			"FROM unnest($2::bigint[], $3::text[]) AS u(s, e) WHERE o.seq = u.s AND o.sent_at IS NULL", o.At, seqs, errs)
	}
	if err != nil {
		return b.end(ctx, err)
	}
	err = b.tx.commit(ctx)
	b.tx = nil
	return err
}

func (b *outboxBatch) Abort(ctx context.Context) error { return b.end(ctx, nil) }

// end rolls the transaction back, if still open, and returns err or the
// rollback's error.
func (b *outboxBatch) end(ctx context.Context, err error) error {
	if b.tx == nil {
		return err
	}
	rerr := b.tx.rollback(ctx)
	b.tx = nil
	if err != nil {
		return err
	}
	return rerr
}

func (e *executor) OutboxParkedStats(ctx context.Context) (int64, time.Time, error) {
	var n int64
	var oldest *time.Time
	err := e.q.query(ctx, "SELECT count(*), min(parked_at) FROM "+e.c.t.outbox+" WHERE parked_at IS NOT NULL", nil,
		func(scan scanFunc) error { return scan(&n, &oldest) })
	if err != nil || oldest == nil {
		return n, time.Time{}, err
	}
	return n, oldest.UTC(), nil
}

func (e *executor) OutboxUnsentList(ctx context.Context, afterSeq int64, limit int) ([]driver.OutboxRow, error) {
	var out []driver.OutboxRow
	err := e.q.query(ctx, "SELECT "+outboxCols+" FROM "+e.c.t.outbox+" WHERE sent_at IS NULL AND parked_at IS NULL AND seq > $1 ORDER BY seq LIMIT $2",
		[]any{afterSeq, limit}, func(scan scanFunc) error {
			r, err := scanOutbox(scan, false)
			if err != nil {
				return err
			}
			out = append(out, r.OutboxRow)
			return nil
		})
	return out, err
}

func (e *executor) OutboxParkedList(ctx context.Context, afterSeq int64, limit int) ([]driver.ParkedOutboxRow, error) {
	var out []driver.ParkedOutboxRow
	err := e.q.query(ctx, "SELECT "+parkedCols+" FROM "+e.c.t.outbox+" WHERE parked_at IS NOT NULL AND seq > $1 ORDER BY seq LIMIT $2",
		[]any{afterSeq, limit}, func(scan scanFunc) error {
			r, err := scanOutbox(scan, true)
			if err != nil {
				return err
			}
			out = append(out, r)
			return nil
		})
	return out, err
}

func (e *executor) OutboxParkedRequeue(ctx context.Context, seqs []int64) (int, error) {
	if len(seqs) == 0 {
		return 0, nil
	}
	n, err := e.q.exec(ctx, "UPDATE "+e.c.t.outbox+" SET parked_at = NULL, parked_error = NULL WHERE parked_at IS NOT NULL AND seq = ANY($1)", seqs)
	if err == nil && n > 0 {
		err = e.notify(ctx)
	}
	return int(n), err
}

// notify wakes the relays when the transaction commits.
func (e *executor) notify(ctx context.Context) error {
	_, err := e.q.exec(ctx, "SELECT pg_notify($1, '')", e.c.cfg.NotifyChannel)
	return err
}

func (e *executor) OutboxParkedDelete(ctx context.Context, seqs []int64) ([]driver.ParkedOutboxRow, error) {
	if len(seqs) == 0 {
		return nil, nil
	}
	var out []driver.ParkedOutboxRow
	err := e.q.query(ctx, "WITH d AS (DELETE FROM "+e.c.t.outbox+" WHERE parked_at IS NOT NULL AND seq = ANY($1) RETURNING "+parkedCols+") "+
		"SELECT "+parkedCols+" FROM d ORDER BY seq",
		[]any{seqs}, func(scan scanFunc) error {
			r, err := scanOutbox(scan, true)
			if err != nil {
				return err
			}
			out = append(out, r)
			return nil
		})
	if err == nil && len(out) > 0 {
		err = e.notify(ctx)
	}
	return out, err
}

// OutboxWakeup subscribes to the relays' notification channel. Subscribers
// of one driver share a listening connection, opened by the first and
// closed with the last.
func (c *core) OutboxWakeup(ctx context.Context) (<-chan struct{}, func(), error) {
	return c.listen.subscribe(ctx, c.dial, c.cfg.NotifyChannel)
}

// listener is a LISTEN connection feeding a wake.Signal.
type listener struct {
	mu   sync.Mutex
	subs int
	stop func() // ends the listening goroutine while subs > 0
	sig  wake.Signal
}

// reconnect is the listener's backoff between reconnection attempts.
var reconnect = backoff.Policy{Initial: 100 * time.Millisecond, Max: 10 * time.Second}

func (l *listener) subscribe(ctx context.Context, dial func(context.Context) (*pgx.Conn, error), channel string) (<-chan struct{}, func(), error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.subs == 0 {
		listen := func(ctx context.Context) (*pgx.Conn, error) {
			conn, err := dial(ctx)
			if err != nil {
				return nil, err
			}
			if _, err := conn.Exec(ctx, `LISTEN "`+channel+`"`); err != nil {
				conn.Close(ctx)
				return nil, err
			}
			return conn, nil
		}
		conn, err := listen(ctx)
		if err != nil {
			return nil, nil, err
		}
		lctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		done := make(chan struct{})
		go func() {
			defer close(done)
			l.run(lctx, listen, conn)
		}()
		l.stop = func() { cancel(); <-done }
	}
	l.subs++
	ch, unsubscribe := l.sig.Subscribe()
	var once sync.Once
	return ch, func() {
		once.Do(func() {
			unsubscribe()
			l.mu.Lock()
			defer l.mu.Unlock()
			if l.subs--; l.subs == 0 {
				l.stop()
				l.stop = nil
			}
		})
	}, nil
}

// run waits for notifications on conn until ctx ends. When the connection
// fails it reconnects with exponential backoff and then wakes the
// subscribers once: a notification may have been sent meanwhile.
func (l *listener) run(ctx context.Context, listen func(context.Context) (*pgx.Conn, error), conn *pgx.Conn) {
	for {
		for {
			if _, err := conn.WaitForNotification(ctx); err != nil {
				break
			}
			l.sig.Notify()
		}
		conn.Close(ctx)
		for try := 1; ; try++ {
			if !reconnect.Sleep(ctx, try) {
				return
			}
			var err error
			if conn, err = listen(ctx); err == nil {
				break
			}
		}
		l.sig.Notify()
	}
}
