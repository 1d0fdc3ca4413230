// Package dedupetest is the conformance suite of the dedupe.Store
// contract, and nothing else. A backend proves itself by passing [Run]
// with a [Backend]: a fresh, isolated store for each test, and one whose
// service is down.
//
// The suite owns the clock (dedupe.Config.Test.Now): leases, takeovers,
// fencing and retention are tested by moving it, never by waiting.
package dedupetest
