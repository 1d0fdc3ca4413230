package sqlite

import (
	"context"
	"database/sql"
	"errors"

	"github.com/eoskit/eos/driver"
)

const dedupeCols = "state, fingerprint, token, generation, lease_expires, result, completed_at, expires_at"

// DedupeClaim is one upsert whose conditional update is the takeover rule;
// SQLite's single writer makes it race-free. When it neither inserts nor
// takes over, RETURNING gives nothing and the record is read.
func (e *executor) DedupeClaim(ctx context.Context, p driver.DedupeClaimParams) (driver.DedupeRecord, bool, error) {
	t := e.d.t.dedupe
	rec, err := e.dedupeRecord(ctx, "INSERT INTO "+t+" (scope, key, "+dedupeCols+") "+
		"VALUES (?1, ?2, 'leased', ?3, ?4, 1, ?5, NULL, 0, ?6) "+
		"ON CONFLICT (scope, key) DO UPDATE SET state = 'leased', fingerprint = excluded.fingerprint, token = excluded.token, "+
		"generation = generation + 1, lease_expires = excluded.lease_expires, result = NULL, completed_at = 0, expires_at = excluded.expires_at "+
		"WHERE expires_at <= ?7 OR (fingerprint = excluded.fingerprint AND (state = 'released' OR (state = 'leased' AND lease_expires <= ?7))) "+
		"RETURNING "+dedupeCols,
		[]byte(p.Scope), []byte(p.Key), p.Fingerprint, p.Token, micros(p.LeaseExpires), micros(p.Expires), micros(p.Now))
	if err == nil {
		return rec, true, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return rec, false, err
	}
	rec, err = e.dedupeRecord(ctx, "SELECT "+dedupeCols+" FROM "+t+" WHERE scope = ?1 AND key = ?2", []byte(p.Scope), []byte(p.Key))
	return rec, false, err
}

func (e *executor) dedupeRecord(ctx context.Context, q string, args ...any) (driver.DedupeRecord, error) {
	var r driver.DedupeRecord
	var lease, completed, expires int64
	err := e.tx.QueryRowContext(ctx, q, args...).Scan(&r.State, &r.Fingerprint, &r.Token, &r.Generation, &lease, &r.Result, &completed, &expires)
	r.LeaseExpires, r.CompletedAt, r.Expires = fromMicros(lease), fromMicros(completed), fromMicros(expires)
	return r, err
}

// dedupeFenced runs set on the record leased to f, unless it is past its
// expiry (cond: more conditions), and reports whether it changed it.
func (e *executor) dedupeFenced(ctx context.Context, f driver.DedupeFence, now int64, set, cond string, args ...any) (bool, error) {
	args = append([]any{[]byte(f.Scope), []byte(f.Key), f.Token, f.Generation, now}, args...)
	res, err := e.tx.ExecContext(ctx, "UPDATE "+e.d.t.dedupe+" SET "+set+
		" WHERE scope = ?1 AND key = ?2 AND state = 'leased' AND token = ?3 AND generation = ?4 AND expires_at > ?5"+cond, args...)
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

func (e *executor) DedupeComplete(ctx context.Context, p driver.DedupeCompleteParams) (bool, error) {
	return e.dedupeFenced(ctx, p.DedupeFence, micros(p.Now),
		"state = 'completed', token = '', result = ?6, completed_at = ?5, expires_at = ?7", "", p.Result, micros(p.Expires))
}

func (e *executor) DedupeRelease(ctx context.Context, p driver.DedupeReleaseParams) (bool, error) {
	return e.dedupeFenced(ctx, p.DedupeFence, micros(p.Now), "state = 'released', token = '', expires_at = ?6", "", micros(p.Expires))
}

func (e *executor) DedupeRenew(ctx context.Context, p driver.DedupeRenewParams) (bool, error) {
	return e.dedupeFenced(ctx, p.DedupeFence, micros(p.Now), "lease_expires = ?6, expires_at = ?7", " AND lease_expires > ?5",
		micros(p.LeaseExpires), micros(p.Expires))
}
