// Package engines adds PostgreSQL (through pgx and database/sql, on a fresh
// schema read from EOS_TEST_POSTGRES_URL) to package testdb, and [Each],
// which runs a generic test on every engine.
package engines
