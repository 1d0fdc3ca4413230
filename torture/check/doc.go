// Package check is the one checker of the payments scenario, for eos demo
// and eos torture alike: it reads what a run left behind and says whether
// every order was applied once and charged once.
//
// It trusts no worker's counter. [Facts] are read after the run from
// sources the workers cannot bend: the producer's intent log (what was
// meant to be sent, fsync'd before each publish; torture/intents), the
// ORDERS stream or the orders topic ([SourceIDs]), the scenario's tables,
// eos's own state read through eos's admin API ([Reader]: inbox.Processor's Stats and
// DeadLetters, outbox.Outbox's Stats; no eos table name appears here) and
// the provider's charge records. [Verdict] computes the [Report] from the
// facts alone, so it is tested on made-up facts with each kind of
// violation planted in them.
//
// A run that timed out before its pipeline drained is Incomplete: only
// what must hold at every moment is checked (nothing applied or charged
// twice, nothing unexpected, money conserved, nothing quarantined); an
// order not yet applied is in flight, not lost.
package check
