package pipeline

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
)

// dashboardPaths are every kind of path the dashboards serve.
var dashboardPaths = []string{
	"/dashboard", "/dashboard/", "/dashboard/assets/dashboard.js", "/dashboard/api/panels",
	"/dashboard/api/panels/product-1", "/dashboard/errors", "/dashboard/api/errors/groups",
	"/dashboard/pipeline", "/dashboard/api/pipeline",
}

func status(t *testing.T, c *http.Client, req *http.Request) (int, string) {
	t.Helper()
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestDashboardsOnlyOnTheirOwnListenerBehindTheStaffToken: ingest's public
// listener serves no dashboard path; the dashboards' listener refuses every
// path without the staff token (none, wrong, another scheme, the admin
// token), serves it with the token as a bearer, and a browser that signs
// in at /dashboard/login gets a cookie that works in its place.
func TestDashboardsOnlyOnTheirOwnListenerBehindTheStaffToken(t *testing.T) {
	cfg := allInOne(t)
	cfg.Dashboard.Token = "staff-token-under-test-0123456789abcdef"
	p := startPipeline(t, cfg)
	if p.DashboardAddr() == "" {
		t.Fatal("the dashboards do not run")
	}
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for _, path := range dashboardPaths {
		req, _ := http.NewRequest("GET", "http://"+p.IngestAddr()+path, nil)
		req.Header.Set("Authorization", "Bearer "+cfg.Dashboard.Token)
		if code, body := status(t, noRedirect, req); code != http.StatusNotFound {
			t.Errorf("ingest GET %s: %d, want 404 (%.100s)", path, code, body)
		}
		for _, auth := range []string{"", "Bearer wrong-token", "Basic " + cfg.Dashboard.Token, "Bearer " + cfg.Admin.Token, "Bearer " + cfg.Dashboard.Token + "x"} {
			req, _ := http.NewRequest("GET", "http://"+p.DashboardAddr()+path, nil)
			if auth != "" {
				req.Header.Set("Authorization", auth)
			}
			if code, body := status(t, noRedirect, req); code != http.StatusUnauthorized {
				t.Errorf("dashboard GET %s with %q: %d, want 401 (%.100s)", path, auth, code, body)
			}
		}
	}
	req, _ := http.NewRequest("GET", "http://"+p.DashboardAddr()+"/dashboard/api/panels", nil)
	req.Header.Set("Authorization", "Bearer "+cfg.Dashboard.Token)
	if code, body := status(t, noRedirect, req); code != http.StatusOK || !strings.Contains(body, `"product-1"`) {
		t.Fatalf("with the staff token: %d %.200s", code, body)
	}

	jar, _ := cookiejar.New(nil)
	browser := &http.Client{Jar: jar}
	login := func(token string) (int, string) {
		req, _ := http.NewRequest("POST", "http://"+p.DashboardAddr()+"/dashboard/login",
			strings.NewReader(url.Values{"token": {token}, "next": {"/dashboard/errors"}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		return status(t, browser, req)
	}
	if code, _ := login("wrong-token"); code != http.StatusUnauthorized {
		t.Fatalf("sign-in with a wrong token: %d", code)
	}
	if code, body := login(cfg.Dashboard.Token); code != http.StatusOK || !strings.Contains(body, "dashboard.js") {
		t.Fatalf("sign-in, then the explorer: %d %.200s", code, body)
	}
	req, _ = http.NewRequest("GET", "http://"+p.DashboardAddr()+"/dashboard/api/panels", nil)
	if code, _ := status(t, browser, req); code != http.StatusOK {
		t.Fatalf("with the session cookie: %d", code)
	}
	for _, c := range jar.Cookies(&url.URL{Scheme: "http", Host: p.DashboardAddr(), Path: "/dashboard/"}) {
		if strings.Contains(c.Value, cfg.Dashboard.Token) {
			t.Fatal("the cookie carries the token")
		}
	}
}

// TestPipelineRecordsItsMetricHistory: with a metric reader, the pipeline
// writes snapshots into pipeline_metrics every history.interval and a last
// one at shutdown, which the dashboards' pipeline page reads.
func TestPipelineRecordsItsMetricHistory(t *testing.T) {
	cfg := allInOne(t)
	cfg.History.Interval = time.Second
	reader := sdkmetric.NewManualReader()
	counter, err := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader)).Meter("test").Int64Counter("telemetry.ingest.events")
	if err != nil {
		t.Fatal(err)
	}
	counter.Add(context.Background(), 7, metric.WithAttributes(attribute.String("outcome", "accepted")))
	p, err := New(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	p.Metrics = reader
	if err := p.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		got := strings.TrimSpace(query(t, p, "SELECT count(), max(value) FROM telemetry.pipeline_metrics WHERE metric = 'telemetry.ingest.events' AND attrs = 'outcome=accepted'"))
		if n, _, _ := strings.Cut(got, "\t"); n != "0" && n != "1" && n != "" {
			if !strings.HasSuffix(got, "\t7") {
				t.Fatalf("recorded %q, want the counter's 7", got)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 20s pipeline_metrics holds %q, want two snapshots", got)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if err := p.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
}
