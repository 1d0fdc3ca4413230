// Package postgres is the eos storage driver for PostgreSQL on pgx v5.
//
// Two drivers share one set of SQL:
//
//   - [New] takes a *pgxpool.Pool and implements driver.Driver[pgx.Tx]:
//     handlers receive a pgx.Tx.
//   - [NewStdlib] takes a *sql.DB opened with the pgx stdlib driver
//     (sql.Open("pgx", …), stdlib.OpenDB or stdlib.OpenDBFromPool) and
//     implements driver.Driver[*sql.Tx] for database/sql code.
//
// Neither opens or closes the pool it is given, and neither migrates on its
// own: call Migrator().Up. Migrations run under a transaction-scoped advisory
// lock derived from the migrations table's name, so several processes may
// migrate at once, and create [Config.Schema] if it does not exist.
//
// # Configuration
//
// The zero [Config] is valid: tables are created unqualified, in the first
// schema of the connection's search_path, as eos_inbox, eos_outbox and so on.
// Schema qualifies them (myschema.eos_outbox) and Prefix replaces "eos_".
// NotifyChannel defaults to the qualified outbox table name. Invalid values
// are reported as *eos.ConfigError.
//
// eos sends UTF-8 text and stores it as it is: every transaction the driver
// begins fails with an *eos.ConfigError when the connection's
// client_encoding, or the database's encoding, is neither UTF8 nor
// SQL_ASCII (read from what the server reports, without a round trip).
//
// # Outbox relays
//
// Any number of relays, in any number of processes, may drain one outbox,
// and each key's rows are still published in seq order. The head of a key
// is its oldest unsent row; every row with the empty key is a head of its
// own (no order among those). OutboxClaim begins a transaction, locks heads
// with FOR UPDATE SKIP LOCKED (heads another relay holds are skipped) and
// takes, in seq order, the unsent rows that are locked heads or share a key
// with one. The transaction stays open while the relay publishes: meanwhile
// no other relay can lock those keys' heads, and their later rows are not
// heads. Complete marks the published rows sent (or deletes them) and
// commits; Abort rolls back. A relay that dies mid-batch loses its
// connection, and with it the transaction and the locks; the next relay
// publishes the same rows again, with the same message ids, for the broker
// to deduplicate. A batch therefore holds a pooled connection while it is
// published: keep idle_in_transaction_session_timeout above the longest
// publish, or unset.
//
// Order per key is seq order, and seq is taken at insert, not at commit: when
// two transactions enqueue rows of one key concurrently, a relay may publish
// a row before a lower-seq row of the same key whose transaction commits
// later. Enqueue one key from one transaction at a time (as consuming one
// partition in order does) when that order matters.
//
// # One round trip to begin and claim
//
// The pgx [Driver] implements driver.ClaimBeginner: for batches of up to 64
// messages, BEGIN and the claim travel as one simple-protocol query, saving
// the round trip that dominates small batches. The values are sent as
// escape-string literals of printable ASCII (every other byte as \xHH), which
// the server reads back unchanged whatever standard_conforming_strings and
// the client encoding of the connection say. Only ASCII ids and consumer
// names take this path: other text would be stored in the server's encoding
// as its bytes, not converted from the client encoding as a parameter is,
// and the two paths would disagree wherever the encodings differ. A claim
// conflict (or a value the path declines) makes the inbox fall back to Begin
// plus InboxClaim, and keep to that path for the next batches.
//
// # Wakeups
//
// OutboxInsert queues pg_notify on NotifyChannel in its own statement, so
// relays are woken when the transaction commits and never before (nor at all
// if it rolls back). OutboxWakeup LISTENs on a dedicated connection — a
// connection hijacked from the pool for [New], one opened with the
// configuration of db's connections for [NewStdlib] — shared by the
// driver's subscribers. When it drops, the driver reconnects with jittered
// backoff (up to 100ms, the bound doubling up to 10s) and wakes subscribers once, since a
// notification may have been missed in between.
package postgres
