package storable_test

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/eoskit/eos"
	"github.com/eoskit/eos/internal/storable"
)

func checkStorable(t *testing.T, got string, max int) {
	t.Helper()
	if !utf8.ValidString(got) {
		t.Errorf("%q is not valid UTF-8", got)
	}
	if strings.IndexByte(got, 0) >= 0 {
		t.Errorf("%q has a NUL byte", got)
	}
	if len(got) > max {
		t.Errorf("%d bytes, more than %d", len(got), max)
	}
}

func TestText(t *testing.T) {
	long := strings.Repeat("é", 3000) // 6000 bytes, two per rune
	for _, tc := range []struct {
		name, in string
		max      int
		want     string
	}{
		{"unchanged", "card declined", 100, "card declined"},
		{"nul", "a\x00b", 100, "a\uFFFDb"},
		{"invalid utf-8", "a\xffb\xc3", 100, "a\uFFFDb\uFFFD"},
		{"cut on a rune boundary", "éééé", 6, "é…"}, // 2 bytes + 3 for the ellipsis
		{"cut at exact length", "abc", 3, "abc"},
		{"cut without room for the ellipsis", "éé", 2, "é"},
		{"zero max", "abc", 0, ""},
		{"replacement grows past max", "\xff\xff\xff", 6, "\uFFFD…"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := storable.Text(tc.in, tc.max)
			if got != tc.want {
				t.Errorf("Text(%q, %d) = %q, want %q", tc.in, tc.max, got, tc.want)
			}
			checkStorable(t, got, tc.max)
		})
	}
	got := storable.Text(long, storable.MaxErrorLen)
	checkStorable(t, got, storable.MaxErrorLen)
	if !strings.HasSuffix(got, storable.Ellipsis) || !strings.HasPrefix(long, strings.TrimSuffix(got, storable.Ellipsis)) {
		t.Errorf("long text not cut to a prefix plus ellipsis: %d bytes", len(got))
	}
}

func TestHeaders(t *testing.T) {
	if storable.Headers(nil) != nil {
		t.Error("nil headers not nil")
	}
	h := map[string]string{}
	for i := range eos.MaxHeaders + 10 {
		h[strings.Repeat("n", i%7)+"\x00"+string(rune('a'+i%26))+strings.Repeat("x", i)] = strings.Repeat("\xff", 3*eos.MaxHeaderValueLen)
	}
	got := storable.Headers(h)
	if len(got) == 0 || len(got) > eos.MaxHeaders {
		t.Fatalf("%d headers kept, want 1..%d", len(got), eos.MaxHeaders)
	}
	total := 0
	for k, v := range got {
		checkStorable(t, k, eos.MaxHeaderNameLen)
		checkStorable(t, v, eos.MaxHeaderValueLen)
		total += len(k) + len(v)
	}
	if total > eos.MaxHeaderBytes {
		t.Errorf("%d header bytes kept, more than %d", total, eos.MaxHeaderBytes)
	}
}

func FuzzText(f *testing.F) {
	f.Add("abc", 3)
	f.Add("é\x00\xff", 4)
	f.Fuzz(func(t *testing.T, s string, max int) {
		max = max % 10000
		got := storable.Text(s, max)
		if max <= 0 {
			if got != "" {
				t.Fatalf("max %d gave %q", max, got)
			}
			return
		}
		checkStorable(t, got, max)
		if utf8.ValidString(s) && strings.IndexByte(s, 0) < 0 && len(s) <= max && got != s {
			t.Fatalf("storable %q changed to %q", s, got)
		}
	})
}
