// Package schema validates SQL identifiers from configuration, renders the
// drivers' embedded migration templates with them, and runs migrations. It
// is shared by the drivers; no SQL here is built from an unchecked name.
package schema
