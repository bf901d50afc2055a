//go:build !unix

package wal

// lockDir is a no-op where flock is not available.
func lockDir(string) (func() error, error) { return func() error { return nil }, nil }
