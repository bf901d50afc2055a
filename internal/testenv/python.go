package testenv

import (
	"path/filepath"
	"testing"
	"time"
)

// PythonVenv returns the python of a virtualenv with the packages of
// requirements (a pip requirements file, versions pinned) installed from
// PyPI: made once under ${TELEMETRY_CACHE:-~/.cache/telemetry}/py/<hash of
// the file> and reused, never in the repository. It fails the test when
// python3 or pip does.
func PythonVenv(t testing.TB, requirements string) string {
	t.Helper()
	b, dir := stampedDir(t, "py", requirements)
	python := filepath.Join(dir, "bin", "python")
	cachedInstall(t, requirements, dir, b, func() ([]byte, error) {
		if out, err := Run("", 2*time.Minute, nil, "python3", "-m", "venv", "--clear", dir); err != nil {
			return out, err
		}
		return Run("", 10*time.Minute, nil, python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "-r", requirements)
	})
	return python
}
