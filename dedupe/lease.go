package dedupe

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"time"
)

// TokenLen is the length of a lease token: 128 random bits in hex.
const TokenLen = 32

// NewToken returns a fresh lease token: 128 bits from crypto/rand, in hex,
// so that no two claims share one.
func NewToken() string {
	var b [TokenLen / 2]byte
	rand.Read(b[:]) // never fails (crypto/rand panics instead)
	return hex.EncodeToString(b[:])
}

// CheckLease validates a lease handed to Complete, Release or Renew as
// every Store must: its scope and key as Check wants them, a token and a
// positive generation.
func CheckLease(l Lease) error {
	if err := Check(l.Scope, l.Key, nil, 1); err != nil {
		return err
	}
	switch {
	case l.Token == "" || len(l.Token) > 2*TokenLen:
		return &InvalidError{Arg: "lease", Reason: fmt.Sprintf("token of %d bytes", len(l.Token))}
	case l.Generation <= 0:
		return &InvalidError{Arg: "lease", Reason: fmt.Sprintf("generation %d, want > 0", l.Generation)}
	}
	return nil
}

// CheckRenew validates Renew's arguments: CheckLease, and a positive lease
// duration.
func CheckRenew(l Lease, lease time.Duration) error {
	if err := CheckLease(l); err != nil {
		return err
	}
	if lease <= 0 {
		return &InvalidError{Arg: "lease", Reason: fmt.Sprintf("%v, want > 0", lease)}
	}
	return nil
}

// RecordExpiry is when a record written at now, with a lease until
// leaseEnd (zero: none), may be removed: retention after the write, and
// never before the lease ends (a live lease must not vanish).
func (c Config) RecordExpiry(now, leaseEnd time.Time) time.Time {
	exp := now.Add(c.Retention)
	if leaseEnd.After(exp) {
		return leaseEnd
	}
	return exp
}

// RetryAfter is Claim.RetryAfter for a lease ending at end: at least 1ms.
func RetryAfter(now, end time.Time) time.Duration {
	return max(end.Sub(now), time.Millisecond)
}
