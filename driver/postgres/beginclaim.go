package postgres

import (
	"context"
	"encoding/hex"
	"errors"
	"strings"
	"time"
	"unicode/utf8"

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
// The simple protocol carries no parameters, so values travel as literals
// built by [literal] and hex: nothing in a value can end its literal,
// whatever the connection's standard_conforming_strings or client encoding.
// Only values of ASCII without NUL take this path; others are declined. A
// literal's bytes enter the server's encoding as they are, while the
// ordinary path's parameters are converted from the connection's
// client_encoding: for other bytes the two paths store different strings
// wherever the encodings differ (a role's or database's client_encoding, a
// database in another encoding), and a redelivery claimed on the other path
// would be applied again. ASCII is the same in every encoding PostgreSQL
// supports.
func (d *Driver) BeginClaim(ctx context.Context, consumer string, now time.Time, claims []driver.Claim) (pgx.Tx, bool, error) {
	if len(claims) == 0 || len(claims) > maxBeginClaim || !plainASCII(consumer) {
		return nil, false, nil
	}
	var b strings.Builder
	b.WriteString("BEGIN; INSERT INTO " + d.t.inbox + " (consumer, id, fingerprint, claimed_at) VALUES ")
	ts := literal(now.UTC().Format("2006-01-02 15:04:05.999999Z07:00")) + "::timestamptz"
	cons := literal(consumer)
	for i, c := range claims {
		if !plainASCII(c.ID) {
			return nil, false, nil
		}
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString("(" + cons + "," + literal(c.ID) + ",decode('" + hex.EncodeToString(c.Fingerprint) + "','hex')," + ts + ")")
	}
	tx, err := d.pool.BeginTx(ctx, pgx.TxOptions{BeginQuery: b.String()})
	if err != nil {
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "23505" { // unique_violation: some id was claimed before
			return nil, false, nil
		}
		return nil, false, err
	}
	if err := checkEncoding(tx.Conn().PgConn()); err != nil {
		tx.Rollback(ctx)
		return nil, false, err
	}
	return tx, true, nil
}

// literal quotes s (without NUL bytes) as an escape string constant made of
// printable ASCII only: E'…', with printable ASCII kept (a backslash or a
// single quote written twice) and every other byte as \xHH. The E prefix makes
// backslashes escapes whatever standard_conforming_strings says, and pure
// ASCII reads the same in every client encoding PostgreSQL supports, so the
// server reads back exactly the bytes of s, in its own encoding (which is
// what a parameter holding s becomes only when s is ASCII: see BeginClaim).
func literal(s string) string {
	const digits = "0123456789abcdef"
	b := make([]byte, 0, len(s)+3)
	b = append(b, 'E', '\'')
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\\':
			b = append(b, '\\', '\\')
		case c == '\'':
			b = append(b, '\'', '\'') // not \': refused in client-only encodings
		case c >= 0x20 && c < 0x7f:
			b = append(b, c)
		default:
			b = append(b, '\\', 'x', digits[c>>4], digits[c&0xf])
		}
	}
	return string(append(b, '\''))
}

// plainASCII reports whether s is ASCII without NUL bytes.
func plainASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c == 0 || c >= utf8.RuneSelf {
			return false
		}
	}
	return true
}
