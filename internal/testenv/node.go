package testenv

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

var npm struct {
	mu   sync.Mutex
	done map[string]error // by directory
	out  map[string][]byte
}

// NodeModules makes sure dir/node_modules matches dir/package-lock.json,
// running `npm ci` (npm's cache is ~/.npm) once per process when it is
// missing or older than the lock file. It fails the test when npm does.
func NodeModules(t testing.TB, dir string) {
	t.Helper()
	npm.mu.Lock()
	defer npm.mu.Unlock()
	if npm.done == nil {
		npm.done, npm.out = map[string]error{}, map[string][]byte{}
	}
	err, ok := npm.done[dir]
	if !ok {
		err = func() error {
			lock, err := os.Stat(filepath.Join(dir, "package-lock.json"))
			if err != nil {
				return err
			}
			if inst, err := os.Stat(filepath.Join(dir, "node_modules", ".package-lock.json")); err == nil && !inst.ModTime().Before(lock.ModTime()) {
				return nil
			}
			out, err := Run(dir, 5*time.Minute, nil, "npm", "ci", "--no-audit", "--no-fund", "--prefer-offline")
			npm.out[dir] = out
			return err
		}()
		npm.done[dir] = err
	}
	if err != nil {
		t.Fatalf("npm ci in %s: %v\n%s", dir, err, npm.out[dir])
	}
}

var chromium struct {
	once sync.Once
	err  error
	out  []byte
}

// Chromium makes sure Debian's chromium is at /usr/bin/chromium, running
// sdk/scripts/ensure-chromium.sh (apt-get when missing) once per process.
func Chromium(t testing.TB) {
	t.Helper()
	chromium.once.Do(func() {
		root, err := RepoRoot()
		if err != nil {
			chromium.err = err
			return
		}
		chromium.out, chromium.err = Run(root, 10*time.Minute, nil, "bash", filepath.Join("sdk", "scripts", "ensure-chromium.sh"))
	})
	if chromium.err != nil {
		t.Fatalf("sdk/scripts/ensure-chromium.sh: %v\n%s", chromium.err, chromium.out)
	}
}

// Run runs a command in dir with a timeout and extra environment and
// returns its combined output.
func Run(dir string, timeout time.Duration, env []string, name string, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	cmd.WaitDelay = 5 * time.Second
	return cmd.CombinedOutput()
}
