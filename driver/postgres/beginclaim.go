package postgres

import (
	"context"
	"encoding/hex"
	"errors"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/eoskit/eos/driver"
)

// maxBeginClaim is the largest batch BeginClaim takes: past it, the saved
// round trip is noise next to the batch, and the statement text grows.
const maxBeginClaim = 64

var _ driver.ClaimBeginner[pgx.Tx] = (*Driver)(nil)

// BeginClaim sends BEGIN and a plain INSERT of the claims as one simple-
// protocol query: one round trip instead of two. A conflicting id makes the
// INSERT fail, which pgx answers by closing that connection; the caller then
// takes the ordinary path, so duplicates cost a reconnect on this path and
// callers should stop using it for a while after ok=false.
//
// The simple protocol carries no parameters, so values are sent as literals:
// only when the server has standard_conforming_strings on (the default since
// PostgreSQL 9.1), where doubling single quotes is a complete escape, and
// only for values without NUL bytes.
func (d *Driver) BeginClaim(ctx context.Context, consumer string, now time.Time, claims []driver.Claim) (pgx.Tx, bool, error) {
	if len(claims) == 0 || len(claims) > maxBeginClaim || !d.conformingStrings(ctx) {
		return nil, false, nil
	}
	var b strings.Builder
	b.WriteString("BEGIN; INSERT INTO " + d.t.inbox + " (consumer, id, fingerprint, claimed_at) VALUES ")
	ts := literal(now.UTC().Format("2006-01-02 15:04:05.999999Z07:00")) + "::timestamptz"
	cons := literal(consumer)
	for i, c := range claims {
		if strings.IndexByte(c.ID, 0) >= 0 || strings.IndexByte(consumer, 0) >= 0 {
			return nil, false, nil
		}
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString("(" + cons + "," + literal(c.ID) + ",'\\x" + hex.EncodeToString(c.Fingerprint) + "'::bytea," + ts + ")")
	}
	tx, err := d.pool.BeginTx(ctx, pgx.TxOptions{BeginQuery: b.String()})
	if err != nil {
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "23505" { // unique_violation: some id was claimed before
			return nil, false, nil
		}
		return nil, false, err
	}
	return tx, true, nil
}

// literal quotes s as a standard-conforming SQL string literal.
func literal(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// conformingStrings reports, once per driver, whether the server treats
// backslashes in string literals literally.
func (d *Driver) conformingStrings(ctx context.Context) bool {
	switch d.scs.Load() {
	case scsOn:
		return true
	case scsOff:
		return false
	}
	c, err := d.pool.Acquire(ctx)
	if err != nil {
		return false
	}
	defer c.Release()
	on := c.Conn().PgConn().ParameterStatus("standard_conforming_strings") == "on"
	if on {
		d.scs.Store(scsOn)
	} else {
		d.scs.Store(scsOff)
	}
	return on
}

const (
	scsUnknown int32 = iota
	scsOn
	scsOff
)
