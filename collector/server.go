// Package collector owns ingest: the HTTP endpoints clients send events to,
// decoding, validation, enrichment and publishing. An event counts as
// accepted when the collector has answered 2xx for it, and it answers 2xx
// only after the bus.Publisher made every accepted event of the request
// durable. The package must not know how events are stored downstream.
package collector

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
	"golang.org/x/net/netutil"

	"github.com/sora3web/telemetry/bus"
	"github.com/sora3web/telemetry/internal/audit"
	"github.com/sora3web/telemetry/schema"
	"github.com/sora3web/telemetry/transform"
)

// maxReportedErrors bounds the rejections listed in one response.
const maxReportedErrors = 100

// ErrUnauthorized means the request carried no known write key.
var ErrUnauthorized = errors.New("missing or unknown write key")

// Response is the JSON body of every ingest answer.
type Response struct {
	// Accepted counts events made durable (or, for dropped, deliberately
	// not stored).
	Accepted int `json:"accepted"`
	// Rejected counts events refused; Errors says why.
	Rejected int `json:"rejected"`
	// Dropped counts accepted events that were not stored because the
	// policy forbids it (users under 13).
	Dropped int `json:"dropped,omitempty"`
	// Errors lists rejections, at most 100.
	Errors []Rejection `json:"errors,omitempty"`
	// Error explains a failure of the whole request.
	Error string `json:"error,omitempty"`
	// Success is set on Segment's routes only, as Segment's API answers:
	// true when the request was accepted (2xx), false otherwise.
	Success *bool `json:"success,omitempty"`
}

// Rejection explains why one event was refused.
type Rejection struct {
	// Index is the event's position in the request, from 0.
	Index int `json:"index"`
	// EventID is the event's id when it could be read.
	EventID string `json:"event_id,omitempty"`
	// Field is the JSON path of the offending field.
	Field string `json:"field"`
	// Rule is the rule the field broke.
	Rule string `json:"rule"`
}

// Server is the ingest HTTP server.
type Server struct {
	cfg     Config
	log     *slog.Logger
	pub     bus.Publisher
	enr     *enricher
	keys    map[string]string // write key -> source
	trusted []netip.Prefix
	exempt  []netip.Prefix
	mux     *http.ServeMux
	m       *metrics
	now     func() time.Time

	keyLimits *limiterSet
	ipLimits  *limiterSet
	inflight  *inflight // bounds the requests and body bytes handled at once

	// aud, when set (WithAudit), counts what each request did
	// (internal/audit) and makes the counts durable before a 2xx.
	aud           *auditor
	auditInterval time.Duration
	stopAudit     context.CancelFunc

	srv      *http.Server
	ln       net.Listener
	wg       sync.WaitGroup
	draining atomic.Bool
}

// New builds a server publishing through pub, changed by opts. It does no I/O.
func New(cfg Config, pub bus.Publisher, log *slog.Logger, opts ...Option) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	ua, err := transform.NewUAParser(cfg.UACacheSize)
	if err != nil {
		return nil, fmt.Errorf("loading user-agent regexes: %w", err)
	}
	m, err := newMetrics()
	if err != nil {
		return nil, err
	}
	ua.SetObserver(m.uaLookup)
	ua.SetBudget(cfg.UAParseBudget)
	scrub, err := transform.NewScrubber(cfg.Scrub)
	if err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, log: log, pub: pub, enr: &enricher{ua: ua, scrub: scrub}, keys: map[string]string{}, mux: http.NewServeMux(), m: m, now: time.Now,
		keyLimits: newLimiterSet(cfg.RateLimitPerKey, 1024),
		ipLimits:  newLimiterSet(cfg.RateLimitPerIP, 100_000),
		inflight:  &inflight{maxN: cfg.MaxInFlight, maxBytes: cfg.MaxInFlightBytes},
	}
	for _, k := range cfg.WriteKeys {
		s.keys[k.Key] = k.Source
	}
	for _, p := range cfg.TrustedProxies {
		pfx, _ := parsePrefix(p)
		s.trusted = append(s.trusted, pfx)
	}
	for _, p := range cfg.RateLimitExempt {
		pfx, _ := parsePrefix(p)
		s.exempt = append(s.exempt, pfx)
	}
	for _, o := range opts {
		o(s)
	}
	s.route("POST /v1/events", s.native(false))
	s.route("POST /v1/beacon", s.native(true))
	for _, kind := range SegmentCalls {
		s.route("POST /v1/"+kind, s.segment(kind))
		s.route("POST /v1/"+kind[:1], s.segment(kind))
	}
	for _, p := range SegmentBatchPaths {
		s.route("POST /v1/"+p, s.segment(""))
	}
	const settings = "/v1/projects/{writeKey}/settings"
	s.mux.Handle("GET "+settings, s.m.instrument(settings, s.cors(s.segmentSettings)))
	s.mux.HandleFunc("GET /healthz", s.healthz)
	s.mux.HandleFunc("GET /readyz", s.readyz)
	return s, nil
}

// Mount adds a handler (metrics, dashboards) before Start.
func (s *Server) Mount(pattern string, h http.Handler) { s.mux.Handle(pattern, h) }

// Handler returns the server's routes, for tests and embedding.
func (s *Server) Handler() http.Handler { return s.mux }

// route registers an ingest handler with CORS, preflight and metrics.
func (s *Server) route(pattern string, h http.HandlerFunc) {
	path := pattern[strings.IndexByte(pattern, ' ')+1:]
	s.mux.Handle(pattern, s.m.instrument(path, s.cors(h)))
	s.mux.Handle("OPTIONS "+path, s.cors(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) }))
}

// cors adds CORS headers for allowed origins and refuses preflights from
// others.
func (s *Server) cors(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		origin := r.Header.Get("Origin")
		if origin != "" && s.originAllowed(origin) {
			h := w.Header()
			h.Set("Access-Control-Allow-Origin", origin)
			h.Add("Vary", "Origin")
			h.Set("Access-Control-Expose-Headers", "Retry-After")
			if r.Method == http.MethodOptions {
				h.Set("Access-Control-Allow-Methods", "POST, OPTIONS")
				h.Set("Access-Control-Allow-Headers", "Content-Type, Content-Encoding, Authorization, X-Write-Key, X-Retry-Count")
				h.Set("Access-Control-Max-Age", "600")
			}
		} else if r.Method == http.MethodOptions {
			http.Error(w, "origin not allowed", http.StatusForbidden)
			return
		}
		next(w, r)
	}
}

func (s *Server) originAllowed(origin string) bool {
	return slices.Contains(s.cfg.CORSOrigins, "*") || slices.Contains(s.cfg.CORSOrigins, origin)
}

// writeKey finds the key in Authorization (Bearer, or Basic with the key
// as user name), X-Write-Key, or the writeKey query parameter (beacons
// cannot set headers).
func writeKey(r *http.Request) string {
	auth := r.Header.Get("Authorization")
	switch {
	case strings.HasPrefix(auth, "Bearer "):
		return strings.TrimSpace(auth[len("Bearer "):])
	case strings.HasPrefix(auth, "Basic "):
		raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(auth[len("Basic "):]))
		if err != nil {
			return ""
		}
		user, _, _ := strings.Cut(string(raw), ":")
		return user
	}
	if k := r.Header.Get("X-Write-Key"); k != "" {
		return k
	}
	q := r.URL.Query()
	if k := q.Get("writeKey"); k != "" {
		return k
	}
	return q.Get("write_key")
}

// mediaOK checks the Content-Type against the endpoint's accepted types
// (text/plain too when textPlain: beacons, Segment's analytics.js) and
// reports whether the body is NDJSON.
func mediaOK(r *http.Request, textPlain bool) (ndjson bool, err error) {
	ct := r.Header.Get("Content-Type")
	mt, _, perr := mime.ParseMediaType(ct)
	if ct == "" || perr != nil {
		mt = ""
	}
	switch mt {
	case "application/json":
		return false, nil
	case "application/x-ndjson", "application/jsonl", "application/json-seq":
		return true, nil
	case "text/plain":
		if textPlain {
			return false, nil
		}
	}
	accepted := "application/json, application/x-ndjson"
	if textPlain {
		accepted += ", text/plain"
	}
	return false, fmt.Errorf("%w: Content-Type %q (accepted: %s)", ErrUnsupportedMedia, ct, accepted)
}

// native serves /v1/events and /v1/beacon.
func (s *Server) native(beacon bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ndjson, err := mediaOK(r, beacon)
		if err != nil {
			s.fail(w, r, http.StatusUnsupportedMediaType, err)
			return
		}
		s.ingest(w, r, ndjson, nil, func(raw rawEvent, _ time.Time, ev *schema.Event) *schema.FieldError {
			return decodeInto(raw, ev)
		})
	}
}

// decodeFunc maps one raw event of the request onto ev, which is zero on
// entry.
type decodeFunc func(raw rawEvent, receivedAt time.Time, ev *schema.Event) *schema.FieldError

// bodyFunc reads what the whole body says before its events are decoded
// (Segment's envelope) and returns the write key it carries, if any. An
// error fails the request with 400.
type bodyFunc func(body []byte) (writeKey string, err error)

// valueRoom is the bytes a published value is expected to need beyond
// the event as sent (received_at, timestamp, source, ip, device), to size
// a request's buffer of values once.
const valueRoom = 320

// ingest runs the shared pipeline: auth, body, split, per-event check,
// decode, validate, enrich, publish, answer. onBody, when set, reads the
// body first; the write key it finds counts when the headers and the
// query carry none.
func (s *Server) ingest(w http.ResponseWriter, r *http.Request, ndjson bool, onBody bodyFunc, decode decodeFunc) {
	ri := requestInfo{receivedAt: s.now().UTC(), userAgent: r.UserAgent()}
	// A body is charged by its Content-Length, or as the largest allowed
	// when its length is unknown (chunked); readBody never reads more.
	size := int64(s.cfg.MaxRequestBytes)
	if r.ContentLength >= 0 && r.ContentLength < size {
		size = r.ContentLength
	}
	if !s.inflight.acquire(size) {
		s.m.shed(r.Context(), "inflight")
		s.unavailableAfter(w, r, time.Second, ErrOverloaded)
		return
	}
	defer s.inflight.release(size)
	var body []byte
	var bodyKey string // the write key onBody found
	read := false
	readOnce := func() bool {
		if read {
			return true
		}
		read = true
		limit := s.cfg.MaxRequestBytes
		if isSegmentRoute(r) {
			limit = min(limit, SegmentMaxBatchBytes)
		}
		var err error
		if body, err = readBody(r, limit); err != nil {
			s.fail(w, r, statusOf(err), err)
			return false
		}
		if onBody != nil {
			if bodyKey, err = onBody(body); err != nil {
				s.fail(w, r, statusOf(err), err)
				return false
			}
		}
		return true
	}
	key := writeKey(r)
	if key == "" && onBody != nil {
		if !readOnce() {
			return
		}
		key = bodyKey
	}
	source, ok := s.keys[key]
	if !ok {
		s.fail(w, r, http.StatusUnauthorized, ErrUnauthorized)
		return
	}
	ri.source = source
	if s.draining.Load() {
		s.unavailable(w, r, errors.New("shutting down"))
		return
	}
	ip := transform.ClientIP(r, s.trusted)
	if ok, wait := s.keyLimits.allow(key, ri.receivedAt); !ok {
		s.m.shed(r.Context(), "rate_limit_key")
		s.tooMany(w, r, wait, "write key "+source)
		return
	}
	if ok, wait := s.ipLimits.allow(ip.String(), ri.receivedAt); !ok && !transform.InPrefixes(ip, s.exempt) {
		s.m.shed(r.Context(), "rate_limit_ip")
		s.tooMany(w, r, wait, "client address")
		return
	}
	if !readOnce() {
		return
	}
	raws, err := splitBatch(body, ndjson, s.cfg.MaxBatchEvents)
	if err != nil {
		s.fail(w, r, statusOf(err), err)
		return
	}
	ri.ip = transform.AnonymizeIP(ip)
	ri.optOut = (s.cfg.HonorDNT && r.Header.Get("DNT") == "1") || (s.cfg.HonorGPC && r.Header.Get("Sec-GPC") == "1")

	var resp Response
	// One slot to spare: the audit record of the request's group is
	// appended in place (auditor.commit).
	msgs := make([]bus.Message, 0, len(raws)+1)
	// buf holds the keys and values of msgs, one after the other. It is
	// never reused: the publisher may hold them as long as it likes. When
	// it grows, earlier messages keep the old array, which is not written
	// again.
	buf := make([]byte, 0, len(body)+len(raws)*valueRoom)
	var ev schema.Event
	headers := traceHeaders(r.Context())
	var rejectedBy map[string]uint64 // the first field of each rejected event, for the audit
	reject := func(i int, id string, fes ...schema.FieldError) {
		resp.Rejected++
		if s.aud != nil && len(fes) > 0 {
			if rejectedBy == nil {
				rejectedBy = map[string]uint64{}
			}
			rejectedBy[fes[0].Field]++
		}
		for _, fe := range fes {
			if len(resp.Errors) < maxReportedErrors {
				resp.Errors = append(resp.Errors, Rejection{Index: i, EventID: id, Field: fe.Field, Rule: fe.Rule})
			}
			s.m.rejected(r.Context(), fe.Field)
		}
	}
	for i, raw := range raws {
		if fe := checkRaw(raw, s.cfg.MaxEventBytes, s.cfg.MaxDepth); fe != nil {
			reject(i, "", *fe)
			continue
		}
		ev = schema.Event{}
		if fe := decode(raw, ri.receivedAt, &ev); fe != nil {
			reject(i, "", *fe)
			continue
		}
		if fes := schema.Validate(&ev, s.cfg.Limits); fes != nil {
			reject(i, ev.EventID, fes...)
			continue
		}
		out, keep := s.enr.enrich(&ev, &ri)
		if !keep {
			resp.Dropped++
			s.m.dropped(r.Context(), "under_13")
			continue
		}
		start := len(buf)
		if buf, err = appendEnriched(buf, &out); err != nil {
			reject(i, ev.EventID, schema.FieldError{Field: "event", Rule: "must be encodable: " + err.Error()})
			continue
		}
		val := buf[start:len(buf):len(buf)]
		var key []byte
		buf, key = appendPartitionKey(buf, &out)
		msgs = append(msgs, bus.Message{Key: key, Value: val, Headers: headers})
	}
	// The counts besides the accepted events, which the auditor counts per
	// partition (auditor.commit).
	counts := func(t *audit.Tally) {
		at := ri.receivedAt
		t.Add(at, ri.source, audit.Dropped, "under_13", uint64(resp.Dropped))
		for field, n := range rejectedBy {
			t.Add(at, ri.source, audit.Rejected, field, n)
		}
	}
	if len(msgs) > 0 {
		ctx, cancel := context.WithTimeout(r.Context(), s.cfg.PublishTimeout)
		start := time.Now()
		if s.aud != nil {
			err = s.aud.commit(ctx, msgs, ri.receivedAt, ri.source, counts)
		} else {
			err = s.publish(ctx, msgs, nil)
		}
		s.m.published(r.Context(), time.Since(start), err)
		cancel()
		if err != nil {
			s.log.WarnContext(r.Context(), "publish failed; answering 503", "events", len(msgs), "err", err)
			s.unavailable(w, r, errors.New("events could not be stored in time; retry the whole request"))
			return
		}
	} else if s.aud != nil {
		s.aud.note(counts)
	}
	resp.Accepted = len(msgs) + resp.Dropped
	if span := trace.SpanFromContext(r.Context()); span.IsRecording() { // unsampled: skip building attributes
		span.SetAttributes(attribute.Int("telemetry.events.accepted", resp.Accepted),
			attribute.Int("telemetry.events.rejected", resp.Rejected), attribute.Int("telemetry.events.dropped", resp.Dropped))
	}
	s.m.accepted(r.Context(), len(msgs))
	status := http.StatusOK
	switch {
	case resp.Rejected > 0 && resp.Accepted > 0:
		status = http.StatusMultiStatus
	case resp.Rejected > 0:
		status = http.StatusBadRequest
	}
	s.answer(w, r, status, &resp)
}

// appendPartitionKey appends e's partition key to buf and returns it as a
// slice of buf (capped, so appending to it cannot overwrite what follows):
// user_id, else anonymous_id, else (an opted-out subject's event, its
// identifiers stripped) event_id. Never nil: a resent copy must
// land in its original's partition, whose consumer drops it by event_id
// (its dedup window is per partition); with no key kafka-go spreads
// messages round-robin, and with several consumer processes a copy was
// stored twice (make chaos-cluster, consumer churn).
func appendPartitionKey(buf []byte, e *schema.Enriched) ([]byte, []byte) {
	id := e.UserID
	if id == "" {
		id = e.AnonymousID
	}
	if id == "" {
		id = e.EventID
	}
	start := len(buf)
	buf = append(buf, id...)
	return buf, buf[start:len(buf):len(buf)]
}

func statusOf(err error) int {
	switch {
	case errors.Is(err, ErrTooLarge):
		return http.StatusRequestEntityTooLarge
	case errors.Is(err, ErrUnsupportedMedia):
		return http.StatusUnsupportedMediaType
	case errors.Is(err, ErrUnauthorized):
		return http.StatusUnauthorized
	default:
		return http.StatusBadRequest
	}
}

// answer writes resp with status; on Segment's routes it adds Segment's
// "success" field, and a request over the limits is a 400, as Segment's
// API answers it.
func (s *Server) answer(w http.ResponseWriter, r *http.Request, status int, resp *Response) {
	if isSegmentRoute(r) {
		ok := status < 300
		resp.Success = &ok
		if status == http.StatusRequestEntityTooLarge {
			status = http.StatusBadRequest
		}
	}
	writeJSON(w, status, resp)
}

func (s *Server) fail(w http.ResponseWriter, r *http.Request, status int, err error) {
	s.refused(status)
	s.answer(w, r, status, &Response{Error: err.Error()})
}

func (s *Server) unavailable(w http.ResponseWriter, r *http.Request, err error) {
	s.unavailableAfter(w, r, s.cfg.RetryAfter, err)
}

func (s *Server) unavailableAfter(w http.ResponseWriter, r *http.Request, after time.Duration, err error) {
	s.refused(http.StatusServiceUnavailable)
	w.Header().Set("Retry-After", retryAfter(after))
	s.answer(w, r, http.StatusServiceUnavailable, &Response{Error: err.Error()})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func (s *Server) healthz(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// readyz answers 200 only when events can be durably accepted.
func (s *Server) readyz(w http.ResponseWriter, _ *http.Request) {
	if s.draining.Load() {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "draining"})
		return
	}
	if err := s.pub.Ready(); err != nil {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "not ready", "reason": err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}

// Start listens on cfg.Listen and serves until Shutdown.
func (s *Server) Start(ctx context.Context) error {
	ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", s.cfg.Listen)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", s.cfg.Listen, err)
	}
	s.ln = ln
	ln = netutil.LimitListener(ln, s.cfg.MaxConnections)
	s.srv = &http.Server{
		Handler:           s.mux,
		ReadHeaderTimeout: s.cfg.ReadHeaderTimeout,
		ReadTimeout:       s.cfg.ReadTimeout,
		WriteTimeout:      s.cfg.ReadTimeout + s.cfg.PublishTimeout,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    s.cfg.MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		serve := func() error { return s.srv.Serve(ln) }
		if s.cfg.TLSCertFile != "" {
			serve = func() error { return s.srv.ServeTLS(ln, s.cfg.TLSCertFile, s.cfg.TLSKeyFile) }
		}
		if err := serve(); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("ingest server stopped", "err", err)
		}
	}()
	if s.aud != nil {
		actx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		s.stopAudit = cancel
		s.wg.Add(1)
		go func() { defer s.wg.Done(); s.aud.run(actx, s.auditInterval) }()
	}
	s.log.Info("ingest listening", "addr", ln.Addr().String(), "tls", s.cfg.TLSCertFile != "", "audit", s.aud != nil)
	return nil
}

// Addr is the bound address, after Start.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Shutdown stops accepting, marks the server not ready and drains in-flight
// requests (each finishes its publish) within ctx and ingest.shutdown_timeout,
// whichever ends first. Requests still running then are left to finish or
// fail on their own: their answer, not the drain, says what was accepted.
func (s *Server) Shutdown(ctx context.Context) error {
	s.draining.Store(true)
	if s.srv == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.ShutdownTimeout)
	defer cancel()
	err := s.srv.Shutdown(ctx)
	if s.stopAudit != nil {
		s.stopAudit() // after the drain: its last flush has every count
	}
	s.wg.Wait()
	if err != nil {
		return fmt.Errorf("draining ingest requests: %w", err)
	}
	return nil
}
