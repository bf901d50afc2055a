// Package corpus owns the anonymised prompt corpus: the prompts the
// privacy policy lets the platform keep for model improvement, with
// nothing that points back to a person. It fills the prompt_corpus table
// (schema/migrations 0009) from the events table, one UTC day at a time
// after the day ended and before the shortest prompt TTL clears it, with
// a watermark (prompt_corpus_runs) so no day is skipped or filled twice,
// and it streams the corpus out for a model team (Export).
//
// What enters: generation_requested events with analytics consent, not
// opted out (under-13 events are never stored), whose prompt, scrubbed
// by transform.Scrubber.Prompt and folded to lower case, was sent by at
// least K distinct users that day. Rarer prompts are held back, not
// generalised: rare free text is what identifies a person, and no
// generalisation of free text can be shown to remove it. A row keeps the
// day, the scrubbed prompt, the generation's properties, the device class
// and the outcome; never an id, an IP, a page or a user agent.
//
// It talks to ClickHouse only, through DB; it knows neither the bus nor
// the consumer.
package corpus

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/sora3web/telemetry/transform"
)

// ErrStarted means Start was called twice.
var ErrStarted = errors.New("corpus job already started")

// DB is what the job needs of a ClickHouse connection; clickhouse-go's
// driver.Conn satisfies it.
type DB interface {
	// Select runs a query and scans every row into dest.
	Select(ctx context.Context, dest any, query string, args ...any) error
	// Query runs a query and streams its rows.
	Query(ctx context.Context, query string, args ...any) (driver.Rows, error)
	// Exec runs a statement.
	Exec(ctx context.Context, query string, args ...any) error
	// PrepareBatch starts a columnar insert.
	PrepareBatch(ctx context.Context, query string, opts ...driver.PrepareBatchOption) (driver.Batch, error)
}

// Source is where the job reads and writes.
type Source struct {
	// Database holds events and the corpus tables.
	Database string
	// MinPromptDays is the shortest prompt retention of any plan: a day
	// filled later than this after it began may have lost prompts, which
	// the job logs and counts.
	MinPromptDays int
}

// Row is one generation in the corpus.
type Row struct {
	Day         time.Time `ch:"day" json:"day"`
	Prompt      string    `ch:"prompt" json:"prompt"`
	Quality     string    `ch:"quality" json:"quality"`
	Resolution  string    `ch:"resolution" json:"resolution"`
	AspectRatio string    `ch:"aspect_ratio" json:"aspect_ratio"`
	DurationS   float32   `ch:"duration_s" json:"duration_s"`
	Model       string    `ch:"model" json:"model"`
	DeviceClass string    `ch:"device_class" json:"device_class"`
	// Outcome is completed, failed or unknown (no outcome event stored).
	Outcome string `ch:"outcome" json:"outcome"`
	// FailureCode is the error_code of a failed generation.
	FailureCode string `ch:"failure_code" json:"failure_code"`
	// Downloaded says the video was downloaded.
	Downloaded bool `ch:"downloaded" json:"downloaded"`
}

// Columns are the corpus table's columns, in Row order: the whole of
// what a row holds.
var Columns = []string{"day", "prompt", "quality", "resolution", "aspect_ratio", "duration_s", "model", "device_class", "outcome", "failure_code", "downloaded"}

// DayResult is what filling one day did.
type DayResult struct {
	// Day is the UTC day filled.
	Day time.Time
	// Candidates are the generations read: consented prompts.
	Candidates int
	// Kept are the rows written.
	Kept int
	// HeldBack are the generations whose prompt fewer than K users sent.
	HeldBack int
}

// Job fills the corpus every Interval. Build it with New, run it with
// Start, stop it with Shutdown; Fill runs one pass.
type Job struct {
	cfg   Config
	db    DB
	src   Source
	scrub *transform.Scrubber
	log   *slog.Logger
	now   func() time.Time
	seed  maphash.Seed

	days, rows, late metric.Int64Counter

	// fill serialises passes (the ticker's and Fill's callers').
	fill sync.Mutex

	mu      sync.Mutex
	started bool
	cancel  context.CancelFunc
	wg      sync.WaitGroup
}

// New validates cfg and returns a job. It does no I/O.
func New(cfg Config, db DB, src Source, scrub *transform.Scrubber, log *slog.Logger) (*Job, error) {
	if err := cfg.Validate(src.MinPromptDays); err != nil {
		return nil, err
	}
	if db == nil || scrub == nil || log == nil || src.Database == "" {
		return nil, fmt.Errorf("%w: database, scrubber and logger are required", ErrInvalidConfig)
	}
	meter := otel.Meter("github.com/sora3web/telemetry/internal/corpus")
	j := &Job{cfg: cfg, db: db, src: src, scrub: scrub, log: log.With("component", "corpus"), now: time.Now, seed: maphash.MakeSeed()}
	var err error
	if j.days, err = meter.Int64Counter("telemetry.corpus.days", metric.WithDescription("UTC days filled into the anonymised prompt corpus.")); err != nil {
		return nil, err
	}
	if j.rows, err = meter.Int64Counter("telemetry.corpus.generations", metric.WithDescription("Consented generations read by the corpus job, by result (kept, held_back).")); err != nil {
		return nil, err
	}
	if j.late, err = meter.Int64Counter("telemetry.corpus.late_days", metric.WithDescription("Days filled after the shortest prompt TTL began clearing them (the job did not run in time).")); err != nil {
		return nil, err
	}
	return j, nil
}

// Start fills what is due in the background now and every Interval.
func (j *Job) Start(context.Context) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.started {
		return ErrStarted
	}
	ctx, cancel := context.WithCancel(context.Background())
	j.cancel, j.started = cancel, true
	j.log.Info("prompt corpus job started", "k", j.cfg.K, "interval", j.cfg.Interval, "lag", j.cfg.Lag)
	j.wg.Add(1)
	go func() {
		defer j.wg.Done()
		t := time.NewTicker(j.cfg.Interval)
		defer t.Stop()
		for {
			if _, err := j.Fill(ctx); err != nil && ctx.Err() == nil {
				j.log.Error("filling the prompt corpus; trying again at the next interval", "err", err)
			}
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	return nil
}

// Shutdown stops the job, abandoning a pass in progress: its day is not
// recorded and is filled at the next start.
func (j *Job) Shutdown(context.Context) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if !j.started {
		return nil
	}
	j.cancel()
	j.wg.Wait()
	j.started = false
	return nil
}

func (j *Job) table(name string) string { return j.src.Database + "." + name }

// Due returns the days a pass would fill: from the day after the last
// one recorded, or the first day still holding a prompt when that is
// later, to the last day that ended at least Lag ago.
func (j *Job) Due(ctx context.Context) ([]time.Time, error) {
	last := j.now().UTC().Add(-j.cfg.Lag).Truncate(24*time.Hour).AddDate(0, 0, -1)
	var mark []struct {
		Day  time.Time `ch:"day"`
		Runs uint64    `ch:"runs"`
	}
	if err := j.db.Select(ctx, &mark, fmt.Sprintf("SELECT max(day) AS day, count() AS runs FROM %s", j.table("prompt_corpus_runs"))); err != nil {
		return nil, fmt.Errorf("reading the corpus watermark: %w", err)
	}
	// The first day still holding a prompt: days before it have nothing
	// left to read (a fresh corpus starts there; a job that was off for
	// longer than the prompt TTLs skips the empty days).
	var oldest []struct {
		Day time.Time `ch:"day"`
		N   uint64    `ch:"n"`
	}
	if err := j.db.Select(ctx, &oldest, fmt.Sprintf("SELECT toDate(min(timestamp)) AS day, count() AS n FROM %s WHERE type = 'generation_requested' AND prompt != ''", j.table("events"))); err != nil {
		return nil, fmt.Errorf("finding the first day holding prompts: %w", err)
	}
	if len(oldest) == 0 || oldest[0].N == 0 {
		return nil, nil
	}
	first := oldest[0].Day.UTC()
	if len(mark) == 1 && mark[0].Runs > 0 {
		if next := mark[0].Day.UTC().AddDate(0, 0, 1); next.After(first) {
			first = next
		}
	}
	var out []time.Time
	for d := first; !d.After(last); d = d.AddDate(0, 0, 1) {
		out = append(out, d)
	}
	return out, nil
}

// Fill fills every due day, oldest first, and records each once its rows
// are acknowledged. It stops at the first failure; the next pass starts
// from that day again.
func (j *Job) Fill(ctx context.Context) ([]DayResult, error) {
	j.fill.Lock()
	defer j.fill.Unlock()
	days, err := j.Due(ctx)
	if err != nil {
		return nil, err
	}
	var out []DayResult
	for _, d := range days {
		res, err := j.fillDay(ctx, d)
		if err != nil {
			return out, fmt.Errorf("filling the prompt corpus for %s: %w", d.Format(time.DateOnly), err)
		}
		out = append(out, res)
	}
	return out, nil
}

// group is one folded prompt of a day: its generations and who sent it
// (hashes of the subjects, up to K: only whether K is reached matters).
type group struct {
	rows  []Row
	users map[uint64]struct{}
}

// fillDay reads the day's consented prompts with their outcomes, scrubs
// and groups them, writes the groups with at least K users with the day's
// deduplication token, then records the day.
func (j *Job) fillDay(ctx context.Context, day time.Time) (DayResult, error) {
	res := DayResult{Day: day}
	if j.src.MinPromptDays > 0 && j.now().After(day.AddDate(0, 0, j.src.MinPromptDays)) {
		j.late.Add(ctx, 1)
		j.log.Error("filling a day after the shortest prompt TTL began clearing it: prompts cleared already are missing from the corpus",
			"day", day.Format(time.DateOnly), "min_prompt_days", j.src.MinPromptDays)
	}
	q := fmt.Sprintf(`SELECT if(r.user_id != '', r.user_id, r.anonymous_id) AS subject, r.prompt AS prompt,
    r.quality AS quality, r.resolution AS resolution, r.aspect_ratio AS aspect_ratio, r.duration_s AS duration_s,
    r.model AS model, r.device_class AS device_class,
    if(o.outcome = '', 'unknown', o.outcome) AS outcome, o.failure_code AS failure_code, o.downloaded AS downloaded
FROM %[1]s AS r FINAL
LEFT JOIN (
    SELECT generation_id,
        multiIf(countIf(type = 'generation_completed') > 0, 'completed', countIf(type = 'generation_failed') > 0, 'failed', 'unknown') AS outcome,
        anyIf(error_code, type = 'generation_failed') AS failure_code,
        countIf(type = 'video_downloaded') > 0 AS downloaded
    FROM %[1]s FINAL
    WHERE type IN ('generation_completed', 'generation_failed', 'video_downloaded') AND generation_id != ''
      AND timestamp >= toDate(?) AND timestamp < toDate(?) + INTERVAL 2 DAY
    GROUP BY generation_id
) AS o ON r.generation_id = o.generation_id
WHERE r.type = 'generation_requested' AND r.prompt != '' AND r.consent_analytics AND NOT r.opted_out
  AND (r.user_id != '' OR r.anonymous_id != '')
  AND r.timestamp >= toDate(?) AND r.timestamp < toDate(?) + INTERVAL 1 DAY
SETTINGS join_use_nulls = 0, max_execution_time = 0`, j.table("events"))
	ds := day.Format(time.DateOnly)
	rows, err := j.db.Query(ctx, q, ds, ds, ds, ds)
	if err != nil {
		return res, fmt.Errorf("reading prompts: %w", err)
	}
	groups := map[string]*group{}
	for rows.Next() {
		var subject string
		var r Row
		var dl bool
		if err := rows.Scan(&subject, &r.Prompt, &r.Quality, &r.Resolution, &r.AspectRatio, &r.DurationS, &r.Model, &r.DeviceClass, &r.Outcome, &r.FailureCode, &dl); err != nil {
			rows.Close()
			return res, fmt.Errorf("reading prompts: %w", err)
		}
		res.Candidates++
		r.Day, r.Downloaded = day, dl
		r.Prompt = strings.ToLower(j.scrub.Prompt(r.Prompt))
		if r.Prompt == "" {
			res.HeldBack++
			continue
		}
		g := groups[r.Prompt]
		if g == nil {
			g = &group{users: map[uint64]struct{}{}}
			groups[r.Prompt] = g
		}
		g.rows = append(g.rows, r)
		if len(g.users) < j.cfg.K {
			g.users[maphash.String(j.seed, subject)] = struct{}{}
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return res, fmt.Errorf("reading prompts: %w", err)
	}
	var keep []Row
	for _, g := range groups {
		if len(g.users) >= j.cfg.K {
			keep = append(keep, g.rows...)
		} else {
			res.HeldBack += len(g.rows)
		}
	}
	// A fixed order: the day's insert is deduplicated by its token, block
	// by block, so a second pass over the same rows splits them alike.
	sort.Slice(keep, func(a, b int) bool { return lessRow(&keep[a], &keep[b]) })
	res.Kept = len(keep)
	if len(keep) > 0 {
		if err := j.insert(ctx, day, keep); err != nil {
			return res, err
		}
	}
	if err := j.db.Exec(ctx, fmt.Sprintf("INSERT INTO %s (day, candidates, kept, held_back, done_at) VALUES (toDate(?), ?, ?, ?, now64(3))", j.table("prompt_corpus_runs")),
		ds, uint64(res.Candidates), uint64(res.Kept), uint64(res.HeldBack)); err != nil {
		return res, fmt.Errorf("recording the day: %w", err)
	}
	j.days.Add(ctx, 1)
	j.rows.Add(ctx, int64(res.Kept), metric.WithAttributes(attribute.String("result", "kept")))
	j.rows.Add(ctx, int64(res.HeldBack), metric.WithAttributes(attribute.String("result", "held_back")))
	j.log.Info("prompt corpus filled", "day", ds, "candidates", res.Candidates, "kept", res.Kept, "held_back", res.HeldBack)
	return res, nil
}

func lessRow(a, b *Row) bool {
	ka := []string{a.Prompt, a.Quality, a.Resolution, a.AspectRatio, a.Model, a.DeviceClass, a.Outcome, a.FailureCode}
	kb := []string{b.Prompt, b.Quality, b.Resolution, b.AspectRatio, b.Model, b.DeviceClass, b.Outcome, b.FailureCode}
	for i := range ka {
		if ka[i] != kb[i] {
			return ka[i] < kb[i]
		}
	}
	if a.DurationS != b.DurationS {
		return a.DurationS < b.DurationS
	}
	return !a.Downloaded && b.Downloaded
}

// insert writes a day's rows in one insert whose deduplication token
// names the day: a pass that dies after it and before recording the day
// writes it again, and the engine drops the copy.
func (j *Job) insert(ctx context.Context, day time.Time, rows []Row) error {
	ctx = clickhouse.Context(ctx, clickhouse.WithSettings(clickhouse.Settings{"insert_deduplication_token": "prompt_corpus-" + day.Format(time.DateOnly)}))
	b, err := j.db.PrepareBatch(ctx, fmt.Sprintf("INSERT INTO %s (%s)", j.table("prompt_corpus"), strings.Join(Columns, ", ")))
	if err != nil {
		return fmt.Errorf("preparing the corpus insert: %w", err)
	}
	defer b.Abort()
	for i := range rows {
		if err := b.AppendStruct(&rows[i]); err != nil {
			return fmt.Errorf("appending a corpus row: %w", err)
		}
	}
	if err := b.Send(); err != nil {
		return fmt.Errorf("inserting %d corpus rows: %w", len(rows), err)
	}
	return nil
}
