package eos_test

import (
	"encoding/hex"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/eoskit/eos"
)

// checkUUIDv7 fails t unless id is a canonical lower-case UUIDv7 and returns
// its 16 bytes.
func checkUUIDv7(t *testing.T, id string) [16]byte {
	t.Helper()
	var u [16]byte
	if len(id) != 36 {
		t.Fatalf("id %q has length %d, want 36", id, len(id))
	}
	for _, i := range []int{8, 13, 18, 23} {
		if id[i] != '-' {
			t.Fatalf("id %q: byte %d is %q, want '-'", id, i, id[i])
		}
	}
	h := id[0:8] + id[9:13] + id[14:18] + id[19:23] + id[24:36]
	if h != strings.ToLower(h) {
		t.Fatalf("id %q is not lower case", id)
	}
	if _, err := hex.Decode(u[:], []byte(h)); err != nil {
		t.Fatalf("id %q: %v", id, err)
	}
	if v := u[6] >> 4; v != 7 {
		t.Fatalf("id %q: version %d, want 7", id, v)
	}
	if id[14] != '7' {
		t.Fatalf("id %q: version nibble %q, want '7'", id, id[14])
	}
	if u[8]&0xc0 != 0x80 {
		t.Fatalf("id %q: variant bits %02b, want 10", id, u[8]>>6)
	}
	if !strings.ContainsRune("89ab", rune(id[19])) {
		t.Fatalf("id %q: variant nibble %q, want one of 89ab", id, id[19])
	}
	return u
}

func unixMilli(u [16]byte) int64 {
	var ms int64
	for _, b := range u[:6] {
		ms = ms<<8 | int64(b)
	}
	return ms
}

func TestNewIDShape(t *testing.T) {
	before := time.Now().UnixMilli()
	id := eos.NewID()
	after := time.Now().UnixMilli()
	u := checkUUIDv7(t, id)
	if ms := unixMilli(u); ms < before || ms > after {
		t.Fatalf("NewID timestamp %d outside [%d, %d]", ms, before, after)
	}
	if err := eos.Validate(eos.Message{ID: id}); err != nil {
		t.Fatalf("Validate refuses NewID %q: %v", id, err)
	}
}

func TestNewIDUnique(t *testing.T) {
	const n = 100_000
	seen := make(map[string]struct{}, n)
	for i := range n {
		id := eos.NewID()
		if _, dup := seen[id]; dup {
			t.Fatalf("duplicate id %q after %d ids", id, i)
		}
		seen[id] = struct{}{}
	}
	// Spot-check the shape of a few.
	k := 0
	for id := range seen {
		checkUUIDv7(t, id)
		if k++; k == 100 {
			break
		}
	}
}

func TestNewIDMonotonic(t *testing.T) {
	// google/uuid's NewV7 is monotonic within a process.
	prev := eos.NewID()
	for range 10_000 {
		id := eos.NewID()
		if id <= prev {
			t.Fatalf("NewID %q not after %q", id, prev)
		}
		prev = id
	}
}

func TestNewIDAtUnique(t *testing.T) {
	const n = 100_000
	at := time.UnixMilli(1_700_000_000_000)
	seen := make(map[string]struct{}, n)
	for i := range n {
		id := eos.NewIDAt(at) // same millisecond: only the random bits differ
		if _, dup := seen[id]; dup {
			t.Fatalf("duplicate id %q after %d ids", id, i)
		}
		seen[id] = struct{}{}
	}
}

func TestNewIDAtShapeAndTimestamp(t *testing.T) {
	times := []time.Time{
		time.UnixMilli(0),
		time.UnixMilli(1),
		time.Date(2024, 6, 1, 12, 34, 56, 789_999_999, time.UTC), // sub-ms truncated
		time.Date(2024, 6, 1, 12, 34, 56, 789_000_000, time.FixedZone("X", 3600)),
		time.UnixMilli(1_700_000_000_123),
		time.UnixMilli(1<<48 - 1), // largest 48-bit timestamp (year 10889)
		time.Now(),
	}
	for _, at := range times {
		id := eos.NewIDAt(at)
		u := checkUUIDv7(t, id)
		if got, want := unixMilli(u), at.UnixMilli(); got != want {
			t.Errorf("NewIDAt(%v) = %q: timestamp %d, want %d", at, id, got, want)
		}
		if got := time.UnixMilli(unixMilli(u)); !got.Equal(at.Truncate(time.Millisecond)) {
			t.Errorf("NewIDAt(%v): decoded %v", at, got)
		}
	}
}

func TestNewIDAtSortsByTime(t *testing.T) {
	base := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	var ids []string
	// Increasing timestamps with gaps that cross every byte of the 48-bit field.
	for _, d := range []int64{0, 1, 2, 255, 256, 257, 65535, 65536, 1 << 24, 1<<24 + 1, 1 << 32, 1 << 40} {
		ids = append(ids, eos.NewIDAt(base.Add(time.Duration(d)*time.Millisecond)))
	}
	for i := range 1000 {
		ids = append(ids, eos.NewIDAt(base.Add(time.Duration(1<<41+i)*time.Millisecond)))
	}
	if !sort.StringsAreSorted(ids) {
		for i := 1; i < len(ids); i++ {
			if ids[i] <= ids[i-1] {
				t.Fatalf("ids[%d] = %q not after ids[%d] = %q", i, ids[i], i-1, ids[i-1])
			}
		}
	}
	for i := 1; i < len(ids); i++ {
		if ids[i] == ids[i-1] {
			t.Fatalf("equal ids at %d", i)
		}
	}
	// NewIDAt and NewID share the ordering: an id for an earlier
	// millisecond sorts before NewID().
	if early, now := eos.NewIDAt(time.Now().Add(-time.Second)), eos.NewID(); early >= now {
		t.Fatalf("NewIDAt(1s ago) %q does not sort before NewID() %q", early, now)
	}
}
