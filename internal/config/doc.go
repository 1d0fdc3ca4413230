// Package config applies defaults to configuration fields and validates them
// in one way for every package, reporting *eos.ConfigError.
package config
