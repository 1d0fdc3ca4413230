// Package reconcile checks, after the fact, that a consumer applied what it
// was sent: it compares an authoritative [Source] (a JetStream stream
// range, [JetStreamSource]; a Kafka topic up to each partition's last
// stable offset, [KafkaSource]; or a producer's own table read through
// SQL, [SQLSource]) with the consumer's inbox claims and reports
//
//   - missed applies (the SLI M2): ids in the source the consumer never
//     claimed;
//   - unexpected applies: claims, made while the source's range was being
//     written, of ids the source does not hold;
//   - duplicate effects: ids the application's own effect table holds more
//     than once (the inbox's table cannot hold an id twice, so only the
//     effects can show a duplicate that got through; Config.Duplicates is
//     the query that finds them);
//   - partial commits (the SLI M3): outbox rows committed but still unsent
//     past Config.PartialAfter.
//
// The inbox's proof and the processor's own checks work while a message
// is handled; reconciliation is the independent second look an operator
// runs (eos reconcile) or schedules ([Runner], inside eos serve) to learn
// that something was lost or doubled without waiting for a customer to say
// so.
//
// What cannot be checked is said, not guessed: claims older than the
// compactor's retention may be gone, so an unclaimed source id from before
// that horizon counts as uncheckable, never as missed; source ids younger
// than Config.Settle count as pending (the consumer may not have reached
// them yet).
//
// Memory is bounded whatever the range: the source and the claims are read
// a page at a time (Config.PageSize; KafkaSource also holds one fetch's
// records, from at most 1 MiB of record batches or one larger batch), and
// the source's ids are remembered as 64-bit hashes, at most
// Config.MaxSourceIDs of them (8 bytes each in a map, about 40 bytes with
// its overhead), which the unexpected-apply check needs. Past that bound
// the unexpected-apply check is skipped and the report says so; the other
// checks go on. Reports keep the first Config.SampleSize ids of each
// finding.
package reconcile
