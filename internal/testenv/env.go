package testenv

import (
	"os"
	"strconv"
	"strings"
	"testing"
)

// EnvInt reads a positive integer from the environment variable name (def
// when it is unset), failing t on anything else. Benchmarks take their
// sizes (rates, durations, rows) this way.
func EnvInt(t testing.TB, name string, def int) int {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		t.Fatalf("%s=%q: want a positive integer", name, v)
	}
	return n
}

// ChildEnv is this process's environment for a telemetry child process:
// without TELEMETRY_* settings (they would override its flags) except
// TELEMETRY_CACHE, which locates libchdb.so.
func ChildEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "TELEMETRY_") || strings.HasPrefix(kv, "TELEMETRY_CACHE=") {
			env = append(env, kv)
		}
	}
	return env
}
