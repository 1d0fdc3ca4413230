package postgres

// Literal is literal, for the tests of the one-round-trip claim.
var Literal = literal
