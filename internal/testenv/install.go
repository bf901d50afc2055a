package testenv

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

var installs struct {
	mu   sync.Mutex
	done map[string]error // by directory
	out  map[string][]byte
}

// cachedInstall fills dir (under the cache) once: install runs only when
// dir/.installed does not hold stamp (what was installed: a requirements
// file, a pom), at most once per process, and its output is shown when it
// fails, which fails the test.
func cachedInstall(t testing.TB, what, dir string, stamp []byte, install func() ([]byte, error)) {
	t.Helper()
	installs.mu.Lock()
	defer installs.mu.Unlock()
	if installs.done == nil {
		installs.done, installs.out = map[string]error{}, map[string][]byte{}
	}
	err, ok := installs.done[dir]
	if !ok {
		err = func() error {
			marker := filepath.Join(dir, ".installed")
			if b, err := os.ReadFile(marker); err == nil && bytes.Equal(b, stamp) {
				return nil
			}
			out, err := install()
			installs.out[dir] = out
			if err != nil {
				return err
			}
			return os.WriteFile(marker, stamp, 0o644)
		}()
		installs.done[dir] = err
	}
	if err != nil {
		t.Fatalf("installing %s into %s: %v\n%s", what, dir, err, installs.out[dir])
	}
}

// stampedDir reads file (a requirements file, a pom: what to install) and
// returns it with the cache directory kind/<hash of it> that holds what it
// names, so a changed file gets a directory of its own.
func stampedDir(t testing.TB, kind, file string) ([]byte, string) {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	return b, filepath.Join(cacheDir(), kind, hex.EncodeToString(sum[:8]))
}

// cacheDir is where downloads for tests live: $TELEMETRY_CACHE, else
// ~/.cache/telemetry (as the Makefile's).
func cacheDir() string {
	if c := os.Getenv("TELEMETRY_CACHE"); c != "" {
		return c
	}
	home, _ := os.UserHomeDir()
	return filepath.Join(home, ".cache", "telemetry")
}
