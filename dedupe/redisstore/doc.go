// Package redisstore is the dedupe.Store on Redis (go-redis v9): one hash
// per (scope, key), and one Lua script per operation (claim, complete,
// release, renew), so that each runs atomically on the server and of
// concurrent claims of a key exactly one wins.
//
// The clock is the client's (dedupe.Config.Test.Now), passed to each
// script: leases, takeovers and retention are decided by it, as with the
// SQL store. Each record also carries a server TTL, set with PEXPIRE to
// the time left until its expiry, so Redis deletes it once that has
// passed; the script treats a record whose expiry has passed by the
// client's clock as gone even if the server has not yet deleted it.
//
// Keys are Config.Prefix followed by the scope's length, a colon, the scope
// and the key, so that no two (scope, key) pairs share a key. Each script
// touches one key, so the store works on Redis Cluster too.
//
// # What Redis does not promise
//
// Redis is not the SQL store, and two of its properties weaken what a
// claim means; use the SQL store where they matter:
//
//   - Replication is asynchronous. A claim or a completion acknowledged by
//     the primary can be lost when a replica that had not received it is
//     promoted (failover), and the key is then free again: a retry runs the
//     work a second time. WAIT on the replicas narrows the window; only a
//     store that commits durably before answering closes it.
//   - Eviction deletes records. Under memory pressure any policy but
//     noeviction removes keys (the volatile-* policies included, for every
//     record has a TTL), and an evicted key is free again. New reads the
//     server's maxmemory-policy and logs a warning unless it is noeviction
//     (or when CONFIG is refused, as on some managed services: then that it
//     could not check). With noeviction, a full server refuses writes,
//     which the store returns as errors (fail closed).
//
// Persistence matters the same way: without AOF (appendfsync always or
// everysec) a restart loses what was acknowledged since the last snapshot.
package redisstore
