package testenv

import (
	"path/filepath"
	"testing"
	"time"
)

// MavenJars returns a directory holding the jars of pom's dependencies
// (and theirs), fetched from Maven Central with `mvn
// dependency:copy-dependencies` once under
// ${TELEMETRY_CACHE:-~/.cache/telemetry}/maven/<hash of the pom>, never in
// the repository. Use it as the classpath "DIR/*". It fails the test when
// Maven does.
func MavenJars(t testing.TB, pom string) string {
	t.Helper()
	b, dir := stampedDir(t, "maven", pom)
	abs, err := filepath.Abs(pom)
	if err != nil {
		t.Fatal(err)
	}
	cachedInstall(t, pom, dir, b, func() ([]byte, error) {
		return Run(filepath.Dir(abs), 10*time.Minute, nil, "mvn", "-q", "-B", "-Dstyle.color=never", "-f", abs,
			"dependency:copy-dependencies", "-DoutputDirectory="+dir)
	})
	return dir
}
