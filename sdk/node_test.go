package sdk_test

import (
	"path/filepath"
	"testing"

	"github.com/sora3web/telemetry/internal/testenv"
)

// sdkDir is the SDK's directory (sdk/ of the repository).
func sdkDir(t testing.TB) string {
	t.Helper()
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join(root, "sdk")
}

// nodeModules makes sure sdk/node_modules matches package-lock.json.
func nodeModules(t testing.TB) { t.Helper(); testenv.NodeModules(t, sdkDir(t)) }

// ensureChromium installs Debian's chromium when it is missing.
func ensureChromium(t testing.TB) { t.Helper(); testenv.Chromium(t) }

// run runs a command in dir with a timeout; see testenv.Run.
var run = testenv.Run
