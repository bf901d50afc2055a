package dashboards

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sora3web/telemetry/schema"
)

// browserBox is an element's bounding box and text, as measured in the page.
type browserBox struct {
	L, R, T, B float64
	Text       string
}

func (a browserBox) overlaps(b browserBox) bool {
	return a.L < b.R-0.5 && b.L < a.R-0.5 && a.T < b.B-0.5 && b.T < a.B-0.5
}

// browserPanel is what web/test/browser.mjs measured of one panel.
type browserPanel struct {
	Type      string `json:"type"`
	Text      string `json:"text"`
	TableRows int    `json:"tableRows"`
	Stats     int    `json:"stats"`
	SVG       *struct {
		XMin, XMax, YMin, Baseline *float64
	} `json:"svg"`
	TicksX      []browserBox `json:"ticksX"`
	TicksY      []browserBox `json:"ticksY"`
	TickXTitles []string     `json:"tickXTitles"`
	Bars        []struct{ Y, H float64 }
	AxisTitle   string     `json:"axisTitle"`
	Legend      []string   `json:"legend"`
	SVGBox      browserBox `json:"svgBox"`
}

type browserVisit struct {
	URL   string `json:"url"`
	State struct {
		Panels map[string]struct {
			Type   string `json:"type"`
			Rows   int    `json:"rows"`
			Series int    `json:"series"`
			Points int    `json:"points"`
			SVG    bool   `json:"svg"`
		} `json:"panels"`
		Errors   []string `json:"errors"`
		Done     bool     `json:"done"`
		Explorer struct {
			Groups, Occurrences, SessionEvents int
			Occurrence, Stack                  string
		} `json:"explorer"`
	} `json:"state"`
	Panels            map[string]browserPanel      `json:"panels"`
	HoverLegend       string                       `json:"hoverLegend"`
	Ranges            []struct{ From, To float64 } `json:"ranges"`
	StackText         string                       `json:"stackText"`
	SessionRows       int                          `json:"sessionRows"`
	SelectedInSession int                          `json:"selectedInSession"`
}

type browserResult struct {
	SignedIn string                  `json:"signedIn"`
	Visits   map[string]browserVisit `json:"visits"`
	Console  []struct {
		Type string `json:"type"`
		Text string `json:"text"`
	} `json:"console"`
	Requests []struct {
		URL    string `json:"url"`
		Status int    `json:"status"`
	} `json:"requests"`
}

// TestBrowserDashboards signs in to the dashboards' own server in headless
// Chromium and looks at every page over the seeded data, asserting what a
// person sees: every panel drawn; each time axis spans exactly the
// selected range (28 days by day, 3 days by hour, 5 hours by minute);
// bars rise from the zero line and every value axis starts at 0; no two
// tick labels overlap; legends show values under the cursor; an empty
// range says so; the explorer finds a seeded error by session_id and
// shows its stack and the session's events around it; the pipeline page
// draws the recorded history. Nothing is fetched from outside the server
// and the console stays clean. Screenshots: dashboards/testdata/screenshots/.
func TestBrowserDashboards(t *testing.T) {
	nodeModules(t)
	ensureChromium(t)
	conn, ev := seed(t)
	const token = "staff-token-for-the-browser-test-0123456789"
	s, err := NewServer(Config{Enabled: true, Listen: "127.0.0.1:0", Token: token, Database: testDB, Log: slog.New(slog.DiscardHandler)}, conn)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s.h)
	t.Cleanup(srv.Close)

	rng := func(from, to time.Time) string {
		return url.Values{"from": {from.Format(time.RFC3339)}, "to": {to.Format(time.RFC3339)}}.Encode()
	}
	ranges := map[string][2]time.Time{
		"product":       {seedFrom, seedTo},
		"product-hours": {seedFrom.Add(9*24*time.Hour + 20*time.Minute), seedFrom.Add(12*24*time.Hour + 5*time.Hour)},
		"product-mins":  {seedFrom.Add(15*24*time.Hour + 2*time.Hour), seedFrom.Add(15*24*time.Hour + 7*time.Hour + 30*time.Minute)},
		"group":         {seedFrom, seedTo},
		"empty":         {time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2025, 1, 2, 0, 0, 0, 0, time.UTC)},
		"errors":        {seedFrom, seedTo},
		"pipeline":      {seedFrom.Add(13 * 24 * time.Hour), seedFrom.Add(15 * 24 * time.Hour)},
	}
	session := mostErrorsSession(ev)
	visits := []map[string]any{
		{"name": "product", "path": "/dashboard/?" + rng(ranges["product"][0], ranges["product"][1])},
		{"name": "product-hours", "path": "/dashboard/?" + rng(ranges["product-hours"][0], ranges["product-hours"][1])},
		{"name": "product-mins", "path": "/dashboard/?" + rng(ranges["product-mins"][0], ranges["product-mins"][1])},
		{"name": "empty", "path": "/dashboard/?" + rng(ranges["empty"][0], ranges["empty"][1])},
		{"name": "errors", "path": "/dashboard/errors?" + rng(ranges["errors"][0], ranges["errors"][1]) + "&session_id=" + url.QueryEscape(session), "explore": true},
		{"name": "pipeline", "path": "/dashboard/pipeline?" + rng(ranges["pipeline"][0], ranges["pipeline"][1])},
		{"name": "refresh", "path": "/dashboard/pipeline?range=15m&refresh=5s", "refresh": true},
		{"name": "pro", "path": "/dashboard/?" + rng(ranges["product"][0], ranges["product"][1]), "check": []string{"plan", "pro"}},
		{"name": "group", "path": "/dashboard/?" + rng(ranges["product"][0], ranges["product"][1]), "select": []string{"group", seedGroupA}},
	}
	vj, _ := json.Marshal(visits)
	shots, err := filepath.Abs(filepath.Join("testdata", "screenshots"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(shots, 0o755); err != nil {
		t.Fatal(err)
	}
	result := filepath.Join(t.TempDir(), "result.json")
	start := time.Now()
	out, err := run("web", 5*time.Minute, []string{"BASE_URL=" + srv.URL, "TOKEN=" + token, "VISITS=" + string(vj), "SHOT_DIR=" + shots, "RESULT_FILE=" + result},
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
	if !strings.HasPrefix(r.SignedIn, srv.URL+"/dashboard/") {
		t.Fatalf("sign-in ended at %q", r.SignedIn)
	}
	for _, c := range r.Console {
		if c.Type == "error" || c.Type == "pageerror" || c.Type == "requestfailed" || c.Type == "warning" {
			t.Errorf("console %s: %s", c.Type, c.Text)
		}
	}
	for _, req := range r.Requests {
		if u, err := url.Parse(req.URL); err != nil || "http://"+u.Host != srv.URL {
			t.Errorf("request outside the test server: %s", req.URL)
		} else if req.Status != 200 && !(u.Path == "/dashboard/login" && req.Status == 303) {
			t.Errorf("%s: HTTP %d", req.URL, req.Status)
		}
	}
	panels, err := BuiltinPanels()
	if err != nil {
		t.Fatal(err)
	}
	// A quick range with auto-refresh: the page reloads by itself, the range
	// stays 15 minutes long and moves with the clock, the URL keeps both.
	rf := r.Visits["refresh"]
	if len(rf.Ranges) != 2 || rf.Ranges[0].To-rf.Ranges[0].From != 15*60e3 || rf.Ranges[1].To-rf.Ranges[1].From != 15*60e3 ||
		rf.Ranges[1].To <= rf.Ranges[0].To || !strings.Contains(rf.URL, "range=15m") || !strings.Contains(rf.URL, "refresh=5s") {
		t.Errorf("auto-refresh of the last 15 minutes: ranges %+v, URL %s", rf.Ranges, rf.URL)
	}
	delete(r.Visits, "refresh")

	// Checking plan "pro" and applying: the URL holds it and the resolution
	// mix counts the pro plan's generations only.
	all := scenario{from: seedFrom, to: seedTo}
	pro := r.Visits["pro"]
	want := len(where(ev, all.bucketIn, isType(schema.TypeGenerationRequested), notBot,
		func(e *schema.Enriched) bool { return e.Plan == "pro" }))
	if got := pro.Panels["product-2"].Legend; !strings.Contains(pro.URL, "plan=pro") || len(got) != 1 || got[0] != thousands(want) {
		t.Errorf("plan pro applied: URL %s, resolution mix total %v, want %d", pro.URL, got, want)
	}
	delete(r.Visits, "pro")

	// Picking the group org-acme and applying: the URL holds it and the
	// resolution mix counts the group's generations only (its members'
	// included), fewer than without the filter.
	grp := r.Visits["group"]
	want = len(where(ev, all.bucketIn, isType(schema.TypeGenerationRequested), notBot, all.grouped(ev, seedGroupA).pb))
	unfiltered := len(where(ev, all.bucketIn, isType(schema.TypeGenerationRequested), notBot))
	if got := grp.Panels["product-2"].Legend; !strings.Contains(grp.URL, "group="+seedGroupA) || len(got) != 1 || got[0] != thousands(want) || want >= unfiltered {
		t.Errorf("group %s applied: URL %s, resolution mix total %v, want %d (of %d)", seedGroupA, grp.URL, got, want, unfiltered)
	}
	// The group's visit is checked like the others below: every panel drawn,
	// time axes spanning the range, one point per day (raw events bucketed
	// by day, not by minute).
	for name, v := range r.Visits {
		if !v.State.Done || len(v.State.Errors) > 0 {
			t.Errorf("%s: page done=%v, errors %v", name, v.State.Done, v.State.Errors)
		}
		from, to := ranges[name][0], ranges[name][1]
		for id, p := range v.Panels {
			checkPanel(t, name+"/"+id, p, from, to, name == "empty")
		}
		page := "product"
		if name == "pipeline" {
			page = "pipeline"
		}
		if name == "errors" {
			continue
		}
		for _, p := range panels {
			if p.Page != page {
				continue
			}
			got, dom := v.State.Panels[p.ID], v.Panels[p.ID]
			switch {
			case name == "empty":
				if (p.Type == "timeseries" || p.Type == "barchart" || p.Type == "piechart" || p.Type == "heatmap") && dom.Text != "No data in this range." {
					t.Errorf("empty range, %s %q shows %q", p.ID, p.Title, dom.Text)
				}
			case got.Rows == 0:
				if name == "product" || name == "group" || name == "pipeline" {
					t.Errorf("%s: %s %q: no rows (%q)", name, p.ID, p.Title, dom.Text)
				}
			case p.Type == "timeseries" || p.Type == "barchart" || p.Type == "piechart" || p.Type == "heatmap":
				if !got.SVG || dom.SVG == nil || got.Series == 0 {
					t.Errorf("%s: %s %q (%s): no chart drawn", name, p.ID, p.Title, p.Type)
				}
			case p.Type == "table":
				if dom.TableRows != min(got.Rows, 200) {
					t.Errorf("%s: %s %q: %d table rows, want %d", name, p.ID, p.Title, dom.TableRows, min(got.Rows, 200))
				}
			case p.Type == "stat":
				if dom.Stats == 0 {
					t.Errorf("%s: %s %q: no stat drawn", name, p.ID, p.Title)
				}
			}
		}
		// Every bucket of the range is drawn, an empty one as a zero, so no
		// line is drawn across empty buckets.
		if strings.HasPrefix(name, "product") || name == "group" {
			sc := scenario{from: from, to: to}
			buckets := 0
			if from.Truncate(sc.step()) != from {
				buckets++
			}
			for b := from.Truncate(sc.step()); b.Before(to); b = b.Add(sc.step()) {
				if !b.Before(from) {
					buckets++
				}
			}
			if got := v.State.Panels["product-1"].Points; got != buckets {
				t.Errorf("%s: product-1 draws %d buckets, the range has %d", name, got, buckets)
			}
		}
		if name == "product" && !strings.Contains(v.HoverLegend, "UTC:") {
			t.Errorf("hovering a time chart: legend %q shows no time under the cursor", v.HoverLegend)
		}
	}

	// The explorer found the seeded session's errors, opened the newest
	// occurrence of the biggest group, and shows its stack and session.
	x := r.Visits["errors"]
	var occ *schema.Enriched
	for i := range ev {
		if ev[i].EventID == x.State.Explorer.Occurrence {
			occ = &ev[i]
		}
	}
	switch {
	case x.State.Explorer.Groups == 0 || x.State.Explorer.Occurrences == 0 || occ == nil:
		t.Fatalf("explorer: %+v", x.State.Explorer)
	case occ.SessionID != session:
		t.Errorf("explorer opened %s of session %s, want session %s", occ.EventID, occ.SessionID, session)
	case strings.TrimSpace(x.StackText) != strings.TrimSpace(occ.Properties.ErrorStack) && !(occ.Properties.ErrorStack == "" && x.StackText == "(no stack)"):
		t.Errorf("explorer stack %q, want %q", x.StackText, occ.Properties.ErrorStack)
	case x.SessionRows != len(sessionAround(ev, occ.EventID)) || x.SelectedInSession != 1:
		t.Errorf("explorer shows %d session events (%d highlighted), want %d with the error highlighted", x.SessionRows, x.SelectedInSession, len(sessionAround(ev, occ.EventID)))
	case !strings.Contains(x.URL, "event="+occ.EventID):
		t.Errorf("the explorer's URL %q does not hold the occurrence", x.URL)
	}
}

// checkPanel asserts what a person sees of one drawn panel.
func checkPanel(t *testing.T, name string, p browserPanel, from, to time.Time, empty bool) {
	t.Helper()
	if p.SVG == nil {
		return
	}
	if p.SVG.XMin != nil {
		if *p.SVG.XMin != float64(from.UnixMilli()) || *p.SVG.XMax != float64(to.UnixMilli()) {
			t.Errorf("%s: time axis %v..%v, want exactly %v..%v", name, ms(*p.SVG.XMin), ms(*p.SVG.XMax), from, to)
		}
		for _, title := range p.TickXTitles {
			at, err := time.Parse("2006-01-02 15:04:05 UTC", title)
			if err != nil || at.Before(from) || at.After(to) {
				t.Errorf("%s: tick %q outside %v..%v", name, title, from, to)
			}
		}
		if len(p.TickXTitles) < 2 {
			t.Errorf("%s: %d time ticks", name, len(p.TickXTitles))
		}
	}
	if p.SVG.YMin != nil && *p.SVG.YMin != 0 {
		t.Errorf("%s: value axis starts at %v, not 0", name, *p.SVG.YMin)
	}
	if p.SVG.Baseline != nil {
		for i, b := range p.Bars {
			if d := b.Y + b.H - *p.SVG.Baseline; d > 0.5 || d < -0.5 {
				t.Errorf("%s: bar %d ends at %.1f, the zero line is at %.1f", name, i, b.Y+b.H, *p.SVG.Baseline)
			}
		}
	}
	for _, tick := range append(p.TicksX, p.TicksY...) {
		if tick.L < p.SVGBox.L-0.5 || tick.R > p.SVGBox.R+0.5 || tick.B > p.SVGBox.B+0.5 {
			t.Errorf("%s: tick label %q sticks out of its chart (%+v in %+v)", name, tick.Text, tick, p.SVGBox)
		}
	}
	for _, ticks := range [][]browserBox{p.TicksX, p.TicksY} {
		for i := range ticks {
			for j := i + 1; j < len(ticks); j++ {
				if ticks[i].overlaps(ticks[j]) {
					t.Errorf("%s: tick labels %q and %q overlap (%+v, %+v)", name, ticks[i].Text, ticks[j].Text, ticks[i], ticks[j])
				}
			}
		}
	}
	if p.Type != "heatmap" && p.AxisTitle == "" {
		t.Errorf("%s: the value axis has no unit", name)
	}
	for _, l := range p.Legend {
		if l == "" || l == "–" || l == "--" {
			t.Errorf("%s: legend value %q", name, l)
		}
	}
}

// thousands formats n as the legends do (en-US grouping).
func thousands(n int) string {
	if n < 1000 {
		return fmt.Sprint(n)
	}
	return fmt.Sprintf("%s,%03d", thousands(n/1000), n%1000)
}

func ms(v float64) time.Time { return time.UnixMilli(int64(v)).UTC() }

// mostErrorsSession is the seeded session with the most errors.
func mostErrorsSession(ev []schema.Enriched) string {
	n := map[string]int{}
	best := ""
	for _, e := range where(ev, isError, func(e *schema.Enriched) bool { return e.SessionID != "" }) {
		n[e.SessionID]++
		if best == "" || n[e.SessionID] > n[best] || n[e.SessionID] == n[best] && e.SessionID < best {
			best = e.SessionID
		}
	}
	return best
}
