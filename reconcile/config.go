package reconcile

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"time"

	"github.com/eoskit/eos"
)

// Defaults of Config.
const (
	DefaultPageSize     = 1000
	DefaultSampleSize   = 20
	DefaultMaxSourceIDs = 1 << 20 // about 40 MiB of hashes at most
	// MaxPageSize bounds Config.PageSize: a page's ids travel as the
	// parameters of one statement, and SQLite takes at most 32766.
	MaxPageSize = 10_000
)

// Querier runs a query: a *sql.DB, *sql.Conn or *sql.Tx (for PostgreSQL
// through pgx, stdlib.OpenDBFromPool gives a *sql.DB).
type Querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// Config tunes a Reconciler.
type Config struct {
	// Consumer is the inbox consumer whose claims are checked. Required.
	Consumer string
	// Outbox names the outbox checked for partial commits, in reports and
	// metrics. Default "outbox".
	Outbox string
	// PartialAfter is the age past which an unsent outbox row is a
	// partial commit. Zero: the outbox is not checked.
	PartialAfter time.Duration
	// Retention is the compactor's retention of inbox claims
	// (compact.Config's inbox retention): an unclaimed source id older
	// than it is uncheckable, not missed. Zero: claims are never
	// compacted, every unclaimed id is missed.
	Retention time.Duration
	// Settle is the age below which an unclaimed source id is pending,
	// not missed: the consumer's expected lag. Zero: everything the source
	// holds when the run starts is due. A scheduled run on a live stream
	// needs one.
	Settle time.Duration
	// From starts the window of the unexpected-apply check: claims made
	// before it are not checked. Default: the time of the source's first
	// entry (zero when the source gives no times: every claim is checked).
	// A message published before the source's range and claimed inside it
	// shows as unexpected; start the range at the stream's first message,
	// or set From past the consumer's lag.
	From time.Time

	// DB and Duplicates find duplicate effects: Duplicates is a query run
	// on DB returning two columns, an id and how many times its effect was
	// applied; every row with a count above one is a duplicate, e.g.
	// SELECT order_id, count(*) FROM ledger GROUP BY order_id HAVING count(*) > 1.
	// Empty: not checked.
	DB         Querier
	Duplicates string

	// PageSize bounds each read of the source, the claims and the
	// outbox. Default DefaultPageSize; at most MaxPageSize.
	PageSize int
	// SampleSize bounds the ids a report keeps per finding kind. Default
	// DefaultSampleSize.
	SampleSize int
	// MaxSourceIDs bounds the source ids remembered for the
	// unexpected-apply check (see the package doc). Default
	// DefaultMaxSourceIDs.
	MaxSourceIDs int

	// Hooks are told about findings and runs; see [Hook].
	Hooks []Hook
	// Progress, when set, is called after each page of the source with
	// the entries read so far: for a command's progress line.
	Progress func(entries int64)
	// Logger logs each run's outcome. Default slog.Default().
	Logger *slog.Logger
	// Test holds the clock.
	Test eos.TestConfig
}

// WithDefaults returns a copy of c with the defaults applied, or a
// *eos.ConfigError naming the first invalid field.
func (c Config) WithDefaults() (Config, error) {
	bad := func(field, reason string) (Config, error) {
		return c, &eos.ConfigError{Field: "reconcile.Config." + field, Reason: reason}
	}
	switch {
	case c.Consumer == "":
		return bad("Consumer", "empty")
	case c.PartialAfter < 0:
		return bad("PartialAfter", fmt.Sprintf("negative: %v", c.PartialAfter))
	case c.Retention < 0:
		return bad("Retention", fmt.Sprintf("negative: %v", c.Retention))
	case c.Settle < 0:
		return bad("Settle", fmt.Sprintf("negative: %v", c.Settle))
	case c.PageSize > MaxPageSize:
		return bad("PageSize", fmt.Sprintf("%d is above %d", c.PageSize, MaxPageSize))
	case c.PageSize < 0 || c.SampleSize < 0 || c.MaxSourceIDs < 0:
		return bad("PageSize", fmt.Sprintf("PageSize, SampleSize and MaxSourceIDs must not be negative: %d, %d, %d", c.PageSize, c.SampleSize, c.MaxSourceIDs))
	case c.Duplicates != "" && c.DB == nil:
		return bad("DB", "nil, and Duplicates needs it")
	}
	if c.Outbox == "" {
		c.Outbox = "outbox"
	}
	if c.PageSize == 0 {
		c.PageSize = DefaultPageSize
	}
	if c.SampleSize == 0 {
		c.SampleSize = DefaultSampleSize
	}
	if c.MaxSourceIDs == 0 {
		c.MaxSourceIDs = DefaultMaxSourceIDs
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	c.Test = c.Test.WithDefaults()
	if _, err := newHooks(c.Hooks); err != nil {
		return c, err
	}
	return c, nil
}
