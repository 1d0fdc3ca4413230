// Package sqlite is the eos storage driver for SQLite on modernc.org/sqlite
// (pure Go, no cgo): the embedded default.
//
// [Open] opens a database file in WAL mode with one writer connection (SQLite
// admits one writer at a time; a single connection turns lock contention into
// an ordered queue) and BEGIN IMMEDIATE transactions. Handlers receive the
// *sql.Tx of that connection and write with database/sql as usual.
//
// # Durability
//
// The default is synchronous=FULL: a committed transaction survives power
// loss. [SyncNormal] is opt-in: in WAL mode a crash of the process loses
// nothing, but a power loss or OS crash can lose the transactions committed
// since the last checkpoint's sync (up to the WAL's size, 1000 pages by
// default). After such a loss the broker redelivers what it had not been
// acknowledged for — but the acknowledgements for the lost transactions were
// sent, so their effects are gone: NORMAL trades exactly-once under power
// loss for speed.
//
// # Several processes
//
// Several processes may consume into one file (one inbox consumer name,
// one Processor each). SQLite admits one writer at a time; set
// [Config.WriterLock] to the same path in each process so that they queue
// for it in the kernel rather than in SQLite's polling busy handler.
//
// # Outbox relays
//
// One relay per database: the driver serialises relays of the same [Driver]
// in process; relays in several processes over one SQLite file are not
// supported (use PostgreSQL for that).
package sqlite
