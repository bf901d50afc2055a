package dashboards

import (
	"encoding/json"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// browserResult is what web/test/browser.mjs reports.
type browserResult struct {
	State struct {
		Panels map[string]struct {
			Type   string `json:"type"`
			Rows   int    `json:"rows"`
			Series int    `json:"series"`
			Canvas bool   `json:"canvas"`
		} `json:"panels"`
		Errors []string `json:"errors"`
		Done   bool     `json:"done"`
	} `json:"state"`
	DOM map[string]struct {
		Canvas    int    `json:"canvas"`
		TableRows int    `json:"tableRows"`
		Stats     int    `json:"stats"`
		Text      string `json:"text"`
	} `json:"dom"`
	Console []struct {
		Type string `json:"type"`
		Text string `json:"text"`
	} `json:"console"`
	Requests []struct {
		URL    string `json:"url"`
		Status int    `json:"status"`
	} `json:"requests"`
}

// TestBrowserDashboard loads /dashboard/ in headless Chromium over the
// seeded data and checks that every panel was drawn with data (a canvas
// for charts, rows for tables, numbers for stats), that nothing was
// fetched from outside the test server and that the console stayed clean.
// The screenshot is kept at dashboards/testdata/screenshot.png (gitignored).
func TestBrowserDashboard(t *testing.T) {
	nodeModules(t)
	ensureChromium(t)
	srv := newTestServer(t)
	panels, err := BuiltinPanels()
	if err != nil {
		t.Fatal(err)
	}
	q := url.Values{"from": {seedFrom.Format(time.RFC3339)}, "to": {seedTo.Format(time.RFC3339)}}
	if err := os.MkdirAll("testdata", 0o755); err != nil {
		t.Fatal(err)
	}
	shot, err := filepath.Abs(filepath.Join("testdata", "screenshot.png"))
	if err != nil {
		t.Fatal(err)
	}
	result := filepath.Join(t.TempDir(), "result.json")
	start := time.Now()
	out, err := run("web", 3*time.Minute, []string{"DASHBOARD_URL=" + srv.URL + "/dashboard/?" + q.Encode(), "SCREENSHOT=" + shot, "RESULT_FILE=" + result},
		"node", "test/browser.mjs")
	t.Logf("node test/browser.mjs (%v):\n%s", time.Since(start).Round(time.Millisecond), out)
	if err != nil {
		t.Fatalf("node test/browser.mjs: %v", err)
	}
	raw, err := os.ReadFile(result)
	if err != nil {
		t.Fatal(err)
	}
	var r browserResult
	if err := json.Unmarshal(raw, &r); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", shot)
	if !r.State.Done || len(r.State.Errors) > 0 {
		t.Errorf("page done=%v, errors %v", r.State.Done, r.State.Errors)
	}
	for _, c := range r.Console {
		if c.Type == "error" || c.Type == "pageerror" || c.Type == "requestfailed" || c.Type == "warning" {
			t.Errorf("console %s: %s", c.Type, c.Text)
		}
	}
	for _, req := range r.Requests {
		if u, err := url.Parse(req.URL); err != nil || "http://"+u.Host != srv.URL {
			t.Errorf("request outside the test server: %s", req.URL)
		} else if req.Status != 200 {
			t.Errorf("%s: HTTP %d", req.URL, req.Status)
		}
	}
	if len(r.State.Panels) != len(panels) {
		t.Errorf("%d panels drawn, want %d", len(r.State.Panels), len(panels))
	}
	for _, p := range panels {
		got, dom := r.State.Panels[p.ID], r.DOM[p.ID]
		switch {
		case got.Rows == 0:
			t.Errorf("%s %q: no rows (%q)", p.ID, p.Title, dom.Text)
		case p.Type == "timeseries" || p.Type == "barchart" || p.Type == "piechart":
			if !got.Canvas || dom.Canvas == 0 || got.Series == 0 {
				t.Errorf("%s %q (%s): canvas %v/%d, series %d", p.ID, p.Title, p.Type, got.Canvas, dom.Canvas, got.Series)
			}
		case p.Type == "table":
			if dom.TableRows != min(got.Rows, 200) {
				t.Errorf("%s %q: %d table rows, want %d", p.ID, p.Title, dom.TableRows, min(got.Rows, 200))
			}
		case p.Type == "stat":
			if dom.Stats == 0 {
				t.Errorf("%s %q: no stat drawn", p.ID, p.Title)
			}
		}
	}
}
