package sqlutil

import (
	"encoding/json"
	"strconv"
	"strings"
)

// EncodeHeaders returns headers as JSON, or nil when there are none.
func EncodeHeaders(h map[string]string) []byte {
	if len(h) == 0 {
		return nil
	}
	b, _ := json.Marshal(h) // a map[string]string always marshals
	return b
}

// DecodeHeaders parses what EncodeHeaders wrote.
func DecodeHeaders(b []byte) (map[string]string, error) {
	if len(b) == 0 {
		return nil, nil
	}
	var h map[string]string
	err := json.Unmarshal(b, &h)
	return h, err
}

// Placeholders returns "?,?,…" with n marks, for SQL IN lists.
func Placeholders(n int) string {
	return strings.TrimSuffix(strings.Repeat("?,", n), ",")
}

// Numbered returns "$from,$from+1,…" with n marks.
func Numbered(from, n int) string {
	var b strings.Builder
	for i := 0; i < n; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteByte('$')
		b.WriteString(strconv.Itoa(from + i))
	}
	return b.String()
}
