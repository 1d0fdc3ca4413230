// Package driver is the storage contract between eos and a database engine.
//
// One sub-package per engine implements [Driver]: driver/sqlite
// (modernc.org/sqlite, the embedded default) and driver/postgres (pgx v5, with
// a database/sql variant). The inbox, the outbox and the compactor are written
// once against this contract; driver/drivertest is the conformance suite every
// implementation runs.
//
// TTx is the transaction type the driver hands to user code (*sql.Tx,
// pgx.Tx): handlers write their side effects with their ordinary API in the
// same transaction eos claims the message in.
package driver
