package testenv

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

var venvs struct {
	mu   sync.Mutex
	done map[string]error // by requirements file
	out  map[string][]byte
}

// PythonVenv returns the python of a virtualenv with the packages of
// requirements (a pip requirements file, versions pinned) installed from
// PyPI: made once under ${TELEMETRY_CACHE:-~/.cache/telemetry}/py/<hash of
// the file> and reused, never in the repository. It fails the test when
// python3 or pip does.
func PythonVenv(t testing.TB, requirements string) string {
	t.Helper()
	b, err := os.ReadFile(requirements)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	dir := filepath.Join(cacheDir(), "py", hex.EncodeToString(sum[:8]))
	python := filepath.Join(dir, "bin", "python")
	venvs.mu.Lock()
	defer venvs.mu.Unlock()
	if venvs.done == nil {
		venvs.done, venvs.out = map[string]error{}, map[string][]byte{}
	}
	err, ok := venvs.done[requirements]
	if !ok {
		err = func() error {
			if _, err := os.Stat(filepath.Join(dir, ".installed")); err == nil {
				return nil
			}
			if out, err := Run("", 2*time.Minute, nil, "python3", "-m", "venv", "--clear", dir); err != nil {
				venvs.out[requirements] = out
				return err
			}
			out, err := Run("", 10*time.Minute, nil, python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "-r", requirements)
			venvs.out[requirements] = out
			if err != nil {
				return err
			}
			return os.WriteFile(filepath.Join(dir, ".installed"), b, 0o644)
		}()
		venvs.done[requirements] = err
	}
	if err != nil {
		t.Fatalf("making the python environment of %s in %s: %v\n%s", requirements, dir, err, venvs.out[requirements])
	}
	return python
}
