// Package dedupe claims keys for effects that cannot join the database
// transaction of an inbox: an HTTP request retried by its client (package
// httpidem), a call to an external API made once per message. A Store
// holds one record per (scope, key) with the request's fingerprint, and
// hands out leases fenced by an owner token and a generation that only
// grows:
//
//   - Claim gives the key to the caller (Claimed, with a Lease) unless it is
//     completed already (Completed, with the stored Result), held by a live
//     lease (InProgress, with how long until that lease expires), or was
//     first claimed with another fingerprint (Mismatch: same key, different
//     request);
//   - Complete stores the result, Release gives the key up (a retry may
//     claim it again), Renew extends the lease: each succeeds only for the
//     current owner and generation. A holder whose lease expired and was
//     taken over gets ErrFenced and can never overwrite the new owner's
//     result;
//   - a store failure is an error (wrapping eos.ErrStore), never read as
//     "not claimed yet": callers fail closed.
//
// Records are kept for the store's retention after they were last written
// and removed by Compact (SQL) or by the server's expiry (Redis); a result
// is at most Config.MaxResultSize bytes.
//
// Backends: NewSQL over an eos driver (SQLite, PostgreSQL; its Tx twins let
// a handler commit its writes with the key's completion) and package
// dedupe/redisstore. Package dedupe/dedupetest is the conformance suite
// every backend runs.
package dedupe
