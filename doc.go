// Package eos is the root of the eos toolkit: exactly-once effects for Go
// services.
//
// The invariant eos maintains: for every consumed message, the claim of its
// id, the handler's writes, the messages it emits (outbox rows) and, when
// enabled, the audit record commit in one local database transaction, and the
// broker is acknowledged only after that commit.
//
// This package holds what every other package shares: [Message], the id
// helpers ([NewID]), message validation ([Limits], [ValidationError]) and the
// sentinel errors. The storage engines live under driver/, the consumer in
// inbox/, the transactional outbox in outbox/.
package eos
