package eos_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"testing"
	"time"

	"github.com/eoskit/eos"
)

func TestFingerprintSizeAndDeterminism(t *testing.T) {
	m := eos.Message{ID: "a", Key: "k", Payload: []byte("p")}
	fp := eos.Fingerprint(m)
	if len(fp) != eos.FingerprintSize || eos.FingerprintSize != 16 {
		t.Fatalf("len(Fingerprint) = %d, FingerprintSize = %d, want 16", len(fp), eos.FingerprintSize)
	}
	if again := eos.Fingerprint(m); !bytes.Equal(fp, again) {
		t.Fatalf("Fingerprint not deterministic: %x vs %x", fp, again)
	}
	// The returned slice is the caller's: changing it does not change later results.
	fp[0] ^= 0xff
	if again := eos.Fingerprint(m); bytes.Equal(fp, again) {
		t.Fatalf("Fingerprint result aliases internal state")
	}
}

func TestFingerprintIgnoresIDHeadersCreatedAt(t *testing.T) {
	a := eos.Message{ID: "a", Key: "k", Payload: []byte("p")}
	b := eos.Message{ID: "b", Key: "k", Payload: []byte("p"),
		Headers: map[string]string{"X": "y"}, CreatedAt: time.Unix(1, 0)}
	if !bytes.Equal(eos.Fingerprint(a), eos.Fingerprint(b)) {
		t.Fatal("Fingerprint depends on ID, Headers or CreatedAt")
	}
	// nil and empty payloads are the same content.
	c := eos.Message{Key: "k"}
	d := eos.Message{Key: "k", Payload: []byte{}}
	if !bytes.Equal(eos.Fingerprint(c), eos.Fingerprint(d)) {
		t.Fatal("nil and empty payload fingerprint differently")
	}
}

// TestFingerprintIgnoresSubject: the same event delivered on another
// subject (re-published under a new name, or seen through a wider filter)
// is a duplicate, not a conflict.
func TestFingerprintIgnoresSubject(t *testing.T) {
	a := eos.Message{ID: "a", Key: "k", Payload: []byte("p"), Subject: "orders.created"}
	for _, subject := range []string{"", "orders.cancelled", "k", "kp"} {
		b := a
		b.Subject = subject
		if !bytes.Equal(eos.Fingerprint(a), eos.Fingerprint(b)) {
			t.Errorf("Fingerprint with Subject %q differs from Subject %q", subject, a.Subject)
		}
	}
}

func TestFingerprintDistinguishesKeyPayloadSplit(t *testing.T) {
	pairs := [][2]eos.Message{
		{{Key: "ab", Payload: []byte("c")}, {Key: "a", Payload: []byte("bc")}},
		{{Key: "", Payload: []byte("abc")}, {Key: "abc"}},
		{{Key: "a", Payload: []byte("")}, {Key: "", Payload: []byte("a")}},
		{{Key: "k", Payload: []byte("p")}, {Key: "k", Payload: []byte("q")}},
		{{Key: "k", Payload: []byte("p")}, {Key: "K", Payload: []byte("p")}},
	}
	for _, p := range pairs {
		if bytes.Equal(eos.Fingerprint(p[0]), eos.Fingerprint(p[1])) {
			t.Errorf("Fingerprint(Key %q, Payload %q) == Fingerprint(Key %q, Payload %q)",
				p[0].Key, p[0].Payload, p[1].Key, p[1].Payload)
		}
	}
}

// TestFingerprintFormat pins the documented construction: SHA-256 over the
// big-endian 8-byte key length, the key and the payload, truncated to 16
// bytes. Stored fingerprints depend on it, so it must not drift.
func TestFingerprintFormat(t *testing.T) {
	m := eos.Message{Key: "order-42", Payload: []byte(`{"total":12}`)}
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], uint64(len(m.Key)))
	sum := sha256.Sum256(append(append(n[:], m.Key...), m.Payload...))
	if got := eos.Fingerprint(m); !bytes.Equal(got, sum[:16]) {
		t.Fatalf("Fingerprint = %x, want %x", got, sum[:16])
	}
}
