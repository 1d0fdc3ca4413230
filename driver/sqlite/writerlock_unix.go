//go:build unix

package sqlite

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"syscall"
)

// writerLock is an exclusive lock that processes share: flock(2) on a file.
// An flock belongs to the open file, not to a goroutine, so the mutex keeps
// the goroutines of one process from sharing a turn.
type writerLock struct {
	mu sync.Mutex
	f  *os.File
}

func openWriterLock(path string) (*writerLock, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600) // owner only, like the database
	if err != nil {
		return nil, fmt.Errorf("sqlite: writer lock: %w", err)
	}
	return &writerLock{f: f}, nil
}

func (l *writerLock) lock() error {
	l.mu.Lock()
	for {
		err := syscall.Flock(int(l.f.Fd()), syscall.LOCK_EX)
		if errors.Is(err, syscall.EINTR) {
			continue
		}
		if err != nil {
			l.mu.Unlock()
			return fmt.Errorf("sqlite: writer lock %s: %w", l.f.Name(), err)
		}
		return nil
	}
}

func (l *writerLock) unlock() {
	syscall.Flock(int(l.f.Fd()), syscall.LOCK_UN) // fails only on a bad fd; closing the file releases it too
	l.mu.Unlock()
}

func (l *writerLock) close() error { return l.f.Close() }
