package privacy

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"
)

// Admin API routes, and the action each names in the audit log.
var routes = map[string]struct{ method, action string }{
	"/v1/privacy/export":  {http.MethodGet, "export"},
	"/v1/privacy/status":  {http.MethodGet, "status"},
	"/v1/privacy/delete":  {http.MethodPost, "delete"},
	"/v1/privacy/opt-out": {http.MethodPost, "opt_out"},
	"/v1/privacy/opt-in":  {http.MethodPost, "opt_in"},
	"/v1/privacy/correct": {http.MethodPost, "correct"},
}

// Service is the privacy admin: the Registry, its periodic reload, and the
// admin API on its own listener. Build it with New, run it with Start,
// stop it with Shutdown.
type Service struct {
	cfg    Config
	db     DB
	tables Tables
	log    *slog.Logger
	reg    *Registry
	token  [sha256.Size]byte

	// barrier, when set (SetBarrier), waits for the batches a consumer of
	// this process filtered before a tombstone was added.
	barrier atomic.Pointer[func(context.Context) error]

	// extra are the GET routes of other parts served behind the same token
	// (Handle).
	extra map[string]http.Handler

	mu      sync.Mutex
	started bool
	srv     *http.Server
	ln      net.Listener
	cancel  context.CancelFunc
	wg      sync.WaitGroup
}

// New validates cfg and tables and returns a service over db. It does no I/O.
func New(cfg Config, db DB, tables Tables, log *slog.Logger) (*Service, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if db == nil || log == nil {
		return nil, fmt.Errorf("%w: database and logger are required", ErrInvalidConfig)
	}
	reg, err := NewRegistry(db, tables)
	if err != nil {
		return nil, err
	}
	return &Service{cfg: cfg, db: db, tables: tables, log: log.With("component", "privacy"), reg: reg, token: sha256.Sum256([]byte(cfg.Token))}, nil
}

// SetBarrier tells the service how to wait for the consumer of this
// process: b returns once every batch it filtered before the call is
// inserted (consumer.Consumer.Barrier). With it, a deletion through this
// process waits for that batch before deleting rows, and a tombstone
// learned from the table (a deletion made through another process) is
// swept: once the consumer stores no more of the subject's old events, the
// rows it stored before it knew are deleted. Without a consumer in the
// process none is needed.
func (s *Service) SetBarrier(b func(context.Context) error) { s.barrier.Store(&b) }

// waitConsumer runs the barrier, if any.
func (s *Service) waitConsumer(ctx context.Context) error {
	if b := s.barrier.Load(); b != nil {
		return (*b)(ctx)
	}
	return nil
}

// Handle serves h on GET path of the admin API, behind its token and in
// its access log (action: the path), for reports of other parts (the
// completeness audit's /v1/audit). Call it before Start.
func (s *Service) Handle(path string, h http.Handler) {
	if s.extra == nil {
		s.extra = map[string]http.Handler{}
	}
	s.extra[path] = h
}

// Registry is the in-memory tombstone and opt-out sets, for ingest and the
// consumer.
func (s *Service) Registry() *Registry { return s.reg }

// Handler is the admin API, for tests and embedding.
func (s *Service) Handler() http.Handler { return http.HandlerFunc(s.serveHTTP) }

// Start loads the registries (failing when they cannot be read: deletions
// and opt-outs must be honoured from the first event), starts their
// periodic reload, and, when enabled, listens on cfg.Listen.
func (s *Service) Start(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started {
		return ErrStarted
	}
	if err := s.reg.Reload(ctx); err != nil {
		return err
	}
	if s.cfg.Enabled {
		ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", s.cfg.Listen)
		if err != nil {
			return fmt.Errorf("listening on %s: %w", s.cfg.Listen, err)
		}
		s.ln = ln
		s.srv = &http.Server{
			Handler:           s.Handler(),
			ReadHeaderTimeout: 5 * time.Second,
			ReadTimeout:       30 * time.Second,
			WriteTimeout:      s.cfg.RequestTimeout + 30*time.Second,
			IdleTimeout:       2 * time.Minute,
			MaxHeaderBytes:    maxHeaderBytes,
			ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				s.log.Error("admin server stopped", "err", err)
			}
		}()
	}
	rctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	s.wg.Add(1)
	go func() { defer s.wg.Done(); s.refresh(rctx) }()
	s.started = true
	tombs, opts := s.reg.Sizes()
	s.log.Info("privacy registry loaded", "tombstones", tombs, "opt_outs", opts, "admin", s.Addr())
	return nil
}

// refresh reloads the registries every RefreshInterval until ctx ends.
func (s *Service) refresh(ctx context.Context) {
	t := time.NewTicker(s.cfg.RefreshInterval)
	defer t.Stop()
	var pending []Tombstone      // sweeps that failed, tried again
	var pendingCorr []Correction // likewise
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			rctx, cancel := context.WithTimeout(ctx, s.cfg.RefreshInterval)
			fresh, freshCorr, err := s.reg.reload(rctx)
			cancel()
			if err != nil && ctx.Err() == nil {
				s.log.Warn("reloading the privacy registry; keeping the previous sets", "err", err)
			}
			pending, pendingCorr = append(pending, fresh...), append(pendingCorr, freshCorr...)
			if (len(pending) > 0 || len(pendingCorr) > 0) && s.barrier.Load() != nil {
				pending, pendingCorr = s.sweep(ctx, pending, pendingCorr)
			}
		}
	}
}

// sweep deletes the rows this process's consumer stored of tombstones it
// learned late (made through another process), and corrects those of
// corrections it learned late: it may have stored the subjects' old
// events, uncorrected, between the request and this reload. It waits for
// the batch in flight first, and returns what it could not sweep, for the
// next refresh.
func (s *Service) sweep(ctx context.Context, todo []Tombstone, corr []Correction) (failed []Tombstone, failedCorr []Correction) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.RequestTimeout)
	defer cancel()
	if err := s.waitConsumer(ctx); err != nil {
		s.log.Error("sweeping rows of deletions and corrections made elsewhere; trying again at the next refresh", "err", err)
		return todo, corr
	}
	for _, c := range corr {
		n, err := correctRows(ctx, s.db, s.tables, c)
		if err != nil {
			s.log.Error("sweeping rows of a correction made elsewhere; trying again at the next refresh", "kind", c.Kind, "subject", c.Subject().Hash(), "err", err)
			failedCorr = append(failedCorr, c)
			continue
		}
		if n > 0 {
			s.log.Info("corrected rows stored before this process learned of a correction", "kind", c.Kind, "subject", c.Subject().Hash(), "rows", n)
		}
	}
	for _, ts := range todo {
		tc, err := deleteRows(ctx, s.db, s.tables, ts.Subject, ts.DeletedAt)
		if err != nil {
			s.log.Error("sweeping rows of a deletion made elsewhere; trying again at the next refresh", "subject_type", ts.Type, "subject", ts.Hash(), "err", err)
			failed = append(failed, ts)
			continue
		}
		var rows uint64
		for _, t := range tc {
			rows += t.Rows
		}
		if rows > 0 {
			s.log.Info("swept rows stored before this process learned of a deletion", "subject_type", ts.Type, "subject", ts.Hash(), "rows", rows)
		}
	}
	return failed, failedCorr
}

// Addr is the admin API's bound address after Start ("" when disabled).
func (s *Service) Addr() string {
	if s.ln == nil {
		return ""
	}
	return s.ln.Addr().String()
}

// Shutdown stops the listener (letting calls in progress finish within
// ctx) and the reload.
func (s *Service) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.started {
		return nil
	}
	var err error
	if s.srv != nil {
		if serr := s.srv.Shutdown(ctx); serr != nil {
			err = fmt.Errorf("draining admin requests: %w", serr)
		}
	}
	s.cancel()
	s.wg.Wait()
	s.started, s.srv, s.ln = false, nil, nil
	return err
}

// authorized reports whether r carries the admin token. Both sides are
// hashed first so the comparison takes the same time whatever the
// presented token's length and content (crypto/subtle).
func (s *Service) authorized(r *http.Request) bool {
	h := r.Header.Get("Authorization")
	scheme, tok, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return false
	}
	got := sha256.Sum256([]byte(strings.TrimSpace(tok)))
	return subtle.ConstantTimeCompare(got[:], s.token[:]) == 1
}

// auditRecord is what one call's audit line says.
type auditRecord struct {
	action string
	sub    Subject
	result string
	status int
	rows   uint64
}

// audit writes one audit line: never the raw subject id nor the token.
func (s *Service) audit(ctx context.Context, a *auditRecord, start time.Time) {
	lvl := slog.LevelInfo
	if a.status >= 400 {
		lvl = slog.LevelWarn
	}
	s.log.LogAttrs(ctx, lvl, "privacy admin call", slog.Bool("audit", true), slog.String("action", a.action),
		slog.String("subject_type", a.sub.Type), slog.String("subject_hash", a.sub.Hash()), slog.String("result", a.result),
		slog.Int("status", a.status), slog.Uint64("rows", a.rows), slog.Duration("duration", time.Since(start)))
}

// serveHTTP authenticates, routes and audits every call.
func (s *Service) serveHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	rt, known := routes[r.URL.Path]
	a := &auditRecord{action: "unknown"}
	if known {
		a.action = rt.action
	}
	defer func() { s.audit(r.Context(), a, start) }()
	h := w.Header()
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	if !s.authorized(r) {
		h.Set("WWW-Authenticate", `Bearer realm="telemetry-admin"`)
		s.fail(w, a, http.StatusUnauthorized, "unauthorized", ErrUnauthorized)
		return
	}
	if route, ok := s.extra[r.URL.Path]; ok && !known {
		a.action = strings.TrimPrefix(r.URL.Path, "/v1/")
		if r.Method != http.MethodGet {
			h.Set("Allow", http.MethodGet)
			s.fail(w, a, http.StatusMethodNotAllowed, "bad_method", errors.New("method not allowed"))
			return
		}
		route.ServeHTTP(w, r)
		a.result, a.status = "served", http.StatusOK
		return
	}
	if !known {
		s.fail(w, a, http.StatusNotFound, "not_found", errors.New("no such route"))
		return
	}
	if r.Method != rt.method {
		h.Set("Allow", rt.method)
		s.fail(w, a, http.StatusMethodNotAllowed, "bad_method", errors.New("method not allowed"))
		return
	}
	var sub Subject
	var corr Correction
	var err error
	switch {
	case rt.method == http.MethodGet:
		sub, err = DecodeQuery(r.URL.RawQuery)
	case rt.action == "correct":
		corr, err = DecodeCorrection(r.Header.Get("Content-Type"), http.MaxBytesReader(w, r.Body, maxBodyBytes))
		sub = corr.Subject()
	default:
		sub, err = DecodeBody(r.Header.Get("Content-Type"), http.MaxBytesReader(w, r.Body, maxBodyBytes))
	}
	if err != nil {
		s.fail(w, a, http.StatusBadRequest, "bad_request", err)
		return
	}
	a.sub = sub
	// A deletion or registry change completes even when the caller goes
	// away: it must not be left half done.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), s.cfg.RequestTimeout)
	defer cancel()
	switch rt.action {
	case "export":
		s.export(ctx, w, r, a)
	case "status":
		s.status(ctx, w, a)
	case "delete":
		s.delete(ctx, w, a)
	case "opt_out", "opt_in":
		s.optOut(ctx, w, a, rt.action == "opt_out")
	case "correct":
		s.correct(ctx, w, a, corr)
	}
}

// fail answers status with err's message (with the subject id redacted)
// and records the result.
func (s *Service) fail(w http.ResponseWriter, a *auditRecord, status int, result string, err error) {
	a.status, a.result = status, result
	msg := err.Error()
	if a.sub.ID != "" {
		msg = strings.ReplaceAll(msg, a.sub.ID, "<subject>")
	}
	if status >= 500 {
		s.log.Error("privacy admin call failed", "action", a.action, "subject_hash", a.sub.Hash(), "err", msg)
	}
	writeJSON(w, status, map[string]string{"error": msg})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// readBody reads a POST call's body: JSON (when a Content-Type is given),
// at most maxBodyBytes, UTF-8. The error says which rule it broke.
func readBody(contentType string, body io.Reader) ([]byte, error) {
	if contentType != "" {
		mt, _, err := mime.ParseMediaType(contentType)
		if err != nil || mt != "application/json" {
			return nil, errors.New("Content-Type must be application/json")
		}
	}
	raw, err := io.ReadAll(io.LimitReader(body, maxBodyBytes+1))
	if err != nil {
		return nil, fmt.Errorf("reading body: %w", err)
	}
	if len(raw) > maxBodyBytes {
		return nil, fmt.Errorf("body larger than %d bytes", maxBodyBytes)
	}
	if !utf8.Valid(raw) {
		return nil, errors.New("body must be UTF-8")
	}
	return raw, nil
}

// DecodeQuery reads the subject of a GET call: exactly one of user_id or
// anonymous_id, given once, and no other parameter.
func DecodeQuery(rawQuery string) (Subject, error) {
	q, err := url.ParseQuery(rawQuery)
	if err != nil {
		return Subject{}, fmt.Errorf("%w: malformed query", ErrBadSubject)
	}
	for k, v := range q {
		if k != SubjectUser && k != SubjectAnonymous {
			return Subject{}, fmt.Errorf("%w: unknown parameter (allowed: user_id, anonymous_id)", ErrBadSubject)
		}
		if len(v) != 1 {
			return Subject{}, fmt.Errorf("%w: %s given %d times", ErrBadSubject, k, len(v))
		}
	}
	return NewSubject(q.Get(SubjectUser), q.Get(SubjectAnonymous))
}

// subjectBody is the JSON body of POST calls.
type subjectBody struct {
	UserID      string `json:"user_id"`
	AnonymousID string `json:"anonymous_id"`
}

// DecodeBody reads the subject of a POST call: a JSON object with exactly
// one of user_id or anonymous_id and no other field.
func DecodeBody(contentType string, body io.Reader) (Subject, error) {
	raw, err := readBody(contentType, body)
	if err != nil {
		return Subject{}, fmt.Errorf("%w: %w", ErrBadSubject, err)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	var b subjectBody
	if err := dec.Decode(&b); err != nil {
		return Subject{}, fmt.Errorf("%w: body must be {\"user_id\": ...} or {\"anonymous_id\": ...}", ErrBadSubject)
	}
	if dec.More() {
		return Subject{}, fmt.Errorf("%w: one JSON object expected", ErrBadSubject)
	}
	if _, err := dec.Token(); err != io.EOF {
		return Subject{}, fmt.Errorf("%w: one JSON object expected", ErrBadSubject)
	}
	return NewSubject(b.UserID, b.AnonymousID)
}

// ExportLine is one line of an NDJSON export.
type ExportLine struct {
	// Table is where the row is stored.
	Table string `json:"table"`
	// Row is the stored row, every column.
	Row json.RawMessage `json:"row"`
}

// export answers the subject's rows: one JSON document, or NDJSON lines
// streamed as they are read when the caller accepts application/x-ndjson.
func (s *Service) export(ctx context.Context, w http.ResponseWriter, r *http.Request, a *auditRecord) {
	if strings.Contains(r.Header.Get("Accept"), "application/x-ndjson") {
		w.Header().Set("Content-Type", "application/x-ndjson")
		w.WriteHeader(http.StatusOK)
		a.status, a.result = http.StatusOK, "ok"
		enc := json.NewEncoder(w)
		fl, _ := w.(http.Flusher)
		for _, table := range SubjectTables {
			n, err := exportRows(ctx, s.db, s.tables, table, a.sub, func(row json.RawMessage) error {
				return enc.Encode(ExportLine{Table: table, Row: row})
			})
			a.rows += uint64(n)
			if err != nil {
				a.result = "error"
				msg := strings.ReplaceAll(err.Error(), a.sub.ID, "<subject>")
				s.log.Error("privacy export failed mid-stream", "subject_hash", a.sub.Hash(), "err", msg)
				_ = enc.Encode(map[string]string{"error": msg})
				return
			}
			if fl != nil {
				fl.Flush()
			}
		}
		return
	}
	var buf bytes.Buffer
	n, err := writeExport(ctx, s.db, s.tables, a.sub, &buf)
	a.rows = uint64(n)
	if err != nil {
		s.fail(w, a, http.StatusInternalServerError, "error", err)
		return
	}
	a.status, a.result = http.StatusOK, "ok"
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(buf.Bytes())
}

// StatusResponse is the answer of GET /v1/privacy/status.
type StatusResponse struct {
	// SubjectType is user_id or anonymous_id.
	SubjectType string `json:"subject_type"`
	// Tables counts the subject's rows per table.
	Tables []TableCount `json:"tables"`
	// Tombstoned says the subject was deleted (its events are dropped).
	Tombstoned bool `json:"tombstoned"`
	// OptedOut says the subject is in the opt-out registry.
	OptedOut bool `json:"opted_out"`
	// Corrections are the corrections made for the subject and when,
	// oldest first.
	Corrections []Correction `json:"corrections"`
}

func (s *Service) status(ctx context.Context, w http.ResponseWriter, a *auditRecord) {
	tc, err := counts(ctx, s.db, s.tables, a.sub)
	if err != nil {
		s.fail(w, a, http.StatusInternalServerError, "error", err)
		return
	}
	var reg []struct {
		Tomb uint64 `ch:"tomb"`
		Opt  bool   `ch:"opt"`
	}
	q := fmt.Sprintf(`SELECT
	    (SELECT count() FROM %s WHERE subject_type = ? AND subject_id = ?) AS tomb,
	    (SELECT count() > 0 AND argMax(opted_out, updated_at) FROM %s WHERE subject_type = ? AND subject_id = ?) AS opt`,
		s.tables.table("tombstones"), s.tables.table("opt_outs"))
	if err := s.db.Select(ctx, &reg, q, a.sub.Type, a.sub.ID, a.sub.Type, a.sub.ID); err != nil {
		s.fail(w, a, http.StatusInternalServerError, "error", fmt.Errorf("reading the registries: %w", err))
		return
	}
	resp := StatusResponse{SubjectType: a.sub.Type, Tables: tc}
	if resp.Corrections, err = subjectCorrections(ctx, s.db, s.tables, a.sub); err != nil {
		s.fail(w, a, http.StatusInternalServerError, "error", err)
		return
	}
	if len(reg) == 1 {
		resp.Tombstoned, resp.OptedOut = reg[0].Tomb > 0, reg[0].Opt
	}
	for _, t := range tc {
		a.rows += t.Rows
	}
	a.status, a.result = http.StatusOK, "ok"
	writeJSON(w, http.StatusOK, &resp)
}

// DeleteResponse is the answer of POST /v1/privacy/delete.
type DeleteResponse struct {
	// SubjectType is user_id or anonymous_id.
	SubjectType string `json:"subject_type"`
	// Deleted counts the rows removed per table.
	Deleted []TableCount `json:"deleted"`
	// Tombstoned is true: the subject's events received up to DeletedAt
	// are dropped wherever they still wait (Kafka, the local log, a replay).
	Tombstoned bool `json:"tombstoned"`
	// DeletedAt is the tombstone's bound: what ingest received at or
	// before it is deleted; what it receives after it is stored.
	DeletedAt time.Time `json:"deleted_at"`
}

// delete records the tombstone first (so the consumer stops storing the
// subject's events received until now), then removes the rows of those.
func (s *Service) delete(ctx context.Context, w http.ResponseWriter, a *auditRecord) {
	deletedAt, err := s.reg.Tombstone(ctx, a.sub)
	if err == nil {
		err = s.waitConsumer(ctx)
	}
	if err != nil {
		s.fail(w, a, http.StatusInternalServerError, "error", err)
		return
	}
	tc, err := deleteRows(ctx, s.db, s.tables, a.sub, deletedAt)
	for _, t := range tc {
		a.rows += t.Rows
	}
	if err != nil {
		s.fail(w, a, http.StatusInternalServerError, "error", err)
		return
	}
	a.status, a.result = http.StatusOK, "ok"
	writeJSON(w, http.StatusOK, &DeleteResponse{SubjectType: a.sub.Type, Deleted: tc, Tombstoned: true, DeletedAt: deletedAt})
}

// OptOutResponse is the answer of POST /v1/privacy/opt-out and opt-in.
type OptOutResponse struct {
	// SubjectType is user_id or anonymous_id.
	SubjectType string `json:"subject_type"`
	// OptedOut is the registry's new state for the subject.
	OptedOut bool `json:"opted_out"`
}

func (s *Service) optOut(ctx context.Context, w http.ResponseWriter, a *auditRecord, out bool) {
	if err := s.reg.SetOptOut(ctx, a.sub, out); err != nil {
		s.fail(w, a, http.StatusInternalServerError, "error", err)
		return
	}
	a.status, a.result, a.rows = http.StatusOK, "ok", 1
	writeJSON(w, http.StatusOK, &OptOutResponse{SubjectType: a.sub.Type, OptedOut: out})
}

// CorrectResponse is the answer of POST /v1/privacy/correct.
type CorrectResponse struct {
	// Correction is what was recorded, with its bound corrected_at.
	Correction Correction `json:"correction"`
	// Rows counts the stored events changed; the events still on the bus
	// are corrected by the consumer as they arrive.
	Rows uint64 `json:"rows"`
}

// correct records the correction first (so the consumer corrects the
// matching events it reads from now on), waits for the consumer's batch
// in flight, then corrects the stored rows received until the bound.
func (s *Service) correct(ctx context.Context, w http.ResponseWriter, a *auditRecord, c Correction) {
	if c.Kind == CorrectPlan && s.tables.Cluster != "" {
		s.fail(w, a, http.StatusNotImplemented, "unsupported", fmt.Errorf("%w: plan corrections on a cluster", ErrUnsupported))
		return
	}
	c, err := s.reg.RecordCorrection(ctx, c)
	if err == nil {
		err = s.waitConsumer(ctx)
	}
	if err != nil {
		s.fail(w, a, http.StatusInternalServerError, "error", err)
		return
	}
	n, err := correctRows(ctx, s.db, s.tables, c)
	a.rows = n
	if err != nil {
		s.fail(w, a, http.StatusInternalServerError, "error", err)
		return
	}
	a.status, a.result = http.StatusOK, "ok"
	writeJSON(w, http.StatusOK, &CorrectResponse{Correction: c, Rows: n})
}
