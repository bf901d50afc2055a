package chserver_test

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/sora3web/telemetry/internal/testenv"
)

// TestJDBCClient runs the ClickHouse JDBC driver (Maven
// com.clickhouse:clickhouse-jdbc, as DBeaver and Metabase use it),
// unchanged, against the test server: connect, parameterised query, batch
// insert and read back, a typed error (testdata/jdbcclient). It used to
// fail on its first query: the driver sends the format and database in
// X-ClickHouse-Format and X-ClickHouse-Database headers.
func TestJDBCClient(t *testing.T) {
	addr := testenv.ClickHouse(t)
	dir := filepath.Join("testdata", "jdbcclient")
	jars := testenv.MavenJars(t, filepath.Join(dir, "pom.xml"))
	classes := t.TempDir()
	cp := filepath.Join(jars, "*")
	if out, err := testenv.Run(dir, 2*time.Minute, nil, "javac", "-cp", cp, "-d", classes, "JdbcClient.java"); err != nil {
		t.Fatalf("javac: %v\n%s", err, out)
	}
	out, err := testenv.Run(dir, 2*time.Minute, []string{"CLICKHOUSE_ADDR=" + addr}, "java", "-cp", cp+string(filepath.ListSeparator)+classes, "JdbcClient")
	t.Logf("clickhouse-jdbc:\n%s", out)
	if err != nil {
		t.Fatalf("clickhouse-jdbc against the embedded engine: %v", err)
	}
}
