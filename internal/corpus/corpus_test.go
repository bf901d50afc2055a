package corpus

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/sora3web/telemetry/internal/testenv/chtest"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/sora3web/telemetry/internal/testenv"
	"github.com/sora3web/telemetry/transform"
)

func TestMain(m *testing.M) { os.Exit(testenv.RunWithClickHouse(m)) }

// migrated opens the test engine and applies every migration to a fresh
// database.
func migrated(t *testing.T) (driver.Conn, string) {
	t.Helper()
	return chtest.Migrated(t, "corpus")
}

func newJob(t *testing.T, conn driver.Conn, db string, log io.Writer) *Job {
	t.Helper()
	scrub, err := transform.NewScrubber(transform.DefaultScrubConfig())
	if err != nil {
		t.Fatal(err)
	}
	j, err := New(DefaultConfig(), conn, Source{Database: db, MinPromptDays: 7}, scrub, slog.New(slog.NewTextHandler(log, nil)))
	if err != nil {
		t.Fatal(err)
	}
	return j
}

// insertPrompts stores, ageDays ago, one generation_requested of each of
// users with prompt.
func insertPrompts(t *testing.T, conn driver.Conn, db string, ageDays, users int, prompt string) {
	t.Helper()
	var values []string
	for u := 0; u < users; u++ {
		values = append(values, fmt.Sprintf("(generateUUIDv4(), 'generation_requested', 'pro', now64(3) - INTERVAL %d DAY, 'u%d', '%s', true, 'mobile', 'fast')", ageDays, u, prompt))
	}
	if err := conn.Exec(context.Background(), "INSERT INTO "+db+".events (event_id, type, plan, timestamp, user_id, prompt, consent_analytics, device_class, quality) VALUES "+strings.Join(values, ", ")); err != nil {
		t.Fatal(err)
	}
}

// TestFillCatchesUpEveryDayMissedWhileStopped: a job that did not run for
// days fills each of them, oldest first, once; a day it reaches after the
// shortest prompt TTL began clearing it is filled with what is left and
// reported.
func TestFillCatchesUpEveryDayMissedWhileStopped(t *testing.T) {
	ctx := context.Background()
	conn, db := migrated(t)
	for age := 9; age >= 1; age-- {
		insertPrompts(t, conn, db, age, 5, fmt.Sprintf("a lighthouse in a storm, take %d", age))
	}
	insertPrompts(t, conn, db, 0, 5, "today is not over yet")
	var logs bytes.Buffer
	j := newJob(t, conn, db, &logs)
	res, err := j.Fill(ctx)
	if err != nil {
		t.Fatal(err)
	}
	today := time.Now().UTC().Truncate(24 * time.Hour)
	last := time.Now().UTC().Add(-DefaultConfig().Lag).Truncate(24*time.Hour).AddDate(0, 0, -1)
	want := int(last.Sub(today.AddDate(0, 0, -9)).Hours()/24) + 1 // 9, or 8 in the first two hours of a UTC day
	if len(res) != want {
		t.Fatalf("filled %d days, want %d: %+v", len(res), want, res)
	}
	for i, r := range res {
		if !r.Day.Equal(today.AddDate(0, 0, -9+i)) || r.Kept != 5 || r.HeldBack != 0 {
			t.Errorf("day %d: %+v, want %s with 5 rows kept", i, r, today.AddDate(0, 0, -9+i).Format(time.DateOnly))
		}
	}
	if again, err := j.Fill(ctx); err != nil || len(again) != 0 {
		t.Fatalf("second pass: %+v, %v; want nothing due", again, err)
	}
	var n []struct {
		N uint64 `ch:"n"`
	}
	if err := conn.Select(ctx, &n, "SELECT count() AS n FROM "+db+".prompt_corpus"); err != nil || n[0].N != uint64(5*want) {
		t.Fatalf("corpus rows %+v, %v; want %d", n, err, 5*want)
	}
	// The days 9, 8 and 7 days ago began more than 7 days ago: the 7-day
	// TTL has begun clearing their earliest prompts.
	if got := strings.Count(logs.String(), "after the shortest prompt TTL began clearing it"); got != 3 {
		t.Errorf("late days reported %d times, want 3:\n%s", got, logs.String())
	}
}

func TestConfigRefusesWhatWouldLetTheTTLWinTheRace(t *testing.T) {
	cases := []struct {
		name    string
		mod     func(*Config)
		minDays int
		field   string
	}{
		{"defaults", func(*Config) {}, 7, ""},
		{"k of 1", func(c *Config) { c.K = 1 }, 7, "corpus.k"},
		{"no interval", func(c *Config) { c.Interval = 0 }, 7, "corpus.interval"},
		{"negative lag", func(c *Config) { c.Lag = -time.Hour }, 7, "corpus.lag"},
		{"lag past a 2-day prompt TTL", func(c *Config) {}, 2, "corpus.lag"},
		{"a long lag past 7 days", func(c *Config) { c.Lag = 5 * 24 * time.Hour }, 7, "corpus.lag"},
		{"disabled job has no race", func(c *Config) { c.Enabled = false }, 2, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := DefaultConfig()
			c.mod(&cfg)
			err := cfg.Validate(c.minDays)
			if c.field == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), c.field) {
				t.Fatalf("Validate: %v, want an error naming %s", err, c.field)
			}
		})
	}
}

func TestExportStreamsJSONLinesAndParquetFromTheEngine(t *testing.T) {
	ctx := context.Background()
	conn, db := migrated(t)
	if err := conn.Exec(ctx, "INSERT INTO "+db+".prompt_corpus SELECT today() - number % 40, concat('prompt ', toString(number)), 'uhd', '2160p', '16:9', 8, 'v3', 'desktop', 'completed', '', number % 2 = 0 FROM numbers(400)"); err != nil {
		t.Fatal(err)
	}
	exp := Export{URL: "http://" + testenv.ClickHouse(t), User: testenv.ClickHouseUser, Database: db, Since: 30 * 24 * time.Hour, Format: FormatJSONL}
	var out bytes.Buffer
	var reports []Progress
	if err := exp.Run(ctx, &out, func(p Progress) { reports = append(reports, p) }); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 300 { // days 0..29 of 0..39: 30 of every 40
		t.Fatalf("exported %d lines, want 300", len(lines))
	}
	var row map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &row); err != nil {
		t.Fatal(err)
	}
	if len(row) != len(Columns) || row["prompt"] == nil || row["outcome"] != "completed" {
		t.Fatalf("first row %v, want the %d corpus columns", row, len(Columns))
	}
	final := reports[len(reports)-1]
	if !final.Done || final.Rows != 300 || final.Total != 300 || final.Bytes != int64(out.Len()) {
		t.Fatalf("last progress %+v, want done with 300/300 rows and %d bytes", final, out.Len())
	}
	if got := FormatProgress(final); !strings.HasPrefix(got, "exported 300/300 rows (100%)") {
		t.Fatalf("progress line %q", got)
	}

	exp.Format = FormatParquet
	out.Reset()
	if err := exp.Run(ctx, &out, nil); err != nil {
		t.Fatal(err)
	}
	b := out.Bytes()
	if len(b) < 8 || string(b[:4]) != "PAR1" || string(b[len(b)-4:]) != "PAR1" {
		t.Fatalf("parquet export of %d bytes lacks the PAR1 magic at both ends", len(b))
	}
	// The engine reads its own Parquet back: the same 300 rows.
	var n []struct {
		N uint64 `ch:"n"`
	}
	if err := conn.Select(ctx, &n, "SELECT count() AS n FROM format(Parquet, ?)", string(b)); err != nil || len(n) != 1 || n[0].N != 300 {
		t.Fatalf("rows read back from the Parquet export: %+v, %v; want 300", n, err)
	}

	exp.Format = "csv"
	if err := exp.Run(ctx, &out, nil); err == nil || !strings.Contains(err.Error(), "format: must be jsonl or parquet") {
		t.Fatalf("csv export: %v, want an error naming format", err)
	}
}

func TestParseSince(t *testing.T) {
	cases := []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"30d", 30 * 24 * time.Hour, true},
		{"72h", 72 * time.Hour, true},
		{"0d", 0, false},
		{"-3d", 0, false},
		{"x", 0, false},
		{"1.5d", 0, false},
	}
	for _, c := range cases {
		got, err := ParseSince(c.in)
		if (err == nil) != c.ok || got != c.want {
			t.Errorf("ParseSince(%q) = %v, %v; want %v, ok=%v", c.in, got, err, c.want, c.ok)
		}
	}
}
