package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	"github.com/sora3web/telemetry/internal/testenv/chtest"

	"github.com/sora3web/telemetry/internal/testenv"
)

func TestMain(m *testing.M) { os.Exit(testenv.RunWithClickHouse(m)) }

// run runs the telemetry command with args and returns stdout, stderr.
func run(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	cmd := newRootCmd()
	var out, errw bytes.Buffer
	cmd.SetArgs(append(args, "--config", os.DevNull))
	cmd.SetOut(&out)
	cmd.SetErr(&errw)
	err := cmd.ExecuteContext(context.Background())
	return out.String(), errw.String(), err
}

func TestPrivacyCorrectSendsTheCorrectionItWasGiven(t *testing.T) {
	var got struct {
		method, path, auth string
		body               map[string]string
	}
	status := http.StatusOK
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got.method, got.path, got.auth = r.Method, r.URL.Path, r.Header.Get("Authorization")
		b, _ := io.ReadAll(r.Body)
		got.body = nil
		_ = json.Unmarshal(b, &got.body)
		w.WriteHeader(status)
		fmt.Fprint(w, `{"rows":3}`)
	}))
	defer srv.Close()
	cases := []struct {
		args []string
		want map[string]string
	}{
		{[]string{"--user-id", "u1", "--plan", "pro", "--from", "2026-11-01T00:00:00Z"}, map[string]string{"user_id": "u1", "plan": "pro", "from": "2026-11-01T00:00:00Z"}},
		{[]string{"--anonymous-id", "a1", "--attach-to", "u1"}, map[string]string{"anonymous_id": "a1", "attach_to": "u1"}},
		{[]string{"--anonymous-id", "a1", "--detach-from", "u1"}, map[string]string{"anonymous_id": "a1", "detach_from": "u1"}},
	}
	for _, c := range cases {
		out, _, err := run(t, append([]string{"privacy", "correct", "--admin-url", srv.URL, "--token", "tok"}, c.args...)...)
		if err != nil || strings.TrimSpace(out) != `{"rows":3}` {
			t.Fatalf("%v: %q, %v", c.args, out, err)
		}
		if got.method != "POST" || got.path != "/v1/privacy/correct" || got.auth != "Bearer tok" || fmt.Sprint(got.body) != fmt.Sprint(c.want) {
			t.Fatalf("%v sent %s %s %q %v, want POST /v1/privacy/correct with %v", c.args, got.method, got.path, got.auth, got.body, c.want)
		}
	}
	status = http.StatusBadRequest
	if _, _, err := run(t, "privacy", "correct", "--admin-url", srv.URL, "--token", "tok", "--user-id", "u1", "--plan", "gold"); err == nil || !strings.Contains(err.Error(), "400") {
		t.Fatalf("a refused correction: %v, want the 400 in the error", err)
	}
}

func TestPromptsExportStreamsTheCorpusWithAProgressLine(t *testing.T) {
	addr := testenv.ClickHouse(t)
	conn, db := chtest.Migrated(t, "cli_export")
	ctx := context.Background()
	if err := conn.Exec(ctx, "INSERT INTO "+db+".prompt_corpus (day, prompt, outcome) SELECT today() - number, 'a fox in the snow', 'completed' FROM numbers(10)"); err != nil {
		t.Fatal(err)
	}
	base := []string{"prompts", "export", "--clickhouse-url", "http://" + addr, "--set", "clickhouse.database=" + db, "--set", "clickhouse.user=" + testenv.ClickHouseUser}
	out, progress, err := run(t, append(base, "--since", "3d", "--format", "jsonl")...)
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(out, "\n"); n != 3 || !strings.Contains(out, `"prompt":"a fox in the snow"`) {
		t.Fatalf("jsonl export of 3 days: %d lines:\n%s", n, out)
	}
	if !strings.Contains(progress, "exported 3/3 rows (100%)") {
		t.Fatalf("progress line %q", progress)
	}
	file := t.TempDir() + "/corpus.parquet"
	if _, _, err := run(t, append(base, "--since", "30d", "--format", "parquet", "-o", file)...); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(file)
	if err != nil || len(b) < 8 || string(b[:4]) != "PAR1" || string(b[len(b)-4:]) != "PAR1" {
		t.Fatalf("parquet file: %d bytes, %v", len(b), err)
	}
	if _, _, err := run(t, append(base, "--since", "soon")...); err == nil || !strings.Contains(err.Error(), "since") {
		t.Fatalf("--since soon: %v, want an error naming since", err)
	}
}
