// Package soak drives a running all-in-one `telemetry serve` through its
// real interfaces for a long load run and measures what an operator would
// watch: the load generator's rate, freshness (a probe event's 2xx until a
// ClickHouse query sees it), the local log's backlog (the process's
// /metrics), the process's RSS (/proc) and, at the end, acknowledged
// against stored events. Optionally it runs a dashboard query every
// interval beside the load. It starts no process: the caller starts the
// server and hands its addresses and pid.
package soak

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/sora3web/telemetry/internal/gen"
	"github.com/sora3web/telemetry/internal/loadgen"
	"github.com/sora3web/telemetry/schema"
)

// Config configures a run.
type Config struct {
	// IngestURL is the collector's base URL, e.g. http://127.0.0.1:8080;
	// its /metrics is read for the backlog.
	IngestURL string
	// ClickHouseURL is the embedded engine's HTTP interface, e.g.
	// http://127.0.0.1:8123.
	ClickHouseURL string
	// Database holds the events table.
	Database string
	// WriteKey authenticates the load and the probes.
	WriteKey string
	// PID is the server's process id, for its RSS.
	PID int
	// LogDir is the local log's directory, whose size is sampled.
	LogDir string
	// Prefill, when > 0, inserts that many synthetic rows spread over the
	// last 7 days into the events table before the load, so queries scan a
	// table of a realistic size. They are not counted as stored.
	Prefill int64
	// Rate is the load in events/s (batches of 50, open loop).
	Rate float64
	// Duration is how long the load runs.
	Duration time.Duration
	// ProbeEvery is the interval between probe events.
	ProbeEvery time.Duration
	// PollEvery is the interval between the watcher's queries for the
	// probes not yet seen (0: DefaultPollEvery): a probe's freshness is an
	// upper bound by at most one PollEvery. Each poll is a query of the engine,
	// which shares the server's cores with what is measured.
	PollEvery time.Duration
	// Query, when not empty, runs every QueryEvery beside the load (one at
	// a time: a query still running when the next is due delays it).
	Query string
	// QueryEvery is the interval between dashboard queries.
	QueryEvery time.Duration
	// DrainTimeout bounds the wait, after the load, for every acknowledged
	// event to be stored.
	DrainTimeout time.Duration
}

// Report is what a run measured.
type Report struct {
	// Load is the load generator's own report.
	Load *loadgen.Report
	// Probes counts the probe events sent and acknowledged.
	Probes int
	// ProbesRefused counts the probes answered 503: ingest shed load
	// (max_inflight full) while the load ran.
	ProbesRefused int
	// Fresh holds the probes' freshness, sorted.
	Fresh []time.Duration
	// BacklogMax is the largest lag of the consumer's cursor on the local
	// log (records), sampled every second from /metrics.
	BacklogMax int64
	// LogBytesMax is the largest size of the local log's directory.
	LogBytesMax int64
	// PartsMax and PartsEnd are the largest and the last count of the
	// events table's active parts, sampled every 5 seconds: merges that
	// fall behind (embedded.merge_nice yields them the cores) show here.
	PartsMax, PartsEnd int64
	// RSSMax is the server's peak RSS (VmHWM) in bytes.
	RSSMax int64
	// Queries holds the dashboard queries' durations (sorted); QueryErrors
	// counts those that failed (a timeout included).
	Queries     []time.Duration
	QueryErrors int
	// LastQueryError is the text of the last failed query.
	LastQueryError string
	// Acked counts the events acknowledged (load and probes); Stored the
	// rows in the events table at the end and Distinct their event ids,
	// both without the Prefill rows.
	Acked, Stored, Distinct int64
	// PrefillTime is how long the Prefill insert took.
	PrefillTime time.Duration
	// Drain is how long after the load the last acknowledged event took to
	// be stored (or DrainTimeout).
	Drain time.Duration
}

// Lost is how many acknowledged events were not stored.
func (r *Report) Lost() int64 { return max(r.Acked-r.Distinct, 0) }

// Duplicated is how many rows repeat an event id.
func (r *Report) Duplicated() int64 { return r.Stored - r.Distinct }

// Quantile returns the q quantile of sorted d (0 when empty).
func Quantile(d []time.Duration, q float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	return d[min(int(q*float64(len(d))), len(d)-1)]
}

// ErrLoad wraps a failure of the load generator.
var ErrLoad = errors.New("load generator failed")

// Run drives the server for cfg.Duration, then waits for the backlog to
// drain and counts what was stored.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	r := &Report{}
	ch := &clickhouse{base: cfg.ClickHouseURL, db: cfg.Database, hc: &http.Client{Timeout: 30 * time.Minute}}
	if cfg.Prefill > 0 {
		start := time.Now()
		if _, err := ch.query(ctx, strings.ReplaceAll(prefillSQL, "{rows}", strconv.FormatInt(cfg.Prefill, 10))); err != nil {
			return nil, fmt.Errorf("prefilling %d rows: %w", cfg.Prefill, err)
		}
		r.PrefillTime = time.Since(start)
		// The peak RSS (VmHWM) is the run's, not the prefill's: writing 5
		// to clear_refs resets it (proc(5)).
		if err := os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", cfg.PID), []byte("5"), 0); err != nil {
			return nil, fmt.Errorf("resetting the server's peak RSS after the prefill: %w", err)
		}
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // before the Wait above
	wg.Add(1)
	go func() { defer wg.Done(); sampleServer(ctx, cfg, ch, r) }()
	if cfg.Query != "" {
		wg.Add(1)
		go func() { defer wg.Done(); runQueries(ctx, ch, cfg, r) }()
	}
	probes := newProber(cfg, ch)
	wg.Add(1)
	go func() { defer wg.Done(); probes.run(ctx) }()

	// The load may hold as many requests as ingest admits by default
	// (ingest.max_inflight), so ingest's own bounds, not the load
	// generator's, decide what a stall sheds.
	load, err := loadgen.Run(ctx, loadgen.Config{URL: cfg.IngestURL, WriteKey: cfg.WriteKey, Mode: "batch", BatchSize: 50,
		Rate: cfg.Rate, Concurrency: 16, MaxConcurrency: 2048, Duration: cfg.Duration, Users: 10000, Seed: 5})
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrLoad, err)
	}
	r.Load = load
	probes.stop()
	fresh, acked, refused, err := probes.wait()
	if err != nil {
		return nil, err
	}
	r.Fresh, r.Probes, r.ProbesRefused = fresh, acked, refused
	r.Acked = load.Accepted + int64(acked)
	cancel() // stop the queries and the sampler before counting
	wg.Wait()
	if err := drain(context.WithoutCancel(ctx), ch, cfg.DrainTimeout, r); err != nil {
		return nil, err
	}
	if hwm := procStatus(cfg.PID, "VmHWM:"); hwm > 0 {
		r.RSSMax = hwm
	}
	slices.Sort(r.Queries)
	return r, nil
}

// prefillSQL inserts {rows} synthetic rows over the last 7 days: 200,000
// anonymous users, a fifth of them signed in on the pro plan. Their
// kafka_topic is one no bus uses, so the consumer's positions ignore them.
const prefillSQL = `INSERT INTO {db}.events (event_id, type, timestamp, occurred_at, sent_at, received_at,
	anonymous_id, user_id, plan, consent_analytics, device_class, quality, resolution, kafka_topic)
SELECT generateUUIDv4(), ['page_view', 'generation_requested', 'generation_completed'][1 + number % 3] AS type,
	now64(3) - toIntervalMillisecond(number * 7919 % 604800000) AS ts, ts, ts, ts,
	concat('anon-', toString(number % 200000)), if(number % 5 = 0, concat('user-', toString(number % 200000)), ''),
	if(number % 5 = 0, 'pro', 'free'), true, ['desktop', 'mobile', 'tablet'][1 + number % 3],
	['fast', 'standard', 'pro'][1 + number % 3], ['720p', '1080p', '2160p'][1 + number % 3], 'soak-prefill'
FROM numbers({rows})`

// drain waits until every acknowledged event is stored, or until
// timeout passes without it, and fills the stored counts.
func drain(ctx context.Context, ch *clickhouse, timeout time.Duration, r *Report) error {
	start := time.Now()
	for {
		// The count is a full scan: it may take longer than the engine's
		// default bound on read-only queries (embedded.max_query_time).
		out, err := ch.query(ctx, "SELECT count(), uniqExact(event_id) FROM {db}.events WHERE kafka_topic != 'soak-prefill'"+
			" SETTINGS max_execution_time = 600")
		if err != nil {
			return fmt.Errorf("counting stored events: %w", err)
		}
		f := strings.Fields(out)
		if len(f) != 2 {
			return fmt.Errorf("counting stored events: unexpected answer %q", out)
		}
		r.Stored, _ = strconv.ParseInt(f[0], 10, 64)
		r.Distinct, _ = strconv.ParseInt(f[1], 10, 64)
		r.Drain = time.Since(start)
		if r.Distinct >= r.Acked || r.Drain > timeout {
			return nil
		}
		time.Sleep(time.Second)
	}
}

// sampleServer records the backlog and the RSS every second, and the
// events table's active parts every 5 seconds, until ctx ends.
func sampleServer(ctx context.Context, cfg Config, ch *clickhouse, r *Report) {
	hc := &http.Client{Timeout: 5 * time.Second}
	tk := time.NewTicker(time.Second)
	defer tk.Stop()
	for i := 0; ; i++ {
		if text, err := get(ctx, hc, cfg.IngestURL+"/metrics"); err == nil {
			r.BacklogMax = max(r.BacklogMax, metricValue(text, "telemetry_wal_cursor_lag", `cursor="clickhouse"`))
		}
		r.LogBytesMax = max(r.LogBytesMax, dirBytes(cfg.LogDir))
		r.RSSMax = max(r.RSSMax, procStatus(cfg.PID, "VmRSS:"))
		if i%5 == 0 {
			out, err := ch.query(ctx, "SELECT count() FROM system.parts WHERE active AND database = '{db}' AND table = 'events'")
			if n, perr := strconv.ParseInt(strings.TrimSpace(out), 10, 64); err == nil && perr == nil {
				r.PartsEnd, r.PartsMax = n, max(r.PartsMax, n)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-tk.C:
		}
	}
}

// metricValue sums the samples of a Prometheus series name whose labels
// contain label (every sample when label is empty).
func metricValue(text, name, label string) int64 {
	var total float64
	for _, l := range strings.Split(text, "\n") {
		rest, ok := strings.CutPrefix(l, name)
		if !ok || (rest != "" && rest[0] != '{' && rest[0] != ' ') || !strings.Contains(rest, label) {
			continue
		}
		if i := strings.LastIndexByte(rest, ' '); i >= 0 {
			v, _ := strconv.ParseFloat(rest[i+1:], 64)
			total += v
		}
	}
	return int64(total)
}

// dirBytes is the total size of the files in dir (0 if unreadable).
func dirBytes(dir string) int64 {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return 0
	}
	var total int64
	for _, e := range entries {
		if info, err := e.Info(); err == nil && info.Mode().IsRegular() {
			total += info.Size()
		}
	}
	return total
}

// procStatus reads a kB field of /proc/pid/status, in bytes (0 if unknown).
func procStatus(pid int, field string) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, field); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// runQueries runs cfg.Query every cfg.QueryEvery until ctx ends.
func runQueries(ctx context.Context, ch *clickhouse, cfg Config, r *Report) {
	tk := time.NewTicker(cfg.QueryEvery)
	defer tk.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tk.C:
		}
		start := time.Now()
		_, err := ch.query(ctx, cfg.Query)
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			r.QueryErrors++
			r.LastQueryError = err.Error()
		default:
			r.Queries = append(r.Queries, time.Since(start))
		}
	}
}

// clickhouse runs queries on ClickHouse's HTTP interface.
type clickhouse struct {
	base, db string
	hc       *http.Client
}

// query runs sql ({db} replaced by the database) with POST, as
// clickhouse-go and Grafana's plugin send queries, and returns the answer.
func (c *clickhouse) query(ctx context.Context, sql string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+"/", strings.NewReader(strings.ReplaceAll(sql, "{db}", c.db)))
	if err != nil {
		return "", err
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return "", fmt.Errorf("clickhouse: %w", err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", fmt.Errorf("clickhouse: reading the answer: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("clickhouse: %d: %s", resp.StatusCode, bytes.TrimSpace(out))
	}
	return string(out), nil
}

// get reads url's body.
func get(ctx context.Context, hc *http.Client, u string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return "", err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

// prober sends one probe event every cfg.ProbeEvery and, in one watcher,
// polls ClickHouse for the probes not yet seen, so the engine answers one
// small query per poll however many probes are in flight. A probe's
// freshness runs from its 2xx to the answer of the first poll that saw it
// (an upper bound by at most one poll interval, cfg.PollEvery, plus the
// poll's own wait for the engine).
type prober struct {
	cfg  Config
	ch   *clickhouse
	hc   *http.Client
	gen  *gen.Generator
	done chan struct{} // closed by stop: send no more probes

	mu       sync.Mutex
	pending  map[string]sentProbe // by event id
	inflight int                  // probes posted, not yet answered
	fresh    []time.Duration
	sent     int
	refused  int // probes answered 503 (ingest shedding load): counted, not sent again
	err      error
	over     chan struct{} // closed when the watcher has seen every probe or gave up
}

func newProber(cfg Config, ch *clickhouse) *prober {
	if cfg.PollEvery <= 0 {
		cfg.PollEvery = DefaultPollEvery
	}
	return &prober{cfg: cfg, ch: ch, hc: &http.Client{Timeout: 30 * time.Second}, gen: gen.New(99, 100),
		done: make(chan struct{}), pending: map[string]sentProbe{}, over: make(chan struct{})}
}

// DefaultPollEvery is Config.PollEvery's default: each look for the
// probes is a query of the engine under test, on its cores, so they are
// looked for less often than they are sent.
const DefaultPollEvery = 200 * time.Millisecond

// sentProbe is a probe posted and acknowledged, not yet seen.
type sentProbe struct {
	sent, acked time.Time // its post's start, its 2xx
}

// probeSkew bounds how long before its send a probe's timestamp may be:
// gen sets occurred_at up to 2s before sent_at.
const probeSkew = 5 * time.Second

// probeTimeout is how long a probe may stay invisible before the run fails.
const probeTimeout = 2 * time.Minute

// run sends probes until stop, and watches them until all are seen. The
// sender has a goroutine of its own: a poll waits for the engine (behind a
// running query, say), and the probes must keep their schedule meanwhile.
func (p *prober) run(ctx context.Context) {
	defer close(p.over)
	sending := make(chan struct{})
	go func() {
		defer close(sending)
		tk := time.NewTicker(p.cfg.ProbeEvery)
		defer tk.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-p.done:
				return
			case <-tk.C:
				p.mu.Lock()
				p.inflight++
				p.mu.Unlock()
				go p.send(ctx)
			}
		}
	}()
	poll := time.NewTicker(p.cfg.PollEvery)
	defer poll.Stop()
	for {
		select {
		case <-ctx.Done():
			p.fail(ctx.Err())
			return
		case <-poll.C:
		}
		stopped := false
		select {
		case <-sending:
			stopped = true
		default:
		}
		if p.poll(ctx, !stopped) {
			return
		}
	}
}

// send posts one probe event and records its 2xx time.
func (p *prober) send(ctx context.Context) {
	defer func() {
		p.mu.Lock()
		p.inflight--
		p.mu.Unlock()
	}()
	p.mu.Lock()
	u := p.gen.User()
	u.Plan = "pro"
	ev := p.gen.EventOf(schema.TypeSettingsChanged, u)
	p.mu.Unlock()
	ev.EventID = uuid.NewString()
	body, err := json.Marshal(map[string]any{"events": []any{ev}})
	if err != nil {
		p.fail(err)
		return
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.cfg.IngestURL+"/v1/events", bytes.NewReader(body))
	if err != nil {
		p.fail(err)
		return
	}
	req.Header.Set("Authorization", "Bearer "+p.cfg.WriteKey)
	req.Header.Set("Content-Type", "application/json")
	sent := time.Now()
	resp, err := p.hc.Do(req)
	if err != nil {
		p.fail(fmt.Errorf("probe: %w", err))
		return
	}
	resp.Body.Close()
	if resp.StatusCode == http.StatusServiceUnavailable {
		p.mu.Lock()
		p.refused++
		p.mu.Unlock()
		return
	}
	if resp.StatusCode != http.StatusOK {
		p.fail(fmt.Errorf("probe: answer %d", resp.StatusCode))
		return
	}
	p.mu.Lock()
	p.pending[ev.EventID] = sentProbe{sent: sent, acked: time.Now()}
	p.sent++
	p.mu.Unlock()
}

// poll asks which pending probes are visible and records their freshness;
// it reports whether the watcher is finished (nothing left to watch after
// stop, or a failure).
func (p *prober) poll(ctx context.Context, sending bool) bool {
	p.mu.Lock()
	ids := make([]string, 0, len(p.pending))
	oldest, oldestSent := time.Now(), time.Now()
	for id, pr := range p.pending {
		ids = append(ids, "'"+id+"'")
		if pr.acked.Before(oldest) {
			oldest = pr.acked
		}
		if pr.sent.Before(oldestSent) {
			oldestSent = pr.sent
		}
	}
	failed, inflight := p.err != nil, p.inflight
	p.mu.Unlock()
	switch {
	case failed:
		return true
	case len(ids) == 0:
		return !sending && inflight == 0
	case time.Since(oldest) > probeTimeout:
		p.fail(fmt.Errorf("a probe was not visible %v after its 2xx", probeTimeout))
		return true
	}
	// The bound on timestamp lets the engine skip every part older than
	// the oldest probe pending (the minmax index on timestamp, the
	// partition key's column): without it a poll read a granule of every
	// part, some 300,000 rows with 42 parts, and its cost grew with the
	// table while sharing the server's cores with what the run measures.
	// A probe's timestamp is its occurred_at (up to 2s before its
	// sent_at, gen) corrected for skew: its receipt less up to 2s, on
	// this machine's one clock, so never much before its send (probeSkew).
	out, err := p.ch.query(ctx, "SELECT toString(event_id) FROM {db}.events WHERE type = 'settings_changed' AND plan = 'pro'"+
		" AND timestamp >= fromUnixTimestamp64Milli("+strconv.FormatInt(oldestSent.Add(-probeSkew).UnixMilli(), 10)+")"+
		" AND event_id IN ("+strings.Join(ids, ",")+")")
	if err != nil {
		return false // a poll that failed (engine busy, say) is retried
	}
	seen := time.Now()
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, id := range strings.Fields(out) {
		if pr, ok := p.pending[id]; ok {
			p.fresh = append(p.fresh, seen.Sub(pr.acked))
			delete(p.pending, id)
		}
	}
	return false
}

func (p *prober) fail(err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.err == nil {
		p.err = err
	}
}

// stop ends the sending of probes.
func (p *prober) stop() { close(p.done) }

// wait returns the sorted freshness of every probe, how many were
// acknowledged and how many refused with 503, once all are seen.
func (p *prober) wait() ([]time.Duration, int, int, error) {
	<-p.over
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.err != nil {
		return nil, 0, 0, fmt.Errorf("probes: %w", p.err)
	}
	slices.Sort(p.fresh)
	return p.fresh, p.sent, p.refused, nil
}
