// Package inbox is the exactly-once consumer.
//
// A [Processor] takes deliveries from any transport through [Source], groups
// them into batches (up to Config.MaxBatch messages or Config.MaxWait), and
// for each batch, in one database transaction:
//
//  1. claims (consumer, id, fingerprint) for the whole batch in one
//     set-based insert-if-absent;
//  2. runs the handler for each message it newly claimed, with the
//     transaction, so the handler's writes and the outbox rows it enqueues
//     commit with the claim;
//  3. records duplicates (same id, same fingerprint: suppressed),
//     conflicts (same id, different fingerprint: quarantined) and poison
//     messages (Config.MaxAttempts failures: dead-lettered);
//
// then commits, and only then acknowledges the applied, duplicate,
// quarantined and dead-lettered deliveries and negatively acknowledges the
// failed ones. A crash before the commit leaves nothing; a crash after it
// leaves a redelivery the claim turns into a no-op.
//
// On the happy path a batch costs the inbox three statements (begin, claim,
// commit) whatever its size. A handler error is isolated so that it never
// rolls back or blocks the rest of the batch: by default ([IsolateAuto]) the
// batch is redone with a savepoint around each handler, so the failed message
// is rolled back alone; [IsolateRedo] redoes the batch without each failed
// message instead, and [IsolateSavepoint] uses savepoints from the start
// (two more statements per message).
//
// When the store fails on the inbox's own path, [Processor.Run] stalls with
// backoff, acknowledges nothing and logs at error level until the store is
// back. There is no fallback to at-least-once.
package inbox
