package sdk_test

import (
	"context"
	"encoding/json"
	"io"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sora3web/telemetry/internal/audit"
	"github.com/sora3web/telemetry/internal/chconn"
	"github.com/sora3web/telemetry/internal/config"
	"github.com/sora3web/telemetry/internal/pipeline"
	"github.com/sora3web/telemetry/sdk"
)

// TestBrowserDropAtUnloadIsReportedAsAGap runs the SDK in headless
// Chromium against the whole all-in-one pipeline. The page sends four
// events, queues three more and navigates away; the beacon that carries
// the three at unload is lost by the network (a proxy in front of the
// collector resets every /v1/beacon connection; Chromium's own request
// blocking does not apply to an unloading page's keepalive requests). The
// session's next page sends on. The audit then
// reports one Chrome session with a gap of 3 events, all handed over at
// unload, and the 3 are not stored.
func TestBrowserDropAtUnloadIsReportedAsAGap(t *testing.T) {
	nodeModules(t)
	ensureChromium(t)

	var collectorURL string
	pages := pageServer(t, &collectorURL, config.DevWriteKey)

	cfg := config.Default()
	cfg.DataDir = t.TempDir()
	cfg.Ingest.Listen, cfg.Embedded.Listen, cfg.Admin.Listen = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
	cfg.Ingest.CORSOrigins = []string{pages.URL}
	cfg.Consumer.BatchInterval = 200 * time.Millisecond
	cfg.Audit.FlushInterval = time.Second // the counts within the wait below, not the default 30 s
	p, err := pipeline.New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	p.Handlers["GET /v1/sdk.js"] = sdk.Handler()
	if err := p.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Shutdown(context.Background()) })
	target, _ := url.Parse("http://" + p.IngestAddr())
	forward := httputil.NewSingleHostReverseProxy(target)
	var beacons atomic.Int64
	lossy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && r.URL.Path == "/v1/beacon" {
			beacons.Add(1)
			panic(http.ErrAbortHandler) // the connection is reset: nothing reaches the collector
		}
		forward.ServeHTTP(w, r)
	}))
	lossy.Config.ErrorLog = log.New(io.Discard, "", 0)
	t.Cleanup(lossy.Close)
	collectorURL = lossy.URL

	resultFile := filepath.Join(t.TempDir(), "result.json")
	out, err := run(sdkDir(t), 3*time.Minute, []string{
		"COLLECTOR_URL=" + collectorURL, "PAGE_URL=" + pages.URL, "WRITE_KEY=" + config.DevWriteKey, "RESULT_FILE=" + resultFile,
		"SCENARIOS=drop",
	}, "node", "test/browser.mjs")
	t.Logf("node test/browser.mjs:\n%s", out)
	if err != nil {
		t.Fatalf("node test/browser.mjs: %v", err)
	}
	raw, err := os.ReadFile(resultFile)
	if err != nil {
		t.Fatal(err)
	}
	var res struct {
		Drop struct {
			Sent    []string `json:"sent"`
			Lost    []string `json:"lost"`
			Next    string   `json:"next"`
			Session string   `json:"session"`
		} `json:"drop"`
	}
	if err := json.Unmarshal(raw, &res); err != nil {
		t.Fatalf("result %s: %v", raw, err)
	}
	d := res.Drop
	if beacons.Load() == 0 {
		t.Fatal("the page sent no beacon at unload")
	}

	conn, err := chconn.Open(p.ClickHouseConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx := context.Background()
	var rep *audit.Report
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		rep, err = audit.Query(ctx, conn, audit.Options{Database: cfg.ClickHouse.Database, Since: time.Now().Add(-time.Hour), Settled: true})
		if err != nil {
			t.Fatal(err)
		}
		if rep.Sessions.Sessions > 0 && rep.Total.Stored >= 6 || time.Now().After(deadline) {
			break
		}
	}
	// Stored: session_start, page_view and two events, then the second
	// page's page_view and event; not the three of the lost beacon.
	var seqs []string
	rows, err := conn.Query(ctx, "SELECT toString(event_id), seq, context_unload_seq FROM telemetry.events WHERE session_id = ? ORDER BY seq", d.Session)
	if err != nil {
		t.Fatal(err)
	}
	stored := map[string]bool{}
	for rows.Next() {
		var id string
		var seq, unload uint32
		if err := rows.Scan(&id, &seq, &unload); err != nil {
			t.Fatal(err)
		}
		stored[id] = true
		seqs = append(seqs, itoa(seq)+"/"+itoa(unload))
	}
	rows.Close()
	if want := "1/0 2/0 3/0 4/0 8/5 9/5"; strings.Join(seqs, " ") != want {
		t.Fatalf("stored seq/unload_seq of the session: %v, want %s", seqs, want)
	}
	for _, id := range d.Lost {
		if stored[id] {
			t.Fatalf("event %s of the aborted beacon was stored: the drop was not forced", id)
		}
	}
	for _, id := range append(d.Sent, d.Next) {
		if !stored[id] {
			t.Fatalf("event %s sent by fetch is not stored", id)
		}
	}

	g := rep.Sessions
	if g.Sessions != 1 || g.SessionsWithGaps != 1 || g.SessionsWithUnloadGaps != 1 || g.Missing != 3 || g.MissingAtUnload != 3 || g.Arrived != 6 {
		t.Fatalf("session gaps %+v: want 1 session, 6 arrived, 3 missing, all 3 at unload", g.Gaps)
	}
	if len(g.ByBrowser) != 1 || !strings.Contains(g.ByBrowser[0].Browser, "Chrome") || g.ByBrowser[0].Missing != 3 {
		t.Fatalf("by browser %+v: want one Chrome row missing 3", g.ByBrowser)
	}
	if got := g.EventShare(); got != 3.0/9 {
		t.Fatalf("share of events missing %v, want 3/9", got)
	}
	if !rep.Clean() {
		t.Fatalf("the server side lost nothing, yet the audit says %+v", rep.Total)
	}
	var text strings.Builder
	if err := rep.WriteText(&text); err != nil {
		t.Fatal(err)
	}
	t.Logf("telemetry audit:\n%s", text.String())
}

func itoa(n uint32) string { return strconv.FormatUint(uint64(n), 10) }
