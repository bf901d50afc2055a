package pipeline

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/sora3web/telemetry/bus/wal"
	"github.com/sora3web/telemetry/internal/audit"
	"github.com/sora3web/telemetry/internal/chconn"
	"github.com/sora3web/telemetry/internal/config"
	"github.com/sora3web/telemetry/internal/obs"
)

// auditReport is the admin API's report over the last 10 minutes, every
// window taken as closed.
func auditReport(t *testing.T, p *Pipeline) audit.Report {
	t.Helper()
	var rep struct {
		Clean bool `json:"clean"`
		audit.Report
	}
	adminCall(t, p, "GET", "/v1/audit?since=10m&settled=true", "", &rep)
	if rep.Clean != rep.Report.Clean() {
		t.Fatalf("clean = %v, but the totals say %+v", rep.Clean, rep.Total)
	}
	return rep.Report
}

// waitAudit waits up to 10s until the report's totals satisfy ok.
func waitAudit(t *testing.T, p *Pipeline, ok func(audit.Window) bool) audit.Report {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		rep := auditReport(t, p)
		if ok(rep.Total) {
			return rep
		}
		if time.Now().After(deadline) {
			t.Fatalf("audit totals after 10s: %+v", rep.Total)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestAuditBalancesAcceptedAgainstStoredResentAndRejected: events posted,
// three of them resent (a client retry whose answer was lost), a request
// with one invalid event; the admin API's report accounts for every
// accepted copy (stored or deduplicated), counts the rejection by field,
// and reports nothing lost or duplicated.
func TestAuditBalancesAcceptedAgainstStoredResentAndRejected(t *testing.T) {
	p := startPipeline(t, allInOne(t))
	ids := postEvents(t, p, "audit-user", 10)
	postEventIDs(t, p, "audit-user", ids[:3]...)
	now := time.Now().UTC().Format(time.RFC3339Nano)
	body := `{"events":[{"event_id":"` + uuid.NewString() + `","type":"page_view","occurred_at":"` + now + `","sent_at":"` + now +
		`","anonymous_id":"a","plan":"pro","consent":{"analytics":true},"context":{"page_url":"https://app.example.com/"}},` +
		`{"event_id":"` + uuid.NewString() + `","type":"page_view","occurred_at":"` + now + `","sent_at":"` + now +
		`","anonymous_id":"a","plan":"gold","consent":{"analytics":true},"context":{"page_url":"https://app.example.com/"}}]}`
	if status, b := postBody(t, p, body); status != http.StatusMultiStatus {
		t.Fatalf("mixed batch: %d %s, want 207", status, b)
	}

	// The rejection's count rides with ingest's next publish or its
	// periodic flush (every 5 s), which may come after the events' counts.
	rep := waitAudit(t, p, func(w audit.Window) bool { return w.Stored+w.Deduplicated == 14 && w.Rejected == 1 })
	want := audit.Window{Accepted: 14, Published: 14, Consumed: 14, Stored: 11, Deduplicated: 3, Rejected: 1}
	got := rep.Total
	got.Refused = 0 // none expected, but not what this test is about
	if got != want {
		t.Fatalf("audit totals:\n got  %+v\n want %+v", got, want)
	}
	if len(rep.Windows) == 0 || rep.Windows[0].Source != "dev" {
		t.Fatalf("windows %+v: want the dev source's", rep.Windows)
	}
	if !rep.Clean() {
		t.Fatalf("report not clean: %+v", rep.Total)
	}
}

// postSession posts page views of one session numbered seqs.
func postSession(t *testing.T, p *Pipeline, session string, seqs ...int) {
	t.Helper()
	now := time.Now().UTC().Format(time.RFC3339Nano)
	var evs []string
	for _, n := range seqs {
		evs = append(evs, fmt.Sprintf(`{"event_id":%q,"type":"page_view","occurred_at":%q,"sent_at":%q,"anonymous_id":"a-%s",`+
			`"session_id":%q,"seq":%d,"plan":"free","consent":{"analytics":true},"context":{"page_url":"https://app.example.com/"}}`,
			uuid.NewString(), now, now, session, session, n))
	}
	if status, b := postBody(t, p, `{"events":[`+strings.Join(evs, ",")+`]}`); status != http.StatusOK {
		t.Fatalf("session events: %d %s", status, b)
	}
}

// postBody posts body to p's /v1/events with the development key and
// returns the status and the answer.
func postBody(t *testing.T, p *Pipeline, body string) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequest("POST", "http://"+p.IngestAddr()+"/v1/events", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+config.DevWriteKey)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// TestAuditReportsEventsTheBusLost: ingest accepts two requests on the
// local log; before a consumer reads them, the consumer's cursor is moved
// past the first request's five events, as a lost log segment would. The
// report, once the window is closed, says 5 lost, and Check fails.
func TestAuditReportsEventsTheBusLost(t *testing.T) {
	cfg := allInOne(t)
	ingestOnly := cfg
	ingestOnly.Serve.Consumer = false
	p := startPipeline(t, ingestOnly)
	postEvents(t, p, "lost-user", 5)
	postEvents(t, p, "kept-user", 5)
	postSession(t, p, "browser-session", 1, 3) // a browser's session missing its second event
	stop(t, p)

	wcfg := cfg.WAL
	wcfg.Dir = cfg.WALDir()
	l, err := wal.Open(wcfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Cursor(consumerCursor); err != nil {
		t.Fatal(err)
	}
	if err := l.Commit(consumerCursor, 5); err != nil { // records 1-5: the first request's events
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}

	// The second process exports the completeness metrics, as serve does.
	m, err := obs.StartMetrics(context.Background(), cfg.OTel)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Audit.MetricsInterval, cfg.Audit.MetricsSpan = 100*time.Millisecond, 10*time.Minute
	p, err = New(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	p.Handlers["GET /metrics"] = m.Handler
	if err := p.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Shutdown(context.Background()) })
	waitUserRows(t, p, "kept-user", 5)
	rep := waitAudit(t, p, func(w audit.Window) bool { return w.Accepted == 12 && w.Stored == 7 })
	if g := rep.Sessions; g.Sessions != 1 || g.Missing != 1 || g.MissingAtUnload != 0 {
		t.Fatalf("session gaps %+v: want 1 session missing 1 event, not at unload", g.Gaps)
	}
	if rep.Total.Lost != 5 || rep.Total.Duplicates != 0 {
		t.Fatalf("audit totals %+v: want 5 lost, 0 duplicates", rep.Total)
	}
	if err := rep.Check(); !errors.Is(err, audit.ErrLoss) {
		t.Fatalf("Check() = %v, want ErrLoss", err)
	}

	// The same report straight from ClickHouse, as `telemetry audit`
	// reads it, with the window still open: in flight, not lost.
	conn, err := chconn.Open(p.ClickHouseConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	open, err := audit.Query(context.Background(), conn, audit.Options{Database: cfg.ClickHouse.Database,
		Since: time.Now().Add(-10 * time.Minute), Grace: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if open.Total.Lost != 0 || open.Total.Pending != 5 || open.Windows[0].State != audit.InFlight {
		t.Fatalf("open window: %+v, want 5 in flight and none lost", open.Total)
	}

	// The metrics say the same (the window is open: in flight), and every
	// series the alert rules use is exported.
	exposition := waitMetric(t, p, "telemetry_audit_in_flight", "5")
	rules, err := os.ReadFile(filepath.Join("..", "..", "dashboards", "prometheus", "alerts.yml"))
	if err != nil {
		t.Fatal(err)
	}
	names := regexp.MustCompile(`telemetry_audit_[a-z_]+`).FindAllString(string(rules), -1)
	if len(names) < 3 {
		t.Fatalf("alerts.yml names %v", names)
	}
	for _, n := range names {
		if !regexp.MustCompile(`(?m)^` + n + `[{ ]`).MatchString(exposition) {
			t.Errorf("alerts.yml uses %s, which /metrics does not export", n)
		}
	}

	// A row stored twice (here copied by hand) is a duplicate, and fails
	// the check even with nothing lost.
	if err := conn.Exec(context.Background(), "INSERT INTO telemetry.events SELECT * FROM telemetry.events WHERE user_id = 'kept-user' LIMIT 1"); err != nil {
		t.Fatal(err)
	}
	dup, err := audit.Query(context.Background(), conn, audit.Options{Database: cfg.ClickHouse.Database,
		Since: time.Now().Add(-10 * time.Minute), Grace: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if dup.Total.Duplicates != 1 || dup.Clean() {
		t.Fatalf("after copying a row: %+v, want 1 duplicate and not clean", dup.Total)
	}
}

// waitMetric waits up to 10s until p's /metrics has a sample of name with
// value want (any labels), and returns the exposition.
func waitMetric(t *testing.T, p *Pipeline, name, want string) string {
	t.Helper()
	re := regexp.MustCompile(`(?m)^` + name + `(\{[^}]*\})? ` + regexp.QuoteMeta(want) + `$`)
	var body string
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		resp, err := http.Get("http://" + p.IngestAddr() + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if body = string(b); re.MatchString(body) {
			return body
		}
	}
	t.Fatalf("/metrics has no %s %s after 10s:\n%s", name, want, grep(body, "telemetry_audit"))
	return ""
}

// grep returns the lines of s that contain sub.
func grep(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
