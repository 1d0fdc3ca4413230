package eos

import (
	"crypto/rand"
	"time"

	"github.com/google/uuid"
)

// NewID returns a new time-ordered id: a UUIDv7 in its canonical text form.
//
// Time-ordered ids keep dedupe inserts at the right edge of the index; random
// ids make each insert a random B-tree write, several times slower on SQLite.
// Ids from elsewhere are accepted as they come.
func NewID() string {
	return uuid.Must(uuid.NewV7()).String()
}

// NewIDAt returns a UUIDv7 whose timestamp is t, for callers that inject a
// clock. Ids made within the same millisecond are ordered only by their random
// bits. Times outside the 48-bit millisecond range of UUIDv7 (before 1970, or
// after the year 10889) are clamped to it.
func NewIDAt(t time.Time) string {
	var u uuid.UUID
	if _, err := rand.Read(u[:]); err != nil {
		panic("eos: crypto/rand failed: " + err.Error())
	}
	ms := uint64(min(max(t.UnixMilli(), 0), 1<<48-1))
	u[0], u[1], u[2] = byte(ms>>40), byte(ms>>32), byte(ms>>24)
	u[3], u[4], u[5] = byte(ms>>16), byte(ms>>8), byte(ms)
	u[6] = u[6]&0x0f | 0x70 // version 7
	u[8] = u[8]&0x3f | 0x80 // RFC 9562 variant
	return u.String()
}
