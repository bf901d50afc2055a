package privacy

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	"github.com/sora3web/telemetry/internal/testenv/chtest"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/sora3web/telemetry/collector"
	"github.com/sora3web/telemetry/internal/testenv"
	"github.com/sora3web/telemetry/sinks/consumer"
)

// The Registry is what ingest and the consumer are handed.
var (
	_ collector.OptOuts = (*Registry)(nil)
	_ consumer.Filter   = (*Registry)(nil)
)

func TestMain(m *testing.M) { os.Exit(testenv.RunWithClickHouse(m)) }

const testToken = "test-admin-token-0123456789abcdef-xyz"

// env is one test's migrated database and service.
type env struct {
	conn driver.Conn
	db   string
	svc  *Service
	logs *testenv.LogBuffer
}

func newEnv(t *testing.T) *env {
	t.Helper()
	conn, db := chtest.Migrated(t, "p")
	cfg := DefaultConfig()
	cfg.Enabled = false // tests use Handler; the pipeline tests cover the listener
	cfg.Token = testToken
	logs := &testenv.LogBuffer{}
	svc, err := New(cfg, conn, Tables{Database: db}, slog.New(slog.NewJSONHandler(logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { svc.Shutdown(context.Background()) })
	return &env{conn: conn, db: db, svc: svc, logs: logs}
}

// seed inserts n events of a subject; every third is a client_error (which
// the errors materialized view copies into errors).
func (e *env) seed(t *testing.T, userID, anonymousID string, n int) {
	t.Helper()
	for i := 0; i < n; i++ {
		typ, code := "generation_requested", ""
		if i%3 == 0 {
			typ, code = "client_error", "E_TEST"
		}
		q := fmt.Sprintf(`INSERT INTO %s.events (event_id, type, timestamp, occurred_at, sent_at, received_at, user_id, anonymous_id, plan, prompt, error_code, ip)
			VALUES (generateUUIDv4(), ?, now64(3), now64(3), now64(3), now64(3), ?, ?, 'pro', 'a fox in the snow', ?, '198.51.100.0')`, e.db)
		if err := e.conn.Exec(context.Background(), q, typ, userID, anonymousID, code); err != nil {
			t.Fatal(err)
		}
	}
}

// seedEvent inserts one event of type typ (alias, group) with its links.
func (e *env) seedEvent(t *testing.T, typ, userID, anonymousID, previousID, groupID string) {
	t.Helper()
	q := fmt.Sprintf(`INSERT INTO %s.events (event_id, type, timestamp, occurred_at, sent_at, received_at, user_id, anonymous_id, previous_id, group_id, plan)
		VALUES (generateUUIDv4(), ?, now64(3), now64(3), now64(3), now64(3), ?, ?, ?, ?, 'pro')`, e.db)
	if err := e.conn.Exec(context.Background(), q, typ, userID, anonymousID, previousID, groupID); err != nil {
		t.Fatal(err)
	}
}

// call makes one admin request through the handler.
func (e *env) call(t *testing.T, method, target, token, body string, hdr ...string) *httptest.ResponseRecorder {
	t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req := httptest.NewRequest(method, target, r)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	w := httptest.NewRecorder()
	e.svc.Handler().ServeHTTP(w, req)
	return w
}

func (e *env) mustOK(t *testing.T, w *httptest.ResponseRecorder) []byte {
	t.Helper()
	if w.Code != http.StatusOK {
		t.Fatalf("status %d: %s", w.Code, w.Body.String())
	}
	return w.Body.Bytes()
}
