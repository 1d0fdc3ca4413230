package postgres

import "github.com/jackc/pgx/v5/pgxpool"

// Literal is literal, for the tests of the one-round-trip claim.
var Literal = literal

// Pool is the driver's pool, for benchmarks that run their own statements
// the way the driver does.
func (d *Driver) Pool() *pgxpool.Pool { return d.pool }
