package pipeline

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/sora3web/telemetry/bus/wal"
	"github.com/sora3web/telemetry/internal/audit"
	"github.com/sora3web/telemetry/internal/chconn"
	"github.com/sora3web/telemetry/internal/config"
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
	req, _ := http.NewRequest("POST", "http://"+p.IngestAddr()+"/v1/events", bytes.NewReader([]byte(body)))
	req.Header.Set("Authorization", "Bearer "+config.DevWriteKey)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusMultiStatus {
		t.Fatalf("mixed batch: %d %s, want 207", resp.StatusCode, b)
	}

	rep := waitAudit(t, p, func(w audit.Window) bool { return w.Stored+w.Deduplicated == 14 })
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

	p = startPipeline(t, cfg)
	waitUserRows(t, p, "kept-user", 5)
	rep := waitAudit(t, p, func(w audit.Window) bool { return w.Accepted == 10 && w.Stored == 5 })
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
}
