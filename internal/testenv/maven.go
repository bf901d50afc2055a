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

var mavenDeps struct {
	mu   sync.Mutex
	done map[string]error // by pom
	out  map[string][]byte
}

// MavenJars returns a directory holding the jars of pom's dependencies
// (and theirs), fetched from Maven Central with `mvn
// dependency:copy-dependencies` once under
// ${TELEMETRY_CACHE:-~/.cache/telemetry}/maven/<hash of the pom>, never in
// the repository. Use it as the classpath "DIR/*". It fails the test when
// Maven does.
func MavenJars(t testing.TB, pom string) string {
	t.Helper()
	b, err := os.ReadFile(pom)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	dir := filepath.Join(cacheDir(), "maven", hex.EncodeToString(sum[:8]))
	mavenDeps.mu.Lock()
	defer mavenDeps.mu.Unlock()
	if mavenDeps.done == nil {
		mavenDeps.done, mavenDeps.out = map[string]error{}, map[string][]byte{}
	}
	err, ok := mavenDeps.done[pom]
	if !ok {
		err = func() error {
			if _, err := os.Stat(filepath.Join(dir, ".installed")); err == nil {
				return nil
			}
			abs, err := filepath.Abs(pom)
			if err != nil {
				return err
			}
			out, err := Run(filepath.Dir(abs), 10*time.Minute, nil, "mvn", "-q", "-B", "-Dstyle.color=never", "-f", abs,
				"dependency:copy-dependencies", "-DoutputDirectory="+dir)
			mavenDeps.out[pom] = out
			if err != nil {
				return err
			}
			return os.WriteFile(filepath.Join(dir, ".installed"), b, 0o644)
		}()
		mavenDeps.done[pom] = err
	}
	if err != nil {
		t.Fatalf("fetching the dependencies of %s into %s: %v\n%s", pom, dir, err, mavenDeps.out[pom])
	}
	return dir
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
