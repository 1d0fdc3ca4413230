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

// ClaimOutbox locks, with FOR UPDATE SKIP LOCKED, the heads of the outbox —
// unsent rows with no earlier unsent row of the same key; every row with key
// "" is its own head — and returns, in seq order and up to limit, the unsent
// rows that are locked heads or share a non-empty key with one. The
// transaction stays open until Complete or Abort (ctx bounds the claim, not
// the batch): no other relay can lock a head of those keys meanwhile, and
// their later rows are not heads.
func (c *core) ClaimOutbox(ctx context.Context, limit int) (driver.OutboxBatch, error) {
	tx, err := c.begin(ctx)
	if err != nil {
		return nil, err
	}
	b := &outboxBatch{c: c, tx: tx}
	err = tx.query(ctx, "WITH heads AS MATERIALIZED ("+
		"SELECT seq, key FROM "+c.t.outbox+" o WHERE sent_at IS NULL AND (key = '' OR NOT EXISTS ("+
		"SELECT 1 FROM "+c.t.outbox+" p WHERE p.key = o.key AND p.sent_at IS NULL AND p.seq < o.seq)) "+
		"ORDER BY seq LIMIT $1 FOR UPDATE SKIP LOCKED) "+
		"SELECT seq, id, topic, key, payload, headers, created_at, enqueued_at FROM "+c.t.outbox+
		" WHERE sent_at IS NULL AND (seq IN (SELECT seq FROM heads) OR key IN (SELECT key FROM heads WHERE key <> '')) "+
		"ORDER BY seq LIMIT $1",
		[]any{limit}, func(scan scanFunc) error {
			var r driver.OutboxRow
			var h []byte
			if err := scan(&r.Seq, &r.ID, &r.Topic, &r.Key, &r.Payload, &h, &r.CreatedAt, &r.EnqueuedAt); err != nil {
				return err
			}
			var err error
			r.Headers, err = sqlutil.DecodeHeaders(h)
			r.CreatedAt, r.EnqueuedAt = r.CreatedAt.UTC(), r.EnqueuedAt.UTC()
			b.rows = append(b.rows, r)
			return err
		})
	if err != nil || len(b.rows) == 0 {
		if err := b.end(ctx, err); err != nil {
			return nil, err
		}
	}
	return b, nil
}

// outboxBatch holds the claiming transaction; tx is nil once it has ended.
type outboxBatch struct {
	c    *core
	tx   tx
	rows []driver.OutboxRow
}

func (b *outboxBatch) Rows() []driver.OutboxRow { return b.rows }

func (b *outboxBatch) Complete(ctx context.Context, sent int, now time.Time, del bool) error {
	if b.tx == nil || sent <= 0 {
		return b.end(ctx, nil)
	}
	seqs := make([]int64, sent)
	for i, r := range b.rows[:sent] {
		seqs[i] = r.Seq
	}
	var err error
	if del {
		_, err = b.tx.exec(ctx, "DELETE FROM "+b.c.t.outbox+" WHERE seq = ANY($1)", seqs)
	} else {
		_, err = b.tx.exec(ctx, "UPDATE "+b.c.t.outbox+" SET sent_at = $1 WHERE seq = ANY($2)", now, seqs)
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
