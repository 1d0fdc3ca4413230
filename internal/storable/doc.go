// Package storable makes text from outside storable: every string eos writes
// to a database that did not pass message validation (a handler's error text,
// a provider's response quoted in it, the id, key and headers of a message
// that failed validation) goes through [Text] or [Headers] first.
//
// PostgreSQL's text columns reject NUL bytes and invalid UTF-8, and a byte
// limit applied naively can cut a multi-byte character in half; one such
// string would make the statement that records a failure fail, which the
// inbox must treat as a store outage. Doing this in one place keeps every
// path (inbox, relay, later stores) storable by construction.
package storable
