package dashboards

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sora3web/telemetry/schema"
)

// TestBundleFresh rebuilds web/ with esbuild and fails when the committed
// web/dist differs: run `make dashboards-build` and commit web/dist.
func TestBundleFresh(t *testing.T) {
	nodeModules(t)
	out := t.TempDir()
	if b, err := run("web", 2*time.Minute, nil, "node", "build.mjs", "--outdir", out); err != nil {
		t.Fatalf("node build.mjs: %v\n%s", err, b)
	}
	for _, f := range []struct {
		name     string
		embedded []byte
	}{{"dashboard.js", BundleJS()}, {"dashboard.css", BundleCSS()}} {
		fresh, err := os.ReadFile(filepath.Join(out, f.name))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(fresh, f.embedded) {
			t.Errorf("the committed dashboards/web/dist/%s (%d bytes) is stale: a fresh build is %d bytes; run `make dashboards-build` and commit it", f.name, len(f.embedded), len(fresh))
		}
	}
}

func newTestServer(t *testing.T) *httptest.Server {
	t.Helper()
	conn, _ := seed(t)
	mux := http.NewServeMux()
	h := Handler(Config{Database: testDB}, conn)
	mux.Handle("GET /dashboard", h)
	mux.Handle("GET /dashboard/", h)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

func get(t *testing.T, u string) (*http.Response, []byte) {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	_, _ = b.ReadFrom(resp.Body)
	return resp, b.Bytes()
}

func TestHandlerRoutes(t *testing.T) {
	srv := newTestServer(t)
	tests := []struct {
		path, ctype string
		status      int
		contains    string
	}{
		{"/dashboard/", "text/html", 200, `<script src="assets/dashboard.js">`},
		{"/dashboard/assets/dashboard.js", "text/javascript", 200, "__dashboard"},
		{"/dashboard/assets/dashboard.css", "text/css", 200, "svg.chart"},
		{"/dashboard/errors", "text/html", 200, `data-page="errors"`},
		{"/dashboard/pipeline", "text/html", 200, `data-page="pipeline"`},
		{"/dashboard/api/errors/groups?from=2026-03-02&to=2026-03-30", "application/json", 200, `"sparkline"`},
		{"/dashboard/api/panels", "application/json", 200, `"id":"product-1"`},
		{"/dashboard/api/panels/nope", "application/json", 404, "no panel"},
		{"/dashboard/api/panels/explorer-3", "application/json", 404, "no panel"}, // the explorer's identifiers: /dashboard/errors only
		{"/dashboard/api/panels/product-1?from=yesterday", "application/json", 400, "from"},
		{"/dashboard/api/panels/product-1?from=2026-03-10&to=2026-03-01", "application/json", 400, "before"},
		{"/dashboard/api/panels/product-1?from=2020-01-01&to=2026-03-01", "application/json", 400, "range"},
		{"/dashboard/api/panels/product-1?plan=enterprise", "application/json", 400, "plan"},
		{"/dashboard/api/panels/product-1?quality=8k", "application/json", 400, "quality"},
		{"/dashboard/api/panels/product-1?browser=" + url.QueryEscape(`x') OR 1=1 --`), "application/json", 400, "browser"},
		{"/dashboard/api/panels/product-1?from=2026-03-02&to=2026-03-30&plan=pro", "application/json", 200, `"series"`},
		{"/dashboard/api/panels/product-1?group=" + url.QueryEscape("org\x00"), "application/json", 400, "group"},
		{"/dashboard/api/panels/product-1?group=" + strings.Repeat("g", 257), "application/json", 400, "group"},
		{"/dashboard/api/variables/group", "application/json", 200, `"values":["` + seedGroupA + `","` + seedGroupB + `"]`},
		{"/dashboard/api/variables/session", "application/json", 404, "no query variable"},
	}
	for _, tc := range tests {
		t.Run(tc.path, func(t *testing.T) {
			resp, body := get(t, srv.URL+tc.path)
			if resp.StatusCode != tc.status || !strings.HasPrefix(resp.Header.Get("Content-Type"), tc.ctype) || !bytes.Contains(body, []byte(tc.contains)) {
				t.Fatalf("GET %s: %d %s\n%.300s\nwant %d %s containing %q", tc.path, resp.StatusCode, resp.Header.Get("Content-Type"), body, tc.status, tc.ctype, tc.contains)
			}
		})
	}
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Get(srv.URL + "/dashboard")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMovedPermanently || resp.Header.Get("Location") != "/dashboard/" {
		t.Fatalf("GET /dashboard: %d -> %q", resp.StatusCode, resp.Header.Get("Location"))
	}
}

// TestAPIAnswersLikeGrafana checks that the API serves every built-in panel
// with the answer the seed implies for the Grafana panel: the same SQL.
func TestAPIAnswersLikeGrafana(t *testing.T) {
	srv := newTestServer(t)
	_, ev := seed(t)
	panels, err := BuiltinPanels()
	if err != nil {
		t.Fatal(err)
	}
	if len(panels) < 20 {
		t.Fatalf("%d built-in panels", len(panels))
	}
	base := scenario{name: "api", from: seedFrom.Add(3 * 24 * time.Hour), to: seedTo.Add(-2 * 24 * time.Hour),
		plans: []string{"free"}, qualities: []string{"fast", "standard"}, browser: []string{"Chrome", "Firefox"}}
	base.interval = DefaultInterval(base.from, base.to)
	for _, sc := range []scenario{base, base.grouped(ev, seedGroupB)} {
		q := url.Values{"from": {sc.from.Format(time.RFC3339)}, "to": {sc.to.Format(time.RFC3339)},
			"plan": {"free"}, "quality": {"fast,standard"}, "browser": {"Chrome", "Firefox"}, "group": sc.groups}
		for _, p := range panels {
			apiPanel(t, srv.URL, sc, q, p, ev)
		}
	}
}

// apiPanel checks one panel of the built-in API against the seed in sc,
// queried with q.
func apiPanel(t *testing.T, base string, sc scenario, q url.Values, p PanelInfo, ev []schema.Enriched) {
	t.Helper()
	t.Run(sc.name+"/"+p.ID, func(t *testing.T) {
		resp, body := get(t, base+"/dashboard/api/panels/"+p.ID+"?"+q.Encode())
		if resp.StatusCode != 200 {
			t.Fatalf("%d %s", resp.StatusCode, body)
		}
		var d struct {
			ID      string   `json:"id"`
			Columns []Column `json:"columns"`
			Rows    [][]any  `json:"rows"`
		}
		if err := json.Unmarshal(body, &d); err != nil {
			t.Fatal(err)
		}
		exp := expected[p.ID](sc, ev)
		if len(exp.rows) == 0 {
			t.Fatal("the seed implies no rows: the test would prove nothing")
		}
		// JSON carries times as RFC 3339 strings.
		for _, r := range d.Rows {
			for i, v := range r {
				if s, ok := v.(string); ok && strings.HasPrefix(d.Columns[i].Type, "Date") {
					r[i], _ = time.Parse(time.RFC3339, s)
				}
			}
		}
		compare(t, &Result{Columns: d.Columns, Rows: d.Rows}, exp, "")
	})
}
