package pipeline

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sora3web/telemetry/internal/config"
	"github.com/sora3web/telemetry/internal/testenv"
	"github.com/sora3web/telemetry/sdk"
)

// rawResponse is a response read off the wire, unparsed.
type rawResponse struct {
	status int
	head   string // status line and headers
	body   string
	loc    string
}

// raw sends request bytes as they are (no client-side cleaning or
// validation) and reads one response.
func raw(t *testing.T, addr, request string) rawResponse {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, request); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("reading the answer to %q: %v", request[:min(len(request), 80)], err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var head strings.Builder
	fmt.Fprintf(&head, "%s\n", resp.Status)
	resp.Header.Write(&head)
	return rawResponse{status: resp.StatusCode, head: head.String(), body: string(b), loc: resp.Header.Get("Location")}
}

// TestListenersResistInjectionTraversalAndLeaks runs the all-in-one
// pipeline with every handler that serves files (the SDK, the dashboard)
// and checks, on the ingest, admin and dashboard listeners: no secret or raw IP in any
// log line, CR/LF never splits a response nor forges a log line, oversized
// headers get 431, and no path reads a file outside the embedded assets.
func TestListenersResistInjectionTraversalAndLeaks(t *testing.T) {
	const (
		adminToken  = "admin-token-under-test-0123456789abcdef"
		badWriteKey = "not-a-key-but-secret-0123456789"
		badToken    = "wrong-admin-token-secret-0123456789"
		subjectID   = "subject-raw-id-4242"
		clientIPv4  = "203.0.113.77"
		clientIPv6  = "2001:db8:1234:5678::9"
	)
	cfg := allInOne(t)
	cfg.Admin.Token = adminToken
	cfg.Ingest.TrustedProxies = []string{"127.0.0.0/8"}
	cfg.Serve.MetricsListen = "127.0.0.1:0"
	cfg.Log.Level = "debug"
	logs := &testenv.LogBuffer{}
	p, err := New(cfg, slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	if err != nil {
		t.Fatal(err)
	}
	p.Handlers["GET /v1/sdk.js"] = sdk.Handler() // as serve.go mounts it; the dashboards get their own listener from Start
	if err := p.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Shutdown(context.Background()) })
	ingest, admin := p.IngestAddr(), p.AdminAddr()

	t.Run("no secret or raw IP in any log line", func(t *testing.T) {
		now := time.Now().UTC().Format(time.RFC3339)
		event := fmt.Sprintf(`{"events":[{"event_id":"3f1c1f5e-2f55-4c55-9a54-3d0f6b1f0a11","type":"session_start","occurred_at":%q,"sent_at":%q,"anonymous_id":"a-1","user_id":%q,"plan":"free","consent":{"analytics":true}}]}`, now, now, subjectID)
		send := func(addr, method, path, auth, xff, body string) int {
			req, _ := http.NewRequest(method, "http://"+addr+path, strings.NewReader(body))
			if auth != "" {
				req.Header.Set("Authorization", auth)
			}
			req.Header.Set("X-Forwarded-For", xff)
			req.Header.Set("Content-Type", "application/json")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			return resp.StatusCode
		}
		codes := []int{
			send(ingest, "POST", "/v1/events", "Bearer "+config.DevWriteKey, clientIPv4, event),
			send(ingest, "POST", "/v1/events", "Bearer "+config.DevWriteKey, clientIPv6, event),
			send(ingest, "POST", "/v1/events", "Bearer "+badWriteKey, clientIPv4, event),
			send(ingest, "POST", "/v1/events?writeKey="+badWriteKey, "", clientIPv6, "{broken"),
			send(ingest, "POST", "/v1/events", "Bearer "+config.DevWriteKey, clientIPv4, "{broken"),
			send(admin, "GET", "/v1/privacy/status?user_id="+subjectID, "Bearer "+adminToken, clientIPv4, ""),
			send(admin, "POST", "/v1/privacy/opt-out", "Bearer "+adminToken, clientIPv6, `{"user_id":"`+subjectID+`"}`),
			send(admin, "GET", "/v1/privacy/export?user_id="+subjectID, "Bearer "+badToken, clientIPv4, ""),
			send(admin, "POST", "/v1/privacy/delete", "Bearer "+adminToken, clientIPv4, `{"user_id":"`+subjectID+`"}`),
		}
		want := []int{200, 200, 401, 401, 400, 200, 200, 401, 200}
		if fmt.Sprint(codes) != fmt.Sprint(want) {
			t.Fatalf("answers %v, want %v", codes, want)
		}
		all := logs.String()
		if strings.Count(all, `"audit":true`) < 4 {
			t.Fatalf("expected the admin calls in the log:\n%s", all)
		}
		for _, secret := range []string{config.DevWriteKey, badWriteKey, adminToken, badToken, subjectID, clientIPv4, clientIPv6, "2001:db8:1234:5678"} {
			if strings.Contains(all, secret) {
				t.Errorf("the log holds %q", secret)
			}
		}
	})

	t.Run("CR/LF never splits a response nor forges a log line", func(t *testing.T) {
		cases := []struct{ name, addr, request string }{
			{"encoded CRLF in an admin query", admin, "GET /v1/privacy/status?user_id=a%0d%0aX-Injected:%20yes HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + adminToken + "\r\nConnection: close\r\n\r\n"},
			{"encoded CRLF in the ingest write key", ingest, "POST /v1/events?writeKey=k%0d%0aX-Injected:%20yes HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}"},
			{"encoded CRLF in a JSON subject", admin, "POST /v1/privacy/opt-out HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + adminToken + "\r\nContent-Type: application/json\r\nContent-Length: 38\r\nConnection: close\r\n\r\n{\"user_id\":\"a\\r\\nX-Injected: yes\\n{}\"}"},
			{"bare CR in a header value", ingest, "POST /v1/events HTTP/1.1\r\nHost: x\r\nX-Write-Key: k\rX-Injected: yes\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"},
			{"folded header line", admin, "GET /v1/privacy/status?user_id=a HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + adminToken + "\r\n X-Injected: yes\r\nConnection: close\r\n\r\n"},
			{"CRLF in a Content-Type echoed in the error", ingest, "POST /v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + config.DevWriteKey + "\r\nContent-Type: text/x%0d%0aX-Injected: yes\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}"},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				r := raw(t, c.addr, c.request)
				if r.status < 400 || r.status >= 500 {
					t.Errorf("status %d, want a 4xx refusal", r.status)
				}
				if strings.Contains(strings.ToLower(r.head), "x-injected") {
					t.Fatalf("injected header in the answer:\n%s", r.head)
				}
			})
		}
		for i, line := range strings.Split(strings.TrimRight(logs.String(), "\n"), "\n") {
			var m map[string]any
			if err := json.Unmarshal([]byte(line), &m); err != nil || m["time"] == nil || m["msg"] == nil {
				t.Fatalf("log line %d is not one record of the logger (forged?): %q", i, line)
			}
		}
	})

	t.Run("oversized headers get 431", func(t *testing.T) {
		big := strings.Repeat("a", 64<<10)
		for _, addr := range []string{ingest, admin} {
			r := raw(t, addr, "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: "+big+"\r\nConnection: close\r\n\r\n")
			if r.status != http.StatusRequestHeaderFieldsTooLarge {
				t.Errorf("%s: status %d, want 431", addr, r.status)
			}
		}
	})

	t.Run("no path reads a file outside the embedded assets", func(t *testing.T) {
		root, err := filepath.Abs(filepath.Join("..", ".."))
		if err != nil {
			t.Fatal(err)
		}
		gomod, _ := os.ReadFile(filepath.Join(root, "go.mod"))
		readme, _ := os.ReadFile(filepath.Join(root, "README.md"))
		forbidden := []string{"root:x:0:0", string(gomod[:40]), string(readme[:40]), "package pipeline"}
		paths := []string{
			"/v1/sdk.js/../../etc/passwd", "/v1/sdk.js/..%2f..%2fetc%2fpasswd", "/v1/sdk.js%2f..%2f..%2fgo.mod",
			"/%2e%2e/%2e%2e/etc/passwd", "/v1/%2e%2e/%2e%2e/go.mod", "/v1/sdk.js/%2e%2e/%2e%2e/README.md",
			"/dashboard/../../go.mod", "/dashboard/..%2f..%2fgo.mod", "/dashboard/%2e%2e/%2e%2e/go.mod",
			"/dashboard/assets/../../../go.mod", "/dashboard/assets/..%2f..%2f..%2fgo.mod", "/dashboard/assets/%2e%2e%2f%2e%2e%2fgo.mod",
			"/dashboard/assets/..\\..\\go.mod", "/dashboard/assets/dashboard.js/../../../../etc/passwd",
			"/dashboard/api/panels/..%2f..%2f..%2fgo.mod", "/dashboard/api/panels/../../../etc/passwd",
			"//etc/passwd", "/v1/sdk.js%00.txt", "/dashboard/assets/dashboard.js%00", "/dashboard/internal/pipeline/pipeline_test.go",
		}
		assets := map[string]bool{string(sdk.Bundle): true}
		tokens := map[string]string{ingest: adminToken, admin: adminToken, p.DashboardAddr(): cfg.Dashboard.Token}
		for _, path := range paths {
			for _, addr := range []string{ingest, admin, p.DashboardAddr()} {
				target := path
				for hop := 0; hop < 3; hop++ {
					r := raw(t, addr, "GET "+target+" HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "+tokens[addr]+"\r\nConnection: close\r\n\r\n")
					for _, f := range forbidden {
						if strings.Contains(r.body, f) {
							t.Fatalf("%s%s served a file outside the assets (%q)", addr, path, f)
						}
					}
					if r.status == http.StatusOK && !assets[r.body] && !strings.HasPrefix(r.body, "<!doctype html>") && !strings.HasPrefix(r.body, "<!DOCTYPE html>") {
						t.Fatalf("%s%s: 200 with a body that is no embedded asset: %.200q", addr, target, r.body)
					}
					if r.status/100 != 3 {
						break
					}
					if !strings.HasPrefix(r.loc, "/") || strings.HasPrefix(r.loc, "//") {
						t.Fatalf("%s%s redirects off the host: %q", addr, target, r.loc)
					}
					target = r.loc
				}
			}
		}
	})
}
