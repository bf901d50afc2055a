package migrations

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/sora3web/telemetry/internal/testenv"
)

// engine connects to the embedded ClickHouse and returns a fresh database name.
func engine(t *testing.T) (driver.Conn, string) {
	t.Helper()
	conn, err := clickhouse.Open(&clickhouse.Options{
		Addr:        []string{testenv.ClickHouse(t)},
		Protocol:    clickhouse.HTTP,
		Auth:        clickhouse.Auth{Database: "default", Username: testenv.ClickHouseUser},
		ReadTimeout: 2 * time.Minute,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn, fmt.Sprintf("mig_%s_%d", strings.ToLower(strings.NewReplacer("/", "_", "-", "_").Replace(t.Name())), time.Now().UnixNano())
}

func TestApplyIsIdempotentAndReappliesChangedRetention(t *testing.T) {
	ctx := context.Background()
	conn, db := engine(t)
	opts := Options{Database: db, Retention: DefaultRetention()}
	m, err := New(conn, opts)
	if err != nil {
		t.Fatal(err)
	}
	p, err := m.Plan(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Migrations) != 8 || len(p.Retention) != 4 {
		t.Fatalf("fresh database plan: %d migrations, %d retention statements; want 8, 4", len(p.Migrations), len(p.Retention))
	}
	if _, err := m.Apply(ctx); err != nil {
		t.Fatal(err)
	}
	again, err := m.Apply(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !again.Empty() {
		t.Fatalf("second apply did something: %+v", again)
	}
	var recorded []struct {
		Version  uint32 `ch:"version"`
		Name     string `ch:"name"`
		Checksum string `ch:"checksum"`
	}
	if err := conn.Select(ctx, &recorded, "SELECT version, name, checksum FROM "+db+".schema_migrations FINAL ORDER BY version"); err != nil {
		t.Fatal(err)
	}
	if len(recorded) != 8 || recorded[0].Name != "events" || recorded[2].Version != 3 || recorded[3].Name != "privacy" || recorded[4].Name != "insert_parts" || recorded[6].Name != "identity" || recorded[7].Name != "pipeline_audit" || recorded[0].Checksum != p.Migrations[0].Checksum {
		t.Fatalf("schema_migrations: %+v", recorded)
	}

	// Changing the free tier re-applies only the two events targets.
	opts.Retention.Free = Tier{EventsDays: 60, PromptDays: 14}
	m2, _ := New(conn, opts)
	applied, err := m2.Apply(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var targets []string
	for _, s := range applied.Retention {
		targets = append(targets, s.Target)
	}
	if len(applied.Migrations) != 0 || strings.Join(targets, ",") != "events,events.prompt" {
		t.Fatalf("after retention change applied %d migrations and %v", len(applied.Migrations), targets)
	}
	var ddl []struct {
		Q string `ch:"create_table_query"`
	}
	if err := conn.Select(ctx, &ddl, "SELECT create_table_query FROM system.tables WHERE database = ? AND name = 'events'", db); err != nil {
		t.Fatal(err)
	}
	if len(ddl) != 1 || !strings.Contains(ddl[0].Q, "toIntervalDay(60) WHERE plan = 'free'") || !strings.Contains(ddl[0].Q, "toIntervalDay(14)") {
		t.Fatalf("events DDL lacks the new TTLs: %+v", ddl)
	}
	if p, err := m2.Plan(ctx); err != nil || !p.Empty() {
		t.Fatalf("plan after apply: %+v, %v", p, err)
	}

	// An edited migration is refused.
	if err := conn.Exec(ctx, "INSERT INTO "+db+".schema_migrations VALUES (1, 'events', 'edited', now64(3) + 1)"); err != nil {
		t.Fatal(err)
	}
	if _, err := m2.Plan(ctx); !errors.Is(err, ErrChecksumMismatch) {
		t.Fatalf("Plan with an edited migration: %v, want ErrChecksumMismatch", err)
	}
}

// migratedEngine is engine with every migration applied on default retention.
func migratedEngine(t *testing.T) (driver.Conn, string) {
	t.Helper()
	conn, db := engine(t)
	m, err := New(conn, Options{Database: db, Retention: DefaultRetention()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Apply(context.Background()); err != nil {
		t.Fatal(err)
	}
	return conn, db
}

func TestRetentionDeletesAndClearsPerTier(t *testing.T) {
	ctx := context.Background()
	conn, db := migratedEngine(t)
	rows := []struct {
		id      int
		typ     string
		plan    string
		ageDays int
		// want: row kept, prompt kept.
		kept, prompt bool
	}{
		{1, "generation_requested", "free", 2, true, true},
		{2, "generation_requested", "free", 10, true, false},
		{3, "generation_requested", "free", 40, false, false},
		{4, "generation_requested", "pro", 30, true, true},
		{5, "generation_requested", "pro", 100, true, false},
		{6, "generation_requested", "pro", 400, false, false},
		{7, "client_error", "pro", 10, true, true},
		{8, "client_error", "pro", 40, true, true},
	}
	var values []string
	for _, r := range rows {
		values = append(values, fmt.Sprintf("(toUUID('00000000-0000-4000-8000-%012d'), '%s', '%s', now64(3) - INTERVAL %d DAY, 'prompt %d', 'E%d', 'user-%d')",
			r.id, r.typ, r.plan, r.ageDays, r.id, r.id, r.id))
	}
	if err := conn.Exec(ctx, "INSERT INTO "+db+".events (event_id, type, plan, timestamp, prompt, error_code, user_id) VALUES "+strings.Join(values, ", ")); err != nil {
		t.Fatal(err)
	}
	// A rollup row older than three years.
	if err := conn.Exec(ctx, "INSERT INTO "+db+".events (event_id, type, plan, timestamp) VALUES (generateUUIDv4(), 'page_view', 'pro', now64(3) - INTERVAL 1100 DAY)"); err != nil {
		t.Fatal(err)
	}
	for _, table := range []string{"events", "errors", "rollups_daily"} {
		if err := conn.Exec(ctx, "OPTIMIZE TABLE "+db+"."+table+" FINAL"); err != nil {
			t.Fatal(err)
		}
	}
	var got []struct {
		ID     string `ch:"id"`
		Prompt string `ch:"prompt"`
	}
	if err := conn.Select(ctx, &got, "SELECT toString(event_id) AS id, prompt FROM "+db+".events WHERE type != 'page_view'"); err != nil {
		t.Fatal(err)
	}
	byID := map[string]string{}
	for _, g := range got {
		byID[g.ID] = g.Prompt
	}
	for _, r := range rows {
		prompt, kept := byID[fmt.Sprintf("00000000-0000-4000-8000-%012d", r.id)]
		if kept != r.kept || (kept && (prompt != "") != r.prompt) {
			t.Errorf("%s row %d days old: kept=%v prompt=%q; want kept=%v prompt kept=%v", r.plan, r.ageDays, kept, prompt, r.kept, r.prompt)
		}
	}
	var errs []struct {
		Code string `ch:"error_code"`
	}
	if err := conn.Select(ctx, &errs, "SELECT error_code FROM "+db+".errors"); err != nil {
		t.Fatal(err)
	}
	if len(errs) != 1 || errs[0].Code != "E7" {
		t.Errorf("errors after 30-day TTL: %+v, want only E7", errs)
	}
	var old []struct {
		N uint64 `ch:"n"`
	}
	if err := conn.Select(ctx, &old, "SELECT count() AS n FROM "+db+".rollups_daily WHERE type = 'page_view'"); err != nil {
		t.Fatal(err)
	}
	if old[0].N != 0 {
		t.Errorf("rollup older than 3 years kept")
	}
}

func TestRollupsAndErrorsHoldNoForbiddenColumns(t *testing.T) {
	ctx := context.Background()
	conn, db := migratedEngine(t)
	cases := []struct {
		table     string
		forbidden []string
	}{
		{"rollups_daily", []string{"user_id", "anonymous_id", "session_id", "ip", "prompt", "event_id"}},
		{"errors", []string{"prompt"}},
		// The privacy registries hold a subject id and the request, nothing else.
		{"tombstones", []string{"ip", "prompt", "session_id", "event_id", "context_page_url", "context_user_agent", "plan"}},
		{"opt_outs", []string{"ip", "prompt", "session_id", "event_id", "context_page_url", "context_user_agent", "plan"}},
	}
	for _, c := range cases {
		var cols []struct {
			Name string `ch:"name"`
		}
		if err := conn.Select(ctx, &cols, "SELECT name FROM system.columns WHERE database = ? AND table = ?", db, c.table); err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, col := range cols {
			names = append(names, col.Name)
		}
		sort.Strings(names)
		if len(names) == 0 {
			t.Fatalf("%s has no columns", c.table)
		}
		for _, f := range c.forbidden {
			for _, n := range names {
				if n == f {
					t.Errorf("%s has forbidden column %s (columns %v)", c.table, f, names)
				}
			}
		}
	}
}
