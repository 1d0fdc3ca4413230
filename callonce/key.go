package callonce

import (
	"fmt"
	"net/http"
	"strings"
)

// MaxKeyLen bounds a key: the IETF Idempotency-Key draft's services accept
// keys of up to 255 characters.
const MaxKeyLen = 255

// HeaderName is the request header that carries the idempotency key.
const HeaderName = "Idempotency-Key"

// KeyError is returned for a key no service would accept.
type KeyError struct{ Reason string }

func (e *KeyError) Error() string { return "callonce: idempotency key: " + e.Reason }

// CheckKey accepts a key of 1..MaxKeyLen printable ASCII characters (space
// excluded), which every service can take as a header value, quoted or not.
func CheckKey(key string) error {
	if key == "" {
		return &KeyError{Reason: "empty"}
	}
	if len(key) > MaxKeyLen {
		return &KeyError{Reason: fmt.Sprintf("%d bytes, more than %d", len(key), MaxKeyLen)}
	}
	for i := 0; i < len(key); i++ {
		if key[i] <= ' ' || key[i] > '~' {
			return &KeyError{Reason: fmt.Sprintf("byte %d is not printable ASCII", i)}
		}
	}
	return nil
}

// HeaderValue is key as the draft's Structured Field string: quoted, with
// '"' and '\' escaped.
func HeaderValue(key string) string {
	var b strings.Builder
	b.Grow(len(key) + 2)
	b.WriteByte('"')
	for i := 0; i < len(key); i++ {
		if key[i] == '"' || key[i] == '\\' {
			b.WriteByte('\\')
		}
		b.WriteByte(key[i])
	}
	b.WriteByte('"')
	return b.String()
}

// SetHeader sets the Idempotency-Key header of req to key, as the draft's
// Structured Field string (HeaderValue). Services that take the header's
// raw value (many payment APIs) see the quotes as part of the key, which
// is as stable as the key itself.
func SetHeader(req *http.Request, key string) { req.Header.Set(HeaderName, HeaderValue(key)) }
