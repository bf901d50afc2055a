//go:build unix

package wal

import (
	"fmt"
	"os"
	"syscall"
)

// lockDir takes an exclusive, non-blocking flock on <dir>/LOCK so that two
// Logs (or two processes) never share a directory. The kernel drops the
// lock when the process dies, so a crash leaves no stale lock.
func lockDir(path string) (release func() error, err error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open lock file: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("lock %s (is another process using the log?): %w", path, err)
	}
	return f.Close, nil
}
