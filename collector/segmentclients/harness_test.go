package segmentclients

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sora3web/telemetry/collector"
	"github.com/sora3web/telemetry/internal/config"
	"github.com/sora3web/telemetry/internal/pipeline"
)

// writeKey is the write key every client is configured with; its source
// is "segment".
const writeKey = "segment-clients-test-key-0001"

// wireMsg is one message as a client put it on the wire, with what its
// request said for all its messages.
type wireMsg struct {
	path, contentType, userAgent string
	msg                          map[string]any
	// envSentAt and envContext are a batch's sentAt and context.
	envSentAt  string
	envContext map[string]any
}

func (w wireMsg) str(path ...string) string {
	v, _ := dig(w.msg, path...).(string)
	return v
}

// dig follows keys through nested JSON objects.
func dig(v any, keys ...string) any {
	for _, k := range keys {
		m, _ := v.(map[string]any)
		v = m[k]
	}
	return v
}

// proxy stands in front of the collector, as a load balancer would. It
// records the messages of every request the collector accepted, and
// answers the next fail[path] requests of a path with 503 and Retry-After,
// as the collector does when it cannot store events in time, so a test
// sees the client retry.
type proxy struct {
	next http.Handler
	mu   sync.Mutex
	fail map[string]int
	// sent are the messages of accepted requests, by messageId, first
	// delivery kept; order keeps their order.
	sent  map[string]wireMsg
	order []string
	// failed are the messageIds of requests answered 503 here.
	failed   []string
	settings int // settings documents served
}

func newProxy(target string) (*proxy, error) {
	u, err := url.Parse(target)
	if err != nil {
		return nil, err
	}
	return &proxy{next: httputil.NewSingleHostReverseProxy(u), fail: map[string]int{}, sent: map[string]wireMsg{}}, nil
}

// reset forgets what was recorded, before the next client runs.
func (p *proxy) reset() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.fail, p.sent, p.order, p.failed, p.settings = map[string]int{}, map[string]wireMsg{}, nil, nil, 0
}

func (p *proxy) failNext(path string, n int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.fail[path] = n
}

// messages returns the distinct messages the collector accepted, in the
// order they first arrived.
func (p *proxy) messages() []wireMsg {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]wireMsg, 0, len(p.order))
	for _, id := range p.order {
		out = append(out, p.sent[id])
	}
	return out
}

// failedAndSettings returns the messageIds of the requests answered 503
// and the number of settings documents served.
func (p *proxy) failedAndSettings() ([]string, int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.failed), p.settings
}

// statusRecorder keeps the status the collector answered.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	s.status = code
	s.ResponseWriter.WriteHeader(code)
}

func (p *proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/__test/delivered" { // how many messages were accepted: the client scripts wait on it
		p.mu.Lock()
		n := len(p.order)
		p.mu.Unlock()
		fmt.Fprintf(w, `{"messages":%d}`, n)
		return
	}
	if r.Method != http.MethodPost {
		rec := &statusRecorder{ResponseWriter: w, status: 200}
		p.next.ServeHTTP(rec, r)
		if strings.HasSuffix(r.URL.Path, "/settings") && rec.status == 200 {
			p.mu.Lock()
			p.settings++
			p.mu.Unlock()
		}
		return
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	msgs := split(r, body)
	p.mu.Lock()
	fail := p.fail[r.URL.Path] > 0
	if fail {
		p.fail[r.URL.Path]--
		for _, m := range msgs {
			p.failed = append(p.failed, m.str("messageId"))
		}
	}
	p.mu.Unlock()
	if fail {
		if o := r.Header.Get("Origin"); o != "" {
			w.Header().Set("Access-Control-Allow-Origin", o)
			w.Header().Set("Access-Control-Expose-Headers", "Retry-After")
		}
		w.Header().Set("Retry-After", "1")
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusServiceUnavailable)
		io.WriteString(w, `{"accepted":0,"rejected":0,"error":"events could not be stored in time; retry the whole request","success":false}`)
		return
	}
	rec := &statusRecorder{ResponseWriter: w, status: 200}
	p.next.ServeHTTP(rec, r)
	if rec.status/100 != 2 {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, m := range msgs {
		id := m.str("messageId")
		if _, seen := p.sent[id]; !seen {
			p.sent[id] = m
			p.order = append(p.order, id)
		}
	}
}

// split reads a request's messages: the body itself, or its batch.
func split(r *http.Request, body []byte) []wireMsg {
	var doc map[string]any
	if json.Unmarshal(body, &doc) != nil {
		return nil
	}
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	base := wireMsg{path: r.URL.Path, contentType: ct, userAgent: r.UserAgent()}
	batch, ok := doc["batch"].([]any)
	if !ok {
		base.msg = doc
		return []wireMsg{base}
	}
	base.envSentAt, _ = doc["sentAt"].(string)
	base.envContext, _ = doc["context"].(map[string]any)
	var out []wireMsg
	for _, m := range batch {
		w := base
		w.msg, _ = m.(map[string]any)
		out = append(out, w)
	}
	return out
}

// harness is the pipeline (ingest, local log, consumer, embedded
// ClickHouse) behind the proxy, and the web server of the browser's test
// page, on another origin.
type harness struct {
	p     *pipeline.Pipeline
	proxy *proxy
	url   string // the proxy's base URL: what clients are pointed at
	pages string // the test page's origin
}

var shared struct {
	once sync.Once
	h    *harness
	err  error
	stop func()
}

// start returns the harness, started once for the package's tests and
// stopped by TestMain.
func start(t *testing.T) *harness {
	t.Helper()
	shared.once.Do(func() { shared.h, shared.stop, shared.err = newHarness() })
	if shared.err != nil {
		t.Fatalf("starting the pipeline: %v", shared.err)
	}
	shared.h.proxy.reset()
	return shared.h
}

func newHarness() (*harness, func(), error) {
	pages := httptest.NewServer(pageHandler())
	cfg := config.Default()
	dir, err := mkdirTemp()
	if err != nil {
		pages.Close()
		return nil, nil, err
	}
	cfg.DataDir = dir
	cfg.Ingest.Listen, cfg.Embedded.Listen, cfg.Admin.Listen, cfg.Dashboard.Listen = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
	cfg.Consumer.BatchInterval = 100 * time.Millisecond
	cfg.Ingest.WriteKeys = []collector.WriteKey{{Key: writeKey, Source: "segment"}}
	cfg.Ingest.CORSOrigins = []string{pages.URL}
	p, err := pipeline.New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		pages.Close()
		return nil, nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := p.Start(ctx); err != nil {
		pages.Close()
		return nil, nil, err
	}
	px, err := newProxy("http://" + p.IngestAddr())
	if err != nil {
		return nil, nil, err
	}
	front := httptest.NewServer(px)
	stop := func() {
		front.Close()
		pages.Close()
		sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = p.Shutdown(sctx)
		removeAll(dir)
	}
	return &harness{p: p, proxy: px, url: front.URL, pages: pages.URL}, stop, nil
}

// query runs sql on the embedded engine's HTTP interface and decodes its
// JSONEachRow rows into a slice of T.
func query[T any](t *testing.T, h *harness, sql string) []T {
	t.Helper()
	q := url.Values{"query": {sql + " FORMAT JSONEachRow"}, "output_format_json_quote_64bit_integers": {"0"}}
	resp, err := http.Get("http://" + h.p.ClickHouseConfig().Addr[0] + "/?" + q.Encode())
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("%s: %d %s", sql, resp.StatusCode, b)
	}
	var out []T
	dec := json.NewDecoder(bytes.NewReader(b))
	for dec.More() {
		var row T
		if err := dec.Decode(&row); err != nil {
			t.Fatalf("%s: row: %v", sql, err)
		}
		out = append(out, row)
	}
	return out
}

// quoted lists ids as a SQL tuple of strings.
func quoted(ids []string) string {
	q := make([]string, len(ids))
	for i, id := range ids {
		q[i] = "'" + strings.ReplaceAll(id, "'", "''") + "'"
	}
	return "(" + strings.Join(q, ",") + ")"
}

// callTypes counts the messages by call type, sorted, for messages.
func callTypes(msgs []wireMsg) string {
	var types []string
	for _, m := range msgs {
		types = append(types, m.str("type"))
	}
	slices.Sort(types)
	return strings.Join(types, " ")
}
