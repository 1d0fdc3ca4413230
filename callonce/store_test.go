package callonce_test

// memStore stands in for dedupe.NewSQL until the SQL backends land on this
// branch; it follows the dedupe.Store contract (fenced leases, generation
// that only grows, fingerprint mismatch).

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"sync"
	"time"

	"github.com/eoskit/eos/dedupe"
)

type memRecord struct {
	fp        []byte
	token     string
	gen       int64
	expires   time.Time
	completed bool
	result    []byte
	at        time.Time
}

type memStore struct {
	now func() time.Time
	mu  sync.Mutex
	rec map[string]*memRecord
}

func newMemStore(now func() time.Time) *memStore {
	return &memStore{now: now, rec: map[string]*memRecord{}}
}

func (s *memStore) Claim(_ context.Context, scope, key string, fp []byte, lease time.Duration) (dedupe.Claim, error) {
	if err := dedupe.Check(scope, key, fp, lease); err != nil {
		return dedupe.Claim{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	r := s.rec[scope+"\x00"+key]
	if r == nil {
		r = &memRecord{fp: bytes.Clone(fp)}
		s.rec[scope+"\x00"+key] = r
	} else {
		switch {
		case !bytes.Equal(r.fp, fp):
			return dedupe.Claim{Status: dedupe.Mismatch}, nil
		case r.completed:
			return dedupe.Claim{Status: dedupe.Completed, Result: bytes.Clone(r.result), CompletedAt: r.at}, nil
		case r.token != "" && now.Before(r.expires):
			return dedupe.Claim{Status: dedupe.InProgress, RetryAfter: max(r.expires.Sub(now), time.Millisecond)}, nil
		}
	}
	var b [8]byte
	rand.Read(b[:])
	r.token, r.gen, r.expires = hex.EncodeToString(b[:]), r.gen+1, now.Add(lease)
	return dedupe.Claim{Status: dedupe.Claimed, Lease: dedupe.Lease{Scope: scope, Key: key, Token: r.token, Generation: r.gen, Expires: r.expires}}, nil
}

func (s *memStore) current(l dedupe.Lease) (*memRecord, error) {
	r := s.rec[l.Scope+"\x00"+l.Key]
	if r == nil || r.completed || r.token != l.Token || r.gen != l.Generation {
		return nil, dedupe.ErrFenced
	}
	return r, nil
}

func (s *memStore) Complete(_ context.Context, l dedupe.Lease, result []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, err := s.current(l)
	if err != nil {
		return err
	}
	r.completed, r.result, r.at, r.token = true, bytes.Clone(result), s.now(), ""
	return nil
}

func (s *memStore) Release(_ context.Context, l dedupe.Lease) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, err := s.current(l)
	if err != nil {
		return err
	}
	r.token = ""
	return nil
}

func (s *memStore) Renew(_ context.Context, l dedupe.Lease, lease time.Duration) (dedupe.Lease, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, err := s.current(l)
	if err != nil {
		return dedupe.Lease{}, err
	}
	if !s.now().Before(r.expires) {
		return dedupe.Lease{}, dedupe.ErrFenced
	}
	r.expires = s.now().Add(lease)
	l.Expires = r.expires
	return l, nil
}
