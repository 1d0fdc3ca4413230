// Package private creates the torture harness's files and directories for
// their owner only: they hold the workers' logs, the intent log and the
// provider's records, which may quote connection strings and payloads.
package private

import "os"

// Modes of what the harness creates.
const (
	DirMode  = 0o700
	FileMode = 0o600
)

// Create creates (or truncates, with trunc; else appends to) the file at
// path, readable by its owner only.
func Create(path string, trunc bool) (*os.File, error) {
	flag := os.O_CREATE | os.O_WRONLY | os.O_APPEND
	if trunc {
		flag = os.O_CREATE | os.O_WRONLY | os.O_TRUNC
	}
	f, err := os.OpenFile(path, flag, FileMode)
	if err != nil {
		return nil, err
	}
	// A file left by an older run keeps its mode through O_CREATE.
	if err := f.Chmod(FileMode); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}
