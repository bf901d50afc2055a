package chserver_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/sora3web/telemetry/internal/testenv"
)

// TestJSClient runs the official @clickhouse/client (npm) against the test
// server: testdata/jsclient/test.mjs creates a table, inserts JSONEachRow
// rows, reads them back with query_params, checks that an error is a
// ClickHouseError with code 60, and that a session's temporary table is
// read back by its own client and unknown to another session's.
func TestJSClient(t *testing.T) {
	addr := testenv.ClickHouse(t)
	dir, err := filepath.Abs(filepath.Join("testdata", "jsclient"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	install := []string{"ci", "--no-audit", "--no-fund"}
	if _, err := os.Stat(filepath.Join(dir, "package-lock.json")); err != nil {
		install[0] = "install"
	}
	run := func(name string, args ...string) {
		t.Helper()
		cmd := exec.CommandContext(ctx, name, args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "CLICKHOUSE_URL=http://"+addr)
		out, err := cmd.CombinedOutput()
		t.Logf("%s %v:\n%s", name, args, out)
		if err != nil {
			t.Fatalf("%s %v: %v", name, args, err)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "@clickhouse", "client")); err != nil {
		run("npm", install...)
	}
	run("node", "test.mjs")
}
