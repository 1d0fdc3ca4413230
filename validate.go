package eos

import (
	"strconv"
	"unicode/utf8"
)

// Defaults for [Limits].
const (
	MaxIDLen          = 255
	MaxKeyLen         = 255
	MaxSubjectLen     = 255
	DefaultMaxPayload = 1 << 20 // 1 MiB
	MaxHeaderNameLen  = 256
	MaxHeaderValueLen = 8 << 10
	// MaxHeaders bounds the number of headers of a message.
	MaxHeaders = 64
	// MaxHeaderBytes bounds the names and values of a message's headers,
	// added up.
	MaxHeaderBytes = 64 << 10
)

// Limits bounds what [Limits.Validate] accepts. The zero value applies the
// defaults: payloads up to 1 MiB.
type Limits struct {
	// MaxPayload is the largest payload in bytes. 0 means DefaultMaxPayload;
	// negative is a configuration error.
	MaxPayload int
}

// Validate checks m with the default [Limits].
func Validate(m Message) error { return Limits{}.Validate(m) }

// Validate reports the first problem with m as a *[ValidationError], or nil.
//
//   - ID: non-empty, at most 255 bytes, valid UTF-8, no control characters;
//   - Key: at most 255 bytes, valid UTF-8, no control characters;
//   - Subject: the same as Key;
//   - Payload: at most MaxPayload bytes;
//   - Headers: at most 64, with at most 64 KiB of names and values in all;
//     names are RFC 9110 tokens of at most 256 bytes; values are valid UTF-8
//     of at most 8 KiB without ASCII control characters other than
//     horizontal tab.
//
// A valid message is storable as it is: every text field is valid UTF-8
// without NUL bytes, and every field is bounded.
//
// Invalid Limits (a negative MaxPayload) are reported as a *[ConfigError].
func (l Limits) Validate(m Message) error {
	if m.ID == "" {
		return &ValidationError{Field: FieldID, Reason: "empty"}
	}
	if err := checkText(FieldID, m.ID, MaxIDLen); err != nil {
		return err
	}
	if err := checkText(FieldKey, m.Key, MaxKeyLen); err != nil {
		return err
	}
	if err := checkText(FieldSubject, m.Subject, MaxSubjectLen); err != nil {
		return err
	}
	if l.MaxPayload < 0 {
		return l.Check()
	}
	max := l.PayloadLimit()
	if len(m.Payload) > max {
		return &ValidationError{Field: FieldPayload, Reason: "larger than the maximum of " + strconv.Itoa(max) + " bytes (" + strconv.Itoa(len(m.Payload)) + ")"}
	}
	if len(m.Headers) > MaxHeaders {
		return &ValidationError{Field: FieldHeader, Reason: "more than " + strconv.Itoa(MaxHeaders) + " headers (" + strconv.Itoa(len(m.Headers)) + ")"}
	}
	total := 0
	for name, value := range m.Headers {
		total += len(name) + len(value)
		if r := badHeaderName(name); r != "" {
			return &ValidationError{Field: FieldHeader, Name: name, Reason: r}
		}
		if len(value) > MaxHeaderValueLen {
			return &ValidationError{Field: FieldHeader, Name: name, Reason: "value longer than " + strconv.Itoa(MaxHeaderValueLen) + " bytes"}
		}
		if !utf8.ValidString(value) {
			return &ValidationError{Field: FieldHeader, Name: name, Reason: "value is not valid UTF-8"}
		}
		for i := 0; i < len(value); i++ {
			if c := value[i]; (c < 0x20 && c != '\t') || c == 0x7f {
				return &ValidationError{Field: FieldHeader, Name: name, Reason: "value has control character at byte " + strconv.Itoa(i)}
			}
		}
	}
	if total > MaxHeaderBytes {
		return &ValidationError{Field: FieldHeader, Reason: "names and values add up to more than " + strconv.Itoa(MaxHeaderBytes) + " bytes (" + strconv.Itoa(total) + ")"}
	}
	return nil
}

// checkText reports a *ValidationError for field unless s is at most max
// bytes of valid UTF-8 without control characters.
func checkText(field Field, s string, max int) error {
	if len(s) > max {
		return &ValidationError{Field: field, Reason: "longer than " + strconv.Itoa(max) + " bytes (" + strconv.Itoa(len(s)) + ")"}
	}
	if r := badText(s); r != "" {
		return &ValidationError{Field: field, Reason: r}
	}
	return nil
}

func badText(s string) string {
	if !utf8.ValidString(s) {
		return "not valid UTF-8"
	}
	for i, r := range s {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			return "control character at byte " + strconv.Itoa(i)
		}
	}
	return ""
}

func badHeaderName(name string) string {
	if name == "" {
		return "empty name"
	}
	if len(name) > MaxHeaderNameLen {
		return "name longer than " + strconv.Itoa(MaxHeaderNameLen) + " bytes"
	}
	for i := 0; i < len(name); i++ {
		if !isTokenChar(name[i]) {
			if name[i] < utf8.RuneSelf {
				return "name has invalid character " + strconv.QuoteRune(rune(name[i])) + " at byte " + strconv.Itoa(i)
			}
			return "name has invalid character (non-ASCII byte 0x" + strconv.FormatUint(uint64(name[i]), 16) + ") at byte " + strconv.Itoa(i)
		}
	}
	return ""
}

// isTokenChar reports whether c is a tchar of RFC 9110 section 5.6.2.
func isTokenChar(c byte) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		return true
	}
	switch c {
	case '!', '#', '$', '%', '&', '\'', '*', '+', '-', '.', '^', '_', '`', '|', '~':
		return true
	}
	return false
}

// PayloadLimit is the largest payload l accepts, in bytes: MaxPayload, or
// DefaultMaxPayload when it is 0.
func (l Limits) PayloadLimit() int {
	if l.MaxPayload == 0 {
		return DefaultMaxPayload
	}
	return l.MaxPayload
}

// Check reports a *[ConfigError] if l is not a valid configuration.
func (l Limits) Check() error {
	if l.MaxPayload < 0 {
		return &ConfigError{Field: "Limits.MaxPayload", Reason: "negative"}
	}
	return nil
}
