// Package testdb gives the repository's tests a migrated engine on an
// isolated database ([SQLite], and PostgreSQL in package engines), with the
// means to run their own SQL in its transactions, and the payments workload
// tests and benchmarks share. It compiles the SQLite driver only; package
// engines adds PostgreSQL and runs a test on every engine ([engines.Each]).
package testdb
