// Package httpidem is net/http middleware for the Idempotency-Key request
// header (IETF httpapi draft "The Idempotency-Key HTTP Header Field"): a
// client that retries a POST after a timeout, or a user who presses
// "pay" twice, gets the first request's response instead of a second
// effect.
//
// For a request of Config.Methods (POST, PATCH) with a key, the
// middleware claims (Config.Scope, key) in a dedupe.Store with a lease
// and the request's Fingerprint, then:
//
//   - first request: runs the handler under the claim (renewing the lease
//     while it runs), stores its status, the chosen headers and the body,
//     then sends it. The response is stored before the client sees it, so
//     a client holding an answer always finds it stored;
//   - retry of a finished request: replays the stored response byte for
//     byte, with Idempotent-Replayed: true;
//   - retry while the first runs: 409 with Retry-After (or, with
//     Config.Wait, waits up to that long and replays);
//   - same key, different request (method, route, body, fingerprinted
//     headers): 422;
//   - missing key where Config.Required: 400; malformed key: 400.
//
// Every answer of the middleware's own is an RFC 9457 problem
// (application/problem+json) whose type is one of the Problem… constants.
//
// It fails closed: when the store fails, the request is answered 503 and
// the handler does not run. A response the policy does not store (by
// default 5xx and 429), a handler panic and a response too large to store
// release the key, so that a retry runs the handler again. A process that
// dies mid-handler leaves the key claimed until its lease expires; a
// retry then runs the handler once more.
//
// Keys are scoped: Config.Scope (required) names the tenant or subject
// whose keys they are, so keys of different clients never meet. Retention
// is the store's (dedupe.Config.Retention, 24 h by default).
//
// With a SQL store (dedupe.SQL), NewTx gives the handler the transaction
// that stores the key's response: the handler's rows, its outbox rows and
// the key commit together or not at all.
package httpidem
