//go:build unix

package main

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"syscall"
)

// fileLock is an exclusive lock shared by processes: flock(2) on a file.
// The mutex keeps the goroutines of one process from sharing the turn (an
// flock belongs to the open file, not to a goroutine).
type fileLock struct {
	mu sync.Mutex
	f  *os.File
}

func openFileLock(path string) (*fileLock, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("lock file: %w", err)
	}
	return &fileLock{f: f}, nil
}

func (l *fileLock) lock() error {
	l.mu.Lock()
	for {
		err := syscall.Flock(int(l.f.Fd()), syscall.LOCK_EX)
		if errors.Is(err, syscall.EINTR) {
			continue
		}
		if err != nil {
			l.mu.Unlock()
			return fmt.Errorf("lock %s: %w", l.f.Name(), err)
		}
		return nil
	}
}

func (l *fileLock) unlock() {
	syscall.Flock(int(l.f.Fd()), syscall.LOCK_UN)
	l.mu.Unlock()
}

func (l *fileLock) close() error { return l.f.Close() }
