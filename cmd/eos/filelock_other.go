//go:build !unix

package main

import "sync"

// fileLock falls back to a lock within the process where flock(2) is
// missing: the processes then take turns through SQLite's busy handler.
type fileLock struct{ mu sync.Mutex }

func openFileLock(string) (*fileLock, error) { return &fileLock{}, nil }

func (l *fileLock) lock() error  { l.mu.Lock(); return nil }
func (l *fileLock) unlock()      { l.mu.Unlock() }
func (l *fileLock) close() error { return nil }
