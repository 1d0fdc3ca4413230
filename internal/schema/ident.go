package schema

import (
	"regexp"

	"github.com/eoskit/eos"
)

var identRE = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,39}$`)

// CheckPrefix validates a table-name prefix: lower-case letters, digits and
// underscores, starting with a letter or underscore, at most 40 bytes. field
// names the configuration field in the error.
func CheckPrefix(field, prefix string) error {
	if !identRE.MatchString(prefix) {
		return &eos.ConfigError{Field: field, Reason: "must match " + identRE.String() + ", got " + quote(prefix)}
	}
	return nil
}

// CheckSchema validates a schema name; empty means the engine's default.
func CheckSchema(field, schema string) error {
	if schema == "" {
		return nil
	}
	if !identRE.MatchString(schema) {
		return &eos.ConfigError{Field: field, Reason: "must be empty or match " + identRE.String() + ", got " + quote(schema)}
	}
	return nil
}

func quote(s string) string {
	if len(s) > 64 {
		s = s[:64] + "…"
	}
	return `"` + s + `"`
}
