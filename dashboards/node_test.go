package dashboards

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

var npmDeps struct {
	once sync.Once
	err  error
	out  []byte
}

// nodeModules runs `npm ci` in web/ unless node_modules is newer than
// package-lock.json.
func nodeModules(t testing.TB) {
	t.Helper()
	npmDeps.once.Do(func() {
		lock, err := os.Stat(filepath.Join("web", "package-lock.json"))
		if err != nil {
			npmDeps.err = err
			return
		}
		if inst, err := os.Stat(filepath.Join("web", "node_modules", ".package-lock.json")); err == nil && !inst.ModTime().Before(lock.ModTime()) {
			return
		}
		npmDeps.out, npmDeps.err = run("web", 5*time.Minute, nil, "npm", "ci", "--no-audit", "--no-fund", "--prefer-offline")
	})
	if npmDeps.err != nil {
		t.Fatalf("npm ci in web: %v\n%s", npmDeps.err, npmDeps.out)
	}
}

var chromium struct {
	once sync.Once
	err  error
	out  []byte
}

// ensureChromium runs sdk/scripts/ensure-chromium.sh, which installs
// Debian's chromium when /usr/bin/chromium is missing.
func ensureChromium(t testing.TB) {
	t.Helper()
	chromium.once.Do(func() {
		chromium.out, chromium.err = run(".", 10*time.Minute, nil, "bash", filepath.Join("..", "sdk", "scripts", "ensure-chromium.sh"))
	})
	if chromium.err != nil {
		t.Fatalf("sdk/scripts/ensure-chromium.sh: %v\n%s", chromium.err, chromium.out)
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
