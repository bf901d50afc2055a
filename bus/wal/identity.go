package wal

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// idName is the file that holds the log's identity.
const idName = "ID"

// ID is the log's identity: 16 random hex digits made when the directory
// first holds a log and kept in its ID file. Sequence numbers are unique
// only within one identity: a log whose directory was wiped starts again
// at seq 1 under a new identity, so (ID, seq) names one record for good,
// and a consumer that deduplicates on positions must key them by both.
func (l *Log) ID() string { return l.id }

// AdoptID gives the log in dir the identity id, before it is opened, when
// dir holds a log (segments or cursors) without an identity of its own:
// a log written by a version that kept its identity elsewhere, so it keeps
// the name its records were stored under. It reports whether it did; an
// empty or new directory, or a log with an identity, is left alone (Open
// makes a new identity for the former).
func AdoptID(dir, id string) (bool, error) {
	if _, err := os.Stat(filepath.Join(dir, idName)); err == nil {
		return false, nil
	}
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	} else if err != nil {
		return false, fmt.Errorf("wal: adopt identity: %w", err)
	}
	for _, e := range entries {
		if _, seg := parseSegmentName(e.Name()); seg || e.Name() == cursorsSubdir {
			if err := os.WriteFile(filepath.Join(dir, idName), []byte(strings.TrimSpace(id)+"\n"), 0o644); err != nil {
				return false, fmt.Errorf("wal: adopt identity: %w", err)
			}
			return true, nil
		}
	}
	return false, nil
}

// loadID reads the ID file, or makes one when there is none: a new
// directory, a wiped one, or one written before logs had identities.
func (l *Log) loadID() (string, error) {
	path := filepath.Join(l.cfg.Dir, idName)
	if id, err := readSmallFile(l.fs, path); err == nil {
		id = strings.TrimSpace(id)
		if len(id) == 0 || len(id) > 64 {
			return "", fmt.Errorf("identity file %s holds %q: %w", path, id, ErrCorrupt)
		}
		return id, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("read identity: %w", err)
	}
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("make identity: %w", err)
	}
	id := hex.EncodeToString(b[:])
	if len(l.segs) > 0 && l.segs[len(l.segs)-1].last > 0 {
		l.log.Warn("wal: log without an identity file; it gets a new identity", "id", id)
	}
	if err := l.replaceFile(l.cfg.Dir, idName, []byte(id+"\n")); err != nil {
		return "", fmt.Errorf("write identity: %w", err)
	}
	return id, nil
}

// readSmallFile returns the whole content of a small file.
func readSmallFile(fs fsys, path string) (string, error) {
	f, err := fs.OpenFile(path, os.O_RDONLY, 0)
	if err != nil {
		return "", err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return "", err
	}
	buf := make([]byte, min(st.Size(), 4096))
	if _, err := f.ReadAt(buf, 0); err != nil && !errors.Is(err, io.EOF) {
		return "", err
	}
	return string(buf), nil
}

// replaceFile makes dir/name hold data, atomically and durably: a
// temporary file, fsync, rename over the old one, fsync of the directory.
func (l *Log) replaceFile(dir, name string, data []byte) error {
	tmp := filepath.Join(dir, "."+name+".tmp")
	f, err := l.fs.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("create temp file: %w", err)
	}
	if _, err := f.WriteAt(data, 0); err != nil {
		f.Close()
		l.fs.Remove(tmp)
		return fmt.Errorf("write temp file: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		l.fs.Remove(tmp)
		return fmt.Errorf("fsync temp file: %w", err)
	}
	if err := f.Close(); err != nil {
		l.fs.Remove(tmp)
		return fmt.Errorf("close temp file: %w", err)
	}
	if err := l.fs.Rename(tmp, filepath.Join(dir, name)); err != nil {
		l.fs.Remove(tmp)
		return fmt.Errorf("rename temp file: %w", err)
	}
	if err := l.fs.SyncDir(dir); err != nil {
		return fmt.Errorf("fsync directory: %w", err)
	}
	return nil
}
