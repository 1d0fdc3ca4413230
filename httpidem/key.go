package httpidem

import (
	"errors"
	"fmt"
	"strings"
)

// HeaderKey is the request header field that carries the key.
const HeaderKey = "Idempotency-Key"

// MaxKeyLen bounds a key, in characters (printable ASCII, so bytes too): the
// draft's limit.
const MaxKeyLen = 255

// ErrInvalidKey is wrapped by every *KeyError.
var ErrInvalidKey = errors.New("httpidem: invalid Idempotency-Key")

// KeyError says why an Idempotency-Key field was refused. Its Reason is safe
// to show to the client: it never quotes the value.
type KeyError struct {
	Reason string
}

func (e *KeyError) Error() string { return ErrInvalidKey.Error() + ": " + e.Reason }

// Unwrap makes errors.Is(err, ErrInvalidKey) hold.
func (e *KeyError) Unwrap() error { return ErrInvalidKey }

// ParseKey parses one Idempotency-Key field value and returns the key it
// carries. The draft makes the field an RFC 8941 Item whose value is a
// String: a quoted run of printable ASCII in which only `"` and `\` are
// escaped (with `\`). Parameters are refused: the draft's grammar is the
// bare sf-string, and a key that changed meaning with an ignored
// parameter would be a trap. The key is 1 to MaxKeyLen characters after
// unescaping.
//
// With lenient set, a bare key is accepted too (many clients send
// `Idempotency-Key: 8e03978e-…` unquoted, as payment APIs documented it
// before the draft): 1 to MaxKeyLen visible ASCII characters other than
// `"`, `\` and `,` (a comma would mean two fields folded into one).
// A bare key and the same key quoted are the same key.
func ParseKey(value string, lenient bool) (string, error) {
	v := strings.Trim(value, " \t")
	switch {
	case v == "":
		return "", &KeyError{Reason: "empty"}
	case v[0] == '"':
		return parseString(v)
	case lenient:
		return parseBare(v)
	}
	return "", &KeyError{Reason: `not a Structured Field String: quote the key ("…")`}
}

// parseString parses an RFC 8941 sf-string that must span all of v.
func parseString(v string) (string, error) {
	var b strings.Builder
	for i := 1; i < len(v); i++ {
		c := v[i]
		switch {
		case c == '\\':
			i++
			if i == len(v) || (v[i] != '"' && v[i] != '\\') {
				return "", &KeyError{Reason: `a backslash escapes only '"' or '\'`}
			}
			c = v[i]
		case c == '"':
			if i != len(v)-1 {
				return "", &KeyError{Reason: "characters after the closing quote (the key takes no parameters)"}
			}
			return checkLen(b.String())
		case c < 0x20 || c > 0x7e:
			return "", &KeyError{Reason: "not printable ASCII"}
		}
		if b.Len() == MaxKeyLen {
			return "", &KeyError{Reason: fmt.Sprintf("more than %d characters", MaxKeyLen)}
		}
		b.WriteByte(c)
	}
	return "", &KeyError{Reason: "no closing quote"}
}

// parseBare accepts the lenient form: visible ASCII but '"', '\' and ','.
func parseBare(v string) (string, error) {
	for i := 0; i < len(v); i++ {
		if c := v[i]; c <= 0x20 || c > 0x7e || c == '"' || c == '\\' || c == ',' {
			return "", &KeyError{Reason: "an unquoted key is visible ASCII without '\"', '\\', ',' or spaces"}
		}
	}
	if len(v) > MaxKeyLen {
		return "", &KeyError{Reason: fmt.Sprintf("more than %d characters", MaxKeyLen)}
	}
	return v, nil
}

func checkLen(k string) (string, error) {
	if k == "" {
		return "", &KeyError{Reason: "empty"}
	}
	return k, nil
}
