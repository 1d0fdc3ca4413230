package postgres

import (
	"context"
	"time"

	"github.com/eoskit/eos/driver"
)

const dedupeCols = "state, fingerprint, token, generation, lease_expires, result, completed_at, expires_at"

// DedupeClaim is one upsert whose conditional update is the takeover rule.
// Of concurrent claims of one key, one inserts and the others wait for it
// and then evaluate the condition against its row; the conflicting row is
// locked either way, so when nothing is returned the read that follows (a
// statement of its own, seeing what was committed) finds the row as it
// stands.
func (e *executor) DedupeClaim(ctx context.Context, p driver.DedupeClaimParams) (driver.DedupeRecord, bool, error) {
	t := e.c.t.dedupe
	rec, found, err := e.dedupeRecord(ctx, "INSERT INTO "+t+" AS d (scope, key, "+dedupeCols+") "+
		"VALUES ($1, $2, 'leased', $3, $4, 1, $5, NULL, NULL, $6) "+
		"ON CONFLICT (scope, key) DO UPDATE SET state = 'leased', fingerprint = excluded.fingerprint, token = excluded.token, "+
		"generation = d.generation + 1, lease_expires = excluded.lease_expires, result = NULL, completed_at = NULL, expires_at = excluded.expires_at "+
		"WHERE d.expires_at <= $7 OR (d.fingerprint = excluded.fingerprint AND (d.state = 'released' OR (d.state = 'leased' AND d.lease_expires <= $7))) "+
		"RETURNING "+dedupeCols,
		[]byte(p.Scope), []byte(p.Key), p.Fingerprint, p.Token, p.LeaseExpires, p.Expires, p.Now)
	if err != nil || found {
		return rec, found, err
	}
	rec, _, err = e.dedupeRecord(ctx, "SELECT "+dedupeCols+" FROM "+t+" WHERE scope = $1 AND key = $2", []byte(p.Scope), []byte(p.Key))
	return rec, false, err
}

func (e *executor) dedupeRecord(ctx context.Context, q string, args ...any) (driver.DedupeRecord, bool, error) {
	var r driver.DedupeRecord
	found := false
	err := e.q.query(ctx, q, args, func(scan scanFunc) error {
		var state string
		var completed *time.Time
		if err := scan(&state, &r.Fingerprint, &r.Token, &r.Generation, &r.LeaseExpires, &r.Result, &completed, &r.Expires); err != nil {
			return err
		}
		found = true
		r.State, r.LeaseExpires, r.Expires = driver.DedupeState(state), r.LeaseExpires.UTC(), r.Expires.UTC()
		if completed != nil {
			r.CompletedAt = completed.UTC()
		}
		return nil
	})
	return r, found, err
}

// dedupeFenced runs set on the record leased to f, unless it is past its
// expiry (cond: more conditions), and reports whether it changed it.
func (e *executor) dedupeFenced(ctx context.Context, f driver.DedupeFence, now time.Time, set, cond string, args ...any) (bool, error) {
	args = append([]any{[]byte(f.Scope), []byte(f.Key), f.Token, f.Generation, now}, args...)
	n, err := e.q.exec(ctx, "UPDATE "+e.c.t.dedupe+" SET "+set+
		" WHERE scope = $1 AND key = $2 AND state = 'leased' AND token = $3 AND generation = $4 AND expires_at > $5"+cond, args...)
	return n == 1, err
}

func (e *executor) DedupeComplete(ctx context.Context, p driver.DedupeCompleteParams) (bool, error) {
	return e.dedupeFenced(ctx, p.DedupeFence, p.Now,
		"state = 'completed', token = '', result = $6, completed_at = $5, expires_at = $7", "", p.Result, p.Expires)
}

func (e *executor) DedupeRelease(ctx context.Context, p driver.DedupeReleaseParams) (bool, error) {
	return e.dedupeFenced(ctx, p.DedupeFence, p.Now, "state = 'released', token = '', expires_at = $6", "", p.Expires)
}

func (e *executor) DedupeRenew(ctx context.Context, p driver.DedupeRenewParams) (bool, error) {
	return e.dedupeFenced(ctx, p.DedupeFence, p.Now, "lease_expires = $6, expires_at = $7", " AND lease_expires > $5",
		p.LeaseExpires, p.Expires)
}
