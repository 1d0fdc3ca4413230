package config

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/eoskit/eos"
)

// Duration sets *p to def when it is zero and refuses a negative value.
func Duration(field string, p *time.Duration, def time.Duration) error {
	if *p == 0 {
		*p = def
	}
	if *p < 0 {
		return &eos.ConfigError{Field: field, Reason: fmt.Sprintf("negative (%v)", *p)}
	}
	return nil
}

// Int sets *p to def when it is zero and refuses a value outside 1..max.
func Int(field string, p *int, def, max int) error {
	if *p == 0 {
		*p = def
	}
	if *p < 1 || *p > max {
		return &eos.ConfigError{Field: field, Reason: fmt.Sprintf("must be 1..%d, got %d", max, *p)}
	}
	return nil
}

// Durations applies Duration to each entry, stopping at the first error.
func Durations(prefix string, fields ...DurationField) error {
	for _, f := range fields {
		if err := Duration(prefix+f.Name, f.P, f.Default); err != nil {
			return err
		}
	}
	return nil
}

// DurationField names one duration field with its default.
type DurationField struct {
	Name    string
	P       *time.Duration
	Default time.Duration
}

// Logger returns l, or slog.Default() when l is nil: the one default logger
// of every eos configuration.
func Logger(l *slog.Logger) *slog.Logger {
	if l == nil {
		return slog.Default()
	}
	return l
}
