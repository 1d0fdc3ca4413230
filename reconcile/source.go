package reconcile

import (
	"context"
	"fmt"
	"time"
)

// Source is the authoritative record of what a consumer was sent.
type Source interface {
	// Name describes the source in reports ("jetstream:ORDERS",
	// "kafka:orders", "sql").
	Name() string
	// Scan reads the source's entries in its range, at most page at a
	// time, and calls fn with each page (fn must not keep the slice). It
	// stops at fn's first error and returns it.
	Scan(ctx context.Context, page int, fn func([]Entry) error) error
}

// Bounded is implemented by a source whose range may end before the
// source's end (a stream range with a last sequence or an end time):
// claims made after its last entry are then not checked for unexpected
// applies, since they may be of messages after the range.
type Bounded interface {
	Bounded() bool
}

// Entry is one message of a source.
type Entry struct {
	ID string // "" when the message has none
	// At is when the source stored it; zero when the source does not say.
	// It must not be later than the consumer's claim of it: it decides
	// whether an unclaimed id is pending, uncheckable or missed.
	At time.Time
}

// SQLSource reads a producer's own table, a page at a time: Query takes
// two parameters, the last id of the previous page ("" for the first) and
// the page size, and returns the next ids in increasing order, e.g.
//
//	SELECT id, sent_at FROM sent WHERE id > $1 ORDER BY id LIMIT $2
//
// (on PostgreSQL, order with COLLATE "C" or any order the column's own
// comparison agrees with). A second column, optional, says when the row was
// stored: a time, an integer (Unix microseconds) or RFC 3339 text.
//
// Keyset pages hold no cursor open between pages: a long range keeps no
// transaction open on the producer's database, and a database with one
// connection (SQLite) can serve the inbox reads in between.
type SQLSource struct {
	DB    Querier
	Query string
}

// Name implements Source.
func (s SQLSource) Name() string { return "sql" }

// Scan implements Source.
func (s SQLSource) Scan(ctx context.Context, page int, fn func([]Entry) error) error {
	buf := make([]Entry, 0, page)
	for after := ""; ; {
		var err error
		if buf, err = s.page(ctx, after, page, buf[:0]); err != nil {
			return &SourceError{Source: s.Name(), Err: err}
		}
		if len(buf) == 0 {
			return nil
		}
		if err := fn(buf); err != nil {
			return err
		}
		if len(buf) < page {
			return nil
		}
		after = buf[len(buf)-1].ID
	}
}

// page reads the entries after id after.
func (s SQLSource) page(ctx context.Context, after string, page int, buf []Entry) ([]Entry, error) {
	rows, err := s.DB.QueryContext(ctx, s.Query, after, page)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return nil, err
	}
	if len(cols) != 1 && len(cols) != 2 {
		return nil, fmt.Errorf("the query returns %d columns; want an id and an optional time", len(cols))
	}
	last := after
	for rows.Next() {
		if len(buf) == page {
			return nil, fmt.Errorf("the query returned more than the page size (%d) rows: it must use its second parameter as a LIMIT", page)
		}
		var e Entry
		var at any
		if err := rows.Scan([]any{&e.ID, &at}[:len(cols)]...); err != nil {
			return nil, err
		}
		if e.ID <= last {
			return nil, fmt.Errorf("id %q after %q: the query must return ids after its first parameter, in increasing order", e.ID, last)
		}
		last = e.ID
		if e.At, err = entryTime(at); err != nil {
			return nil, fmt.Errorf("id %q: %w", e.ID, err)
		}
		buf = append(buf, e)
	}
	return buf, rows.Err()
}

// entryTime reads the time column of an SQLSource row.
func entryTime(v any) (time.Time, error) {
	switch t := v.(type) {
	case nil:
		return time.Time{}, nil
	case time.Time:
		return t, nil
	case int64:
		return time.UnixMicro(t), nil
	case []byte:
		return time.Parse(time.RFC3339Nano, string(t))
	case string:
		return time.Parse(time.RFC3339Nano, t)
	}
	return time.Time{}, fmt.Errorf("time column of type %T; want a time, Unix microseconds or RFC 3339 text", v)
}
