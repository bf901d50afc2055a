package chserver_test

import (
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/sora3web/telemetry/internal/testenv"
)

// TestPythonClient runs Python's clickhouse-connect (PyPI; the driver
// under Superset), unchanged, against the test server: connect,
// parameterised query, insert and read back, a session's setting, the
// session's temporary table (another client's session gets code 60), a
// typed error: DatabaseError.code (testdata/pyclient/test_client.py). Its first query used to fail
// with code 115: it sends settings no fixed allowlist had.
func TestPythonClient(t *testing.T) {
	host, port, err := net.SplitHostPort(testenv.ClickHouse(t))
	if err != nil {
		t.Fatal(err)
	}
	python := testenv.PythonVenv(t, filepath.Join("testdata", "pyclient", "requirements.txt"))
	out, err := testenv.Run(filepath.Join("testdata", "pyclient"), 2*time.Minute,
		[]string{"CLICKHOUSE_HOST=" + host, "CLICKHOUSE_PORT=" + port}, python, "test_client.py")
	t.Logf("clickhouse-connect:\n%s", out)
	if err != nil {
		t.Fatalf("clickhouse-connect against the embedded engine: %v", err)
	}
}
