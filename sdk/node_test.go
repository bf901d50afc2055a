package sdk_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

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

var npmDeps struct {
	once sync.Once
	err  error
	out  []byte
}

// nodeModules makes sure sdk/node_modules matches package-lock.json,
// running `npm ci` (npm's cache is ~/.npm) when it is missing or older than
// the lock file. It fails the test when npm does.
func nodeModules(t testing.TB) {
	t.Helper()
	dir := sdkDir(t)
	npmDeps.once.Do(func() {
		lock, err := os.Stat(filepath.Join(dir, "package-lock.json"))
		if err != nil {
			npmDeps.err = err
			return
		}
		if inst, err := os.Stat(filepath.Join(dir, "node_modules", ".package-lock.json")); err == nil && !inst.ModTime().Before(lock.ModTime()) {
			return
		}
		npmDeps.out, npmDeps.err = run(dir, 5*time.Minute, nil, "npm", "ci", "--no-audit", "--no-fund", "--prefer-offline")
	})
	if npmDeps.err != nil {
		t.Fatalf("npm ci in %s: %v\n%s", dir, npmDeps.err, npmDeps.out)
	}
}

var chromium struct {
	once sync.Once
	err  error
	out  []byte
}

// ensureChromium runs scripts/ensure-chromium.sh, which installs Debian's
// chromium when /usr/bin/chromium is missing.
func ensureChromium(t testing.TB) {
	t.Helper()
	dir := sdkDir(t)
	chromium.once.Do(func() {
		chromium.out, chromium.err = run(dir, 10*time.Minute, nil, "bash", "scripts/ensure-chromium.sh")
	})
	if chromium.err != nil {
		t.Fatalf("scripts/ensure-chromium.sh: %v\n%s", chromium.err, chromium.out)
	}
}

// run runs a command in dir with a timeout and returns its combined output.
func run(dir string, timeout time.Duration, env []string, name string, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	cmd.WaitDelay = 5 * time.Second
	return cmd.CombinedOutput()
}
