package storable

import (
	"sort"
	"strings"
	"unicode/utf8"

	"github.com/eoskit/eos"
)

// Bounds for what is stored.
const (
	// MaxErrorLen bounds stored error text, in bytes.
	MaxErrorLen = 4096
	// Ellipsis marks text that was cut.
	Ellipsis = "…"
)

// Text returns s as valid UTF-8 without NUL bytes, at most max bytes long.
// Invalid bytes and NULs become U+FFFD; text longer than max is cut on a rune
// boundary and ends with [Ellipsis] (within max). A max below the length of
// the ellipsis cuts without it; max <= 0 returns "".
func Text(s string, max int) string {
	if max <= 0 {
		return ""
	}
	if len(s) <= max && utf8.ValidString(s) && strings.IndexByte(s, 0) < 0 {
		return s // the common case: nothing to do, no allocation
	}
	b := make([]byte, 0, min(len(s), max))
	cut := false
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == 0 {
			r = utf8.RuneError
		}
		if len(b)+utf8.RuneLen(r) > max {
			cut = true
			break
		}
		b = utf8.AppendRune(b, r)
		i += size
	}
	if cut && max >= len(Ellipsis) {
		for len(b) > max-len(Ellipsis) {
			_, size := utf8.DecodeLastRune(b)
			b = b[:len(b)-size]
		}
		b = append(b, Ellipsis...)
	}
	return string(b)
}

// Headers returns a storable copy of h: at most eos.MaxHeaders entries (the
// first by name), names and values passed through [Text] with the header
// limits of eos, and at most eos.MaxHeaderBytes of names and values in all.
// It returns nil for an empty h.
func Headers(h map[string]string) map[string]string {
	if len(h) == 0 {
		return nil
	}
	names := make([]string, 0, len(h))
	for k := range h {
		names = append(names, k)
	}
	sort.Strings(names)
	out := make(map[string]string, min(len(h), eos.MaxHeaders))
	total := 0
	for _, k := range names {
		if len(out) == eos.MaxHeaders {
			break
		}
		name := Text(k, eos.MaxHeaderNameLen)
		value := Text(h[k], eos.MaxHeaderValueLen)
		if total+len(name)+len(value) > eos.MaxHeaderBytes {
			break
		}
		total += len(name) + len(value)
		out[name] = value
	}
	return out
}
