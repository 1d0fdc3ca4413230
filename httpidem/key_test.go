package httpidem

import (
	"errors"
	"strings"
	"testing"
)

func TestParseKey(t *testing.T) {
	long := strings.Repeat("k", MaxKeyLen)
	for _, tc := range []struct {
		name, in string
		lenient  bool
		want     string // "" when refused
	}{
		{"quoted", `"8e03978e-40d5-43e8-bc93-6894a57f9324"`, false, "8e03978e-40d5-43e8-bc93-6894a57f9324"},
		{"surrounding space", " \t\"abc\" ", false, "abc"},
		{"escapes", `"a\"b\\c"`, false, `a"b\c`},
		{"space inside", `"a b"`, false, "a b"},
		{"255 chars", `"` + long + `"`, false, long},
		{"255 chars escaped", `"` + strings.Repeat(`\\`, MaxKeyLen) + `"`, false, strings.Repeat(`\`, MaxKeyLen)},
		{"256 chars", `"` + long + `k"`, false, ""},
		{"empty field", "", false, ""},
		{"empty string", `""`, false, ""},
		{"bare refused", "abc", false, ""},
		{"bare lenient", "8e03978e-40d5", true, "8e03978e-40d5"},
		{"bare 256 lenient", long + "k", true, ""},
		{"bare with comma", "a,b", true, ""},
		{"bare with space", "a b", true, ""},
		{"quoted in lenient", `"abc"`, true, "abc"},
		{"non-printable", "\"a\x01b\"", false, ""},
		{"non-ascii", "\"caf\xc3\xa9\"", false, ""},
		{"tab inside", "\"a\tb\"", false, ""},
		{"bad escape", `"a\nb"`, false, ""},
		{"unterminated", `"abc`, false, ""},
		{"trailing escape", `"abc\`, false, ""},
		{"parameters", `"abc";v=1`, false, ""},
		{"two strings", `"a", "b"`, false, ""},
		{"token", "abc", false, ""},
		{"integer", "42", false, ""},
		{"byte sequence", ":YWJj:", false, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseKey(tc.in, tc.lenient)
			if tc.want == "" {
				var ke *KeyError
				if err == nil || !errors.Is(err, ErrInvalidKey) || !errors.As(err, &ke) || ke.Reason == "" {
					t.Fatalf("ParseKey(%q) = %q, %v; want a *KeyError", tc.in, got, err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("ParseKey(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
			}
		})
	}
}

// FuzzParseKey checks that every key ParseKey accepts is within the
// draft's bounds, that quoting it again parses back to it, and that the
// lenient mode accepts everything the strict one does.
func FuzzParseKey(f *testing.F) {
	for _, s := range []string{`"abc"`, `"a\"b"`, "abc", `""`, `"` + strings.Repeat("x", 300) + `"`, "\"\x7f\"", `"a";b`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		k, err := ParseKey(in, false)
		kl, errl := ParseKey(in, true)
		if err == nil && (errl != nil || kl != k) {
			t.Fatalf("lenient disagrees on %q: %q, %v vs %q", in, kl, errl, k)
		}
		for _, got := range []struct {
			k   string
			err error
		}{{k, err}, {kl, errl}} {
			if got.err != nil {
				if !errors.Is(got.err, ErrInvalidKey) {
					t.Fatalf("ParseKey(%q): error %v is not ErrInvalidKey", in, got.err)
				}
				continue
			}
			if got.k == "" || len(got.k) > MaxKeyLen {
				t.Fatalf("ParseKey(%q) = %q: length %d out of 1..%d", in, got.k, len(got.k), MaxKeyLen)
			}
			for i := 0; i < len(got.k); i++ {
				if c := got.k[i]; c < 0x20 || c > 0x7e {
					t.Fatalf("ParseKey(%q) = %q: byte %#x is not printable ASCII", in, got.k, c)
				}
			}
			if back, err := ParseKey(quote(got.k), false); err != nil || back != got.k {
				t.Fatalf("quoting %q again parses to %q, %v", got.k, back, err)
			}
		}
	})
}

// quote renders k as an RFC 8941 String.
func quote(k string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(k) + `"`
}
