package outbox

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestStorableText(t *testing.T) {
	for _, c := range []struct {
		in   string
		max  int
		want string
	}{
		{"plain", 10, "plain"},
		{"a\x00b", 10, "a\uFFFDb"},
		{"a\xffb", 10, "a\uFFFDb"},
		{"éé", 3, "é"},  // the second é would be cut in half
		{"aé", 2, "a"},  // likewise
		{"éé", 4, "éé"}, // exactly fits
		{"\x00", 2, ""}, // U+FFFD is 3 bytes
	} {
		got := storableText(c.in, c.max)
		if got != c.want || !utf8.ValidString(got) || len(got) > c.max || strings.ContainsRune(got, 0) {
			t.Errorf("storableText(%q, %d) = %q, want %q", c.in, c.max, got, c.want)
		}
	}
}
