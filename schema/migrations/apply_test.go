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
	all, err := Render(opts)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Migrations) != len(all) || len(p.Retention) != 7 {
		t.Fatalf("fresh database plan: %d migrations, %d retention statements; want %d, 7", len(p.Migrations), len(p.Retention), len(all))
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
	if len(recorded) != len(all) || recorded[len(all)-1].Version != all[len(all)-1].Version || recorded[0].Name != "events" || recorded[2].Version != 3 || recorded[3].Name != "privacy" || recorded[4].Name != "insert_parts" || recorded[6].Name != "identity" || recorded[0].Checksum != p.Migrations[0].Checksum {
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
	// Anonymised prompts: one older than 3 years, one recent.
	if err := conn.Exec(ctx, "INSERT INTO "+db+".prompt_corpus (day, prompt) VALUES (today() - 1100, 'old prompt'), (today() - 1000, 'kept prompt')"); err != nil {
		t.Fatal(err)
	}
	for _, table := range []string{"events", "errors", "rollups_daily", "prompt_corpus"} {
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
	var prompts []struct {
		Prompt string `ch:"prompt"`
	}
	if err := conn.Select(ctx, &prompts, "SELECT prompt FROM "+db+".prompt_corpus"); err != nil {
		t.Fatal(err)
	}
	if len(prompts) != 1 || prompts[0].Prompt != "kept prompt" {
		t.Errorf("anonymised prompts after the 3-year TTL: %+v, want only the one 1000 days old", prompts)
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
		{"rollups_hourly", []string{"user_id", "anonymous_id", "session_id", "ip", "prompt", "event_id"}},
		{"pipeline_metrics", []string{"user_id", "anonymous_id", "session_id", "ip", "prompt", "event_id"}},
		{"errors", []string{"prompt"}},
		// The privacy registries hold a subject id and the request, nothing else.
		{"tombstones", []string{"ip", "prompt", "session_id", "event_id", "context_page_url", "context_user_agent", "plan"}},
		{"opt_outs", []string{"ip", "prompt", "session_id", "event_id", "context_page_url", "context_user_agent", "plan"}},
		// The anonymised prompt corpus: nothing that links a row to a person.
		{"prompt_corpus", []string{"user_id", "anonymous_id", "session_id", "group_id", "previous_id", "event_id", "generation_id", "ip",
			"context_page_url", "context_referrer", "context_user_agent", "timestamp", "received_at", "source", "kafka_offset"}},
		{"prompt_corpus_runs", []string{"user_id", "anonymous_id", "prompt"}},
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

// TestHourlyRollupCountsARetriedInsertOnce inserts one batch of events
// twice with the same insert_deduplication_token (the consumer retrying an
// insert, or completing after a restart one the process died in) and
// another batch once: rollups_hourly counts each event once, like
// rollups_daily, and its hours and users agree with the events.
func TestHourlyRollupCountsARetriedInsertOnce(t *testing.T) {
	ctx := context.Background()
	conn, db := migratedEngine(t)
	// Yesterday, within the hourly rollup's retention.
	base := time.Now().UTC().Truncate(time.Hour).Add(-24 * time.Hour)
	insert := func(token string, first, n int) {
		t.Helper()
		var values []string
		for i := first; i < first+n; i++ {
			values = append(values, fmt.Sprintf("(toUUID('00000000-0000-4000-8000-%012d'), 'generation_requested', 'pro', 'm%d', toDateTime64('%s', 3, 'UTC') + INTERVAL %d MINUTE, 'user-%d')",
				i, i%2, base.Format(time.DateTime), i*7, i%5))
		}
		tctx := clickhouse.Context(ctx, clickhouse.WithSettings(clickhouse.Settings{"insert_deduplication_token": token}))
		if err := conn.Exec(tctx, "INSERT INTO "+db+".events (event_id, type, plan, model, timestamp, user_id) VALUES "+strings.Join(values, ", ")); err != nil {
			t.Fatal(err)
		}
	}
	insert("batch-1", 0, 20)
	insert("batch-1", 0, 20)
	insert("batch-2", 20, 10)
	var hourly []struct {
		Hour   time.Time `ch:"hour"`
		Model  string    `ch:"model"`
		Events uint64    `ch:"events"`
		Users  uint64    `ch:"users"`
	}
	if err := conn.Select(ctx, &hourly, "SELECT hour, model, countMerge(events) AS events, uniqMerge(users) AS users FROM "+db+".rollups_hourly GROUP BY hour, model ORDER BY hour, model"); err != nil {
		t.Fatal(err)
	}
	// 30 events, one every 7 minutes from base: four hours, models m0/m1.
	want := map[string]uint64{}
	for i := range 30 {
		h := base.Add(time.Duration(i*7) * time.Minute).Truncate(time.Hour)
		want[fmt.Sprintf("%s m%d", h.Format("15"), i%2)]++
	}
	var total uint64
	for _, h := range hourly {
		k := fmt.Sprintf("%s %s", h.Hour.UTC().Format("15"), h.Model)
		if h.Events != want[k] {
			t.Errorf("rollups_hourly %s: %d events, want %d", k, h.Events, want[k])
		}
		total += h.Events
	}
	if total != 30 || len(hourly) != len(want) {
		t.Fatalf("rollups_hourly: %d events in %d rows, want 30 in %d: %+v", total, len(hourly), len(want), hourly)
	}
	var daily []struct {
		N uint64 `ch:"n"`
	}
	if err := conn.Select(ctx, &daily, "SELECT countMerge(events) AS n FROM "+db+".rollups_daily"); err != nil {
		t.Fatal(err)
	}
	if daily[0].N != total {
		t.Fatalf("rollups_daily %d events, rollups_hourly %d", daily[0].N, total)
	}
}

// TestDailyRollupCountsEventsOlderThanTheHourlyRetention: rollups_daily
// is fed from rollups_hourly's inserts (0011), so an event older than the
// hourly rollup's retention (92 days) but within the daily one's (a late
// upload, a backfill) must still reach rollups_daily, and every event
// counts once in both.
func TestDailyRollupCountsEventsOlderThanTheHourlyRetention(t *testing.T) {
	ctx := context.Background()
	conn, db := migratedEngine(t)
	old := time.Now().UTC().AddDate(0, 0, -200).Truncate(time.Hour)
	recent := time.Now().UTC().Add(-2 * time.Hour).Truncate(time.Hour)
	var values []string
	for i, ts := range []time.Time{old, old.Add(time.Minute), recent} {
		values = append(values, fmt.Sprintf("(toUUID('00000000-0000-4000-8000-%012d'), 'generation_requested', 'pro', toDateTime64('%s', 3, 'UTC'), 'user-%d', %d)",
			i, ts.Format(time.DateTime), i, 100*(i+1)))
	}
	if err := conn.Exec(ctx, "INSERT INTO "+db+".events (event_id, type, plan, timestamp, user_id, latency_ms) VALUES "+strings.Join(values, ", ")); err != nil {
		t.Fatal(err)
	}
	var days []struct {
		Day    time.Time `ch:"day"`
		Events uint64    `ch:"events"`
		Users  uint64    `ch:"users"`
	}
	if err := conn.Select(ctx, &days, "SELECT day, countMerge(events) AS events, uniqMerge(users) AS users FROM "+db+".rollups_daily GROUP BY day ORDER BY day"); err != nil {
		t.Fatal(err)
	}
	if len(days) != 2 || days[0].Events != 2 || days[0].Users != 2 || days[1].Events != 1 ||
		days[0].Day.Format(time.DateOnly) != old.Format(time.DateOnly) || days[1].Day.Format(time.DateOnly) != recent.Format(time.DateOnly) {
		t.Fatalf("rollups_daily: %+v, want 2 events of 2 users on %s and 1 on %s", days, old.Format(time.DateOnly), recent.Format(time.DateOnly))
	}
	var p50 float64
	if err := conn.QueryRow(ctx, "SELECT quantilesIfMerge(0.5, 0.9, 0.99)(latency_ms)[1] FROM "+db+".rollups_daily WHERE day = toDate({d:String})",
		clickhouse.Named("d", recent.Format(time.DateOnly))).Scan(&p50); err != nil {
		t.Fatal(err)
	}
	if p50 != 300 {
		t.Errorf("the recent day's latency p50 %v, want 300", p50)
	}
}
