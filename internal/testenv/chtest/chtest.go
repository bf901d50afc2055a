// Package chtest gives tests a fresh database in the test engine with
// every migration applied. It lives apart from internal/testenv because
// the migrations' own tests use testenv (an import cycle otherwise).
package chtest

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/sora3web/telemetry/internal/testenv"
	"github.com/sora3web/telemetry/schema/migrations"
)

// Migrated opens the test engine (testenv.ClickHouse) over HTTP and
// applies every migration, with the default retention, to a new database
// named from prefix and the test's name. The connection is closed when t
// ends.
func Migrated(t testing.TB, prefix string) (driver.Conn, string) {
	t.Helper()
	conn, err := clickhouse.Open(&clickhouse.Options{
		Addr: []string{testenv.ClickHouse(t)}, Protocol: clickhouse.HTTP,
		Auth:        clickhouse.Auth{Database: "default", Username: testenv.ClickHouseUser},
		DialTimeout: 2 * time.Second, ReadTimeout: time.Minute,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	name := strings.ToLower(strings.NewReplacer("/", "_", "-", "_", " ", "_").Replace(t.Name()))
	db := fmt.Sprintf("%s_%s_%d", prefix, name, time.Now().UnixNano())
	m, err := migrations.New(conn, migrations.Options{Database: db, Retention: migrations.DefaultRetention()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := m.Apply(ctx); err != nil {
		t.Fatalf("migrating %s: %v", db, err)
	}
	return conn, db
}
