//go:build !unix

package sqlite

import "sync"

// writerLock falls back to a lock within the process where flock(2) is
// missing: processes then take turns through SQLite's busy handler.
type writerLock struct{ mu sync.Mutex }

func openWriterLock(string) (*writerLock, error) { return &writerLock{}, nil }

func (l *writerLock) lock() error  { l.mu.Lock(); return nil }
func (l *writerLock) unlock()      { l.mu.Unlock() }
func (l *writerLock) close() error { return nil }
