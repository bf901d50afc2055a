// Package chserver owns an HTTP server that speaks ClickHouse's HTTP
// interface (https://clickhouse.com/docs/interfaces/http) on top of the
// embedded engine in sinks/chdb, so unmodified ClickHouse clients
// (clickhouse-go over HTTP, @clickhouse/client, curl) work against it.
//
// It owns request decoding (query text, insert bodies, compression,
// parameters, settings, authentication) and ClickHouse-style responses
// (headers, error bodies, status codes). It must not open or close the
// engine (the caller does) and must not interpret SQL beyond splitting an
// INSERT from its data and recognising SET and CREATE TEMPORARY TABLE.
//
// Sessions: a request without session_id runs on the engine's shared
// connection with its own settings and database, like a sessionless
// ClickHouse HTTP request. A session_id gets an engine connection of its own
// (chdb.Session), which libchdb makes a ClickHouse session of its own: its
// temporary tables are ClickHouse's, seen by that session only, with no
// query rewriting, and dropped when the session expires or the server
// shuts down. (The alternative, a database or name prefix per session with
// the session's table names rewritten in every statement, was not needed:
// it would have had to find every table reference in ClickHouse's grammar.)
//
// Cancellation: when the client of a read-only query goes away, the
// request's context ends and sinks/chdb kills the running query. A write
// (an insert whose body has arrived, an ALTER, a DDL statement) runs to
// its end, so that a table and its materialized views never part ways.
package chserver

import (
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ClickHouse/ch-go/compress"
	"github.com/ClickHouse/ch-go/proto"

	"github.com/sora3web/telemetry/sinks/chdb"
)

// Sentinel errors callers branch on.
var (
	// ErrInvalidConfig wraps every Config.Validate failure.
	ErrInvalidConfig = errors.New("chserver: invalid config")
	// ErrAlreadyStarted is returned by a second Start.
	ErrAlreadyStarted = errors.New("chserver: already started")
	// ErrNotStarted is returned by Addr before Start.
	ErrNotStarted = errors.New("chserver: not started")
)

// Config configures the server.
type Config struct {
	// Listen is the TCP address, e.g. "127.0.0.1:8123" (port 0 picks one).
	Listen string `yaml:"listen"`
	// DataDir is the engine's data directory; the server spools large
	// request bodies under DataDir/http_spool.
	DataDir string `yaml:"data_dir"`
	// User and Password are the single accepted credentials. User defaults
	// to "default"; an empty Password accepts only an empty password.
	User     string `yaml:"user"`
	Password string `yaml:"password"`
	// DisplayName is sent as X-ClickHouse-Server-Display-Name; empty means
	// the engine's displayName().
	DisplayName string `yaml:"display_name"`
	// MaxQueryTime is the default max_execution_time of every read-only
	// statement (SELECT, WITH, SHOW, DESCRIBE, EXISTS, EXPLAIN, CHECK)
	// that does not set its own, as a server profile's default would be:
	// a long query takes the engine's threads from the inserts beside it
	// and holds one of the Connections. Inserts and DDL are not bounded. Zero
	// means no default. Whole seconds or fractions (1.5s).
	MaxQueryTime time.Duration `yaml:"max_query_time"`
	// Connections is how many sessionless statements run at once, each on
	// an engine connection of its own (the engine runs them in parallel);
	// more wait for a free one. Zero means DefaultConnections.
	Connections int `yaml:"connections"`
	// Logger receives one line per failed request; nil means slog.Default().
	Logger *slog.Logger `yaml:"-"`
}

// Validate reports whether the configuration can be used.
func (c Config) Validate() error {
	if c.Listen == "" {
		return fmt.Errorf("%w: listen address is required", ErrInvalidConfig)
	}
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		return fmt.Errorf("%w: listen %q: %w", ErrInvalidConfig, c.Listen, err)
	}
	if c.DataDir == "" {
		return fmt.Errorf("%w: data_dir is required", ErrInvalidConfig)
	}
	if c.MaxQueryTime < 0 {
		return fmt.Errorf("%w: max_query_time must be >= 0", ErrInvalidConfig)
	}
	if c.Connections < 0 {
		return fmt.Errorf("%w: connections must be >= 0", ErrInvalidConfig)
	}
	if strings.ContainsAny(c.User, ":\x00") {
		return fmt.Errorf("%w: user must not contain ':' or NUL", ErrInvalidConfig)
	}
	return nil
}

// Server serves ClickHouse's HTTP interface on an Engine.
type Server struct {
	cfg    Config
	engine *chdb.Engine
	log    *slog.Logger
	spool  string

	displayName, version, timezone string
	// known is every setting the engine has (system.settings).
	known    map[string]bool
	sessions sessions
	conns    *pool // sessionless statements

	mu       sync.Mutex
	httpSrv  *http.Server
	ln       net.Listener
	done     chan struct{} // closed when the serve and expiry goroutines return
	stop     chan struct{} // closed by Shutdown to end the expiry goroutine
	serveErr error
}

// DefaultConnections is Config.Connections when zero: a few statements at
// once on a small machine, each with the engine's threads.
const DefaultConnections = 4

// expireEvery is how often idle sessions past their session_timeout are
// ended (their connections closed, their temporary tables dropped).
const expireEvery = time.Second

// New checks cfg and asks the engine for its identity (version, timezone).
func New(cfg Config, engine *chdb.Engine) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if engine == nil {
		return nil, fmt.Errorf("%w: engine is nil", ErrInvalidConfig)
	}
	if cfg.User == "" {
		cfg.User = "default"
	}
	s := &Server{cfg: cfg, engine: engine, log: cfg.Logger, spool: filepath.Join(cfg.DataDir, "http_spool"),
		conns: newPool(cmp.Or(cfg.Connections, DefaultConnections), engine.OpenSession)}
	if s.log == nil {
		s.log = slog.Default()
	}
	res, err := engine.Query(context.Background(), "SELECT displayName(), version(), timezone()", "TabSeparatedRaw")
	if err != nil {
		return nil, fmt.Errorf("chserver: asking the engine for its version: %w", err)
	}
	f := strings.Split(strings.TrimRight(string(res.Data), "\n"), "\t")
	if len(f) != 3 {
		return nil, fmt.Errorf("chserver: unexpected engine identity %q", res.Data)
	}
	s.displayName, s.version, s.timezone = f[0], f[1], f[2]
	s.known = fallbackSettings
	if res, err := engine.Query(context.Background(), "SELECT name FROM system.settings", "TabSeparatedRaw"); err != nil {
		s.log.Warn("chserver: reading the engine's settings; accepting a short list only", "err", err)
	} else {
		s.known = map[string]bool{}
		for _, name := range strings.Split(strings.TrimSpace(string(res.Data)), "\n") {
			s.known[name] = true
		}
	}
	if cfg.DisplayName != "" {
		s.displayName = cfg.DisplayName
	}
	return s, nil
}

// Start listens on cfg.Listen and serves in a goroutine owned by the
// Server until Shutdown. ctx bounds only the start-up.
func (s *Server) Start(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.httpSrv != nil {
		return ErrAlreadyStarted
	}
	if err := os.MkdirAll(s.spool, 0o700); err != nil {
		return fmt.Errorf("chserver: creating spool directory: %w", err)
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", s.cfg.Listen)
	if err != nil {
		return fmt.Errorf("chserver: listening on %s: %w", s.cfg.Listen, err)
	}
	s.ln = ln
	s.httpSrv = &http.Server{Handler: s, ReadHeaderTimeout: 30 * time.Second}
	s.done, s.stop = make(chan struct{}), make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		if err := s.httpSrv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.mu.Lock()
			s.serveErr = err
			s.mu.Unlock()
		}
	}()
	go func() {
		defer wg.Done()
		s.expireSessions(s.stop)
	}()
	go func() {
		wg.Wait()
		close(s.done)
	}()
	return nil
}

// expireSessions ends idle sessions past their timeout until stop closes.
func (s *Server) expireSessions(stop <-chan struct{}) {
	tick := time.NewTicker(expireEvery)
	defer tick.Stop()
	for {
		select {
		case <-stop:
			return
		case now := <-tick.C:
			closeSessions(s.sessions.expire(now))
		}
	}
}

// Addr returns the listening address (useful with port 0).
func (s *Server) Addr() (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln == nil {
		return "", ErrNotStarted
	}
	return s.ln.Addr().String(), nil
}

// Shutdown stops accepting requests, waits for running ones (bounded by
// ctx; past it their connections are closed, which kills their read-only
// queries, while a write runs to its end and the engine's Close waits for
// it) and for its goroutines, then ends every session, dropping their
// temporary tables. It does not close the engine.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	srv, done, stop := s.httpSrv, s.done, s.stop
	s.stop = nil // a second Shutdown only waits
	s.mu.Unlock()
	if srv == nil {
		return nil
	}
	err := srv.Shutdown(ctx)
	if err != nil {
		srv.Close()
	}
	if stop != nil {
		close(stop)
	}
	<-done
	s.sessions.closeAll()
	s.conns.close()
	s.mu.Lock()
	defer s.mu.Unlock()
	if err == nil {
		err = s.serveErr
	}
	if err != nil {
		return fmt.Errorf("chserver: shutting down: %w", err)
	}
	return nil
}

// serverError is an error produced by the HTTP layer, shaped like an
// engine exception.
type serverError struct {
	code int
	name string
	msg  string
}

func (e *serverError) Error() string {
	return fmt.Sprintf("Code: %d. DB::Exception: %s. (%s)", e.code, e.msg, e.name)
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/ping", "/replicas_status":
		if r.Method == http.MethodGet || r.Method == http.MethodHead {
			w.Header().Set("Content-Type", "text/plain; charset=UTF-8")
			io.WriteString(w, "Ok.\n")
			return
		}
	case "/", "/query":
		if r.Method == http.MethodGet && !r.URL.Query().Has("query") {
			w.Header().Set("Content-Type", "text/plain; charset=UTF-8")
			io.WriteString(w, "Ok.\n")
			return
		}
		if r.Method == http.MethodGet || r.Method == http.MethodPost {
			s.serveQuery(w, r)
			return
		}
	}
	w.Header().Set("Content-Type", "text/plain; charset=UTF-8")
	w.WriteHeader(http.StatusNotFound)
	fmt.Fprintf(w, "There is no handle %s\n\nUse / or /ping for health checks.\n", r.URL.Path)
}

func (s *Server) serveQuery(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	queryID := q.Get("query_id")
	if queryID == "" {
		queryID = r.Header.Get("X-ClickHouse-Query-Id")
	}
	if queryID == "" {
		queryID = newQueryID()
	}
	h := w.Header()
	h.Set("X-ClickHouse-Query-Id", queryID)
	h.Set("X-ClickHouse-Server-Display-Name", s.displayName)
	h.Set("X-ClickHouse-Timezone", s.timezone)

	if err := s.authenticate(r, q); err != nil {
		s.writeError(w, r, err)
		return
	}
	out, format, res, err := s.execute(r, q)
	if err != nil {
		s.writeError(w, r, err)
		return
	}

	if q.Get("compress") == "1" {
		framed, err := nativeCompress(out, q.Get("network_compression_method"))
		if err != nil {
			s.writeError(w, r, &serverError{code: 36, name: "BAD_ARGUMENTS", msg: err.Error()})
			return
		}
		out = framed
	}
	if q.Get("enable_http_compression") == "1" {
		if enc := chooseEncoding(r.Header.Get("Accept-Encoding")); enc != "" {
			encoded, err := encodeBody(out, enc)
			if err != nil {
				s.writeError(w, r, fmt.Errorf("compressing response: %w", err))
				return
			}
			out = encoded
			h.Set("Content-Encoding", enc)
		}
	}
	h.Set("Content-Type", contentType(format))
	h.Set("X-ClickHouse-Format", format)
	h.Set("X-ClickHouse-Summary", summary(res, len(out)))
	h.Set("Content-Length", strconv.Itoa(len(out)))
	w.WriteHeader(http.StatusOK)
	w.Write(out)
}

// authenticate checks the credentials in headers, Basic auth or URL
// parameters against the configured user.
func (s *Server) authenticate(r *http.Request, q url.Values) error {
	user, pass := r.Header.Get("X-ClickHouse-User"), r.Header.Get("X-ClickHouse-Key")
	_, _, basic := r.BasicAuth()
	if user != "" || pass != "" {
		if basic || q.Has("user") || q.Has("password") {
			return &serverError{code: 194, name: "REQUIRED_PASSWORD",
				msg: "Invalid authentication: it is not allowed to use X-ClickHouse HTTP headers and other authentication methods simultaneously"}
		}
	} else if bu, bp, ok := r.BasicAuth(); ok {
		user, pass = bu, bp
	} else {
		user, pass = q.Get("user"), q.Get("password")
	}
	if user == "" {
		user = "default"
	}
	okUser := subtle.ConstantTimeCompare([]byte(user), []byte(s.cfg.User)) == 1
	okPass := subtle.ConstantTimeCompare([]byte(pass), []byte(s.cfg.Password)) == 1
	if !okUser || !okPass {
		return &serverError{code: 516, name: "AUTHENTICATION_FAILED",
			msg: user + ": Authentication failed: password is incorrect, or there is no user with such name"}
	}
	return nil
}

// maxInlineBody is how much of a body is kept in memory; the rest is
// spooled to a file.
const maxInlineBody = 1 << 20

// execute runs the request's statement and returns the output bytes, the
// output format and the engine result.
func (s *Server) execute(r *http.Request, q url.Values) ([]byte, string, *chdb.Result, error) {
	settings, params, err := settingsFrom(q, s.known)
	if err != nil {
		return nil, "", nil, err
	}
	var sess *session // nil without session_id
	if sessionID := q.Get("session_id"); sessionID != "" {
		timeout, err := sessionTimeout(q.Get("session_timeout"))
		if err != nil {
			return nil, "", nil, err
		}
		var base map[string]string
		var expired []*chdb.Session
		sess, base, expired, err = s.sessions.use(sessionID, timeout, q.Get("session_check") == "1", time.Now())
		closeSessions(expired)
		if err != nil {
			return nil, "", nil, err
		}
		defer func() { s.sessions.release(sess, time.Now()) }()
		maps.Copy(base, settings) // the request's own settings win
		settings = base
	}
	readOnly := r.Method == http.MethodGet || (q.Get(readonlySetting) != "" && q.Get(readonlySetting) != "0") ||
		(settings[readonlySetting] != "" && settings[readonlySetting] != "0")
	delete(settings, readonlySetting)
	// default_format and database come from the URL or, as ClickHouse
	// also takes them (the JDBC driver sends them so), from headers.
	format := cmp.Or(q.Get("default_format"), r.Header.Get("X-ClickHouse-Format"), "TabSeparated")
	database := cmp.Or(q.Get("database"), r.Header.Get("X-ClickHouse-Database"))

	body, closeBody, err := decodeBody(r.Body, r.Header.Get("Content-Encoding"))
	if err != nil {
		return nil, "", nil, &serverError{code: 36, name: "BAD_ARGUMENTS", msg: "reading request body: " + err.Error()}
	}
	defer closeBody()
	if q.Get("decompress") == "1" {
		body = &eofReader{r: compress.NewReader(body)}
	}
	// Keep the head of the body in memory; a larger body is spooled whole.
	head, err := io.ReadAll(io.LimitReader(body, maxInlineBody+1))
	if err != nil {
		return nil, "", nil, &serverError{code: 33, name: "CANNOT_READ_ALL_DATA", msg: "reading request body: " + err.Error()}
	}
	large := len(head) > maxInlineBody

	// The statement is the query parameter followed by the body, as in
	// ClickHouse; for an INSERT ... FORMAT the body is the data.
	sql := q.Get("query")
	var data io.Reader
	var sp insertSplit
	isInsert := false
	switch {
	case sql != "":
		if sp, isInsert = splitInsert(sql); isInsert {
			data = io.MultiReader(strings.NewReader(sql[sp.DataOffset:]), bytes.NewReader(head), body)
		} else if len(head) > 0 {
			if large {
				return nil, "", nil, &serverError{code: 80, name: "QUERY_IS_TOO_LARGE", msg: "a query body over 1 MiB is only accepted as INSERT data"}
			}
			sql += "\n" + string(head)
		}
	case len(head) > 0:
		if large {
			// Only the statement head has to be text; find it in the first MiB.
			if sp, isInsert = splitInsert(string(head)); !isInsert {
				return nil, "", nil, &serverError{code: 80, name: "QUERY_IS_TOO_LARGE", msg: "a query body over 1 MiB is only accepted as INSERT data"}
			}
			data = io.MultiReader(bytes.NewReader(head[sp.DataOffset:]), body)
		} else {
			sql = string(head)
			if sp, isInsert = splitInsert(sql); isInsert {
				data = strings.NewReader(sql[sp.DataOffset:])
			}
		}
	default:
		return nil, "", nil, &serverError{code: 62, name: "SYNTAX_ERROR", msg: "Empty query"}
	}

	req := chdb.Request{Format: format, Database: database, Settings: settings}
	for name, v := range params {
		req.Params = append(req.Params, chdb.Param{Name: name, Value: v})
	}

	if isInsert && readOnly {
		return nil, "", nil, &serverError{code: 164, name: "READONLY",
			msg: "Cannot execute query in readonly mode. For queries over HTTP, method GET implies readonly. You should use method POST for modifying queries"}
	}
	if isInsert {
		path, err := s.spoolData(data)
		if err != nil {
			return nil, "", nil, err
		}
		defer os.Remove(path)
		req.SQL = sp.Head + " FROM INFILE " + chdb.QuoteString(path)
		if sp.Settings != "" {
			req.SQL += " " + sp.Settings
		}
		req.SQL += " FORMAT " + sp.Format
		// The whole body has arrived: the insert runs to its end, its
		// materialized views included, even if the client goes away now.
		// Killed between the table and its views, it would leave rows the
		// views never counted, which no retry can complete (the client that
		// knew the block is gone). ClickHouse too cancels only read-only
		// queries when their client closes.
		res, err := s.run(context.WithoutCancel(r.Context()), sess, req)
		return nil, format, res, err
	}

	kw := firstKeyword(sql)
	switch {
	case kw == "SET" && sess != nil:
		// A session keeps its settings for its later requests.
		assign, err := parseSet(sql)
		if err != nil {
			return nil, "", nil, err
		}
		for name := range assign {
			if !s.known[name] && name != readonlySetting {
				return nil, "", nil, unknownSetting(name)
			}
		}
		s.sessions.set(sess, assign)
		return nil, format, &chdb.Result{}, nil
	case kw == "SET" || kw == "USE":
		// Sessionless, as in ClickHouse without session_id: the statement
		// would only affect itself. Running it would leak into the shared
		// engine session, so it is accepted and has no effect.
		return nil, format, &chdb.Result{}, nil
	case readOnly && !readOnlyKeywords[kw]:
		return nil, "", nil, &serverError{code: 164, name: "READONLY",
			msg: "Cannot execute query in readonly mode. For queries over HTTP, method GET implies readonly. You should use method POST for modifying queries"}
	}
	if readOnlyKeywords[kw] {
		s.boundQueryTime(settings)
	}
	if f := outputFormat(sql); f != "" {
		format = f
	}
	if q.Has("client_protocol_version") && format == "Native" && isHelloQuery(sql) {
		out, err := s.hello(q.Get("client_protocol_version"))
		return out, format, &chdb.Result{RowsRead: 1}, err
	}
	req.SQL = sql
	ctx := r.Context()
	if !readOnlyKeywords[kw] {
		ctx = context.WithoutCancel(ctx) // a write runs to its end, as an insert does
	}
	res, err := s.run(ctx, sess, req)
	if err != nil {
		return nil, "", nil, err
	}
	return res.Data, format, res, nil
}

// boundQueryTime gives a read-only statement cfg.MaxQueryTime as its
// max_execution_time unless the request set one itself: a default, as a
// server profile's is. Analysts' tools send none; the pipeline's own reads
// (privacy exports, the consumer's stored ids) send 0 so that they finish.
func (s *Server) boundQueryTime(settings map[string]string) {
	limit := s.cfg.MaxQueryTime.Seconds()
	if limit <= 0 {
		return
	}
	if _, set := settings[maxExecutionTime]; set {
		return
	}
	settings[maxExecutionTime] = strconv.FormatFloat(limit, 'f', -1, 64)
}

// maxExecutionTime is ClickHouse's per-query time limit, in seconds.
const maxExecutionTime = "max_execution_time"

// run executes req where ClickHouse would: in the session's own engine
// connection (sess, from session_id), where its temporary tables live; a
// sessionless CREATE TEMPORARY TABLE in a connection opened for it alone,
// so the table lives for that request only, as in ClickHouse without
// session_id; anything else in the engine's shared connection. The query is
// killed if ctx ends while it runs (callers pass a context that does not
// end with the client for writes).
func (s *Server) run(ctx context.Context, sess *session, req chdb.Request) (*chdb.Result, error) {
	if sess != nil {
		c, err := s.sessions.connection(sess, s.engine.OpenSession)
		if err != nil {
			return nil, err
		}
		return c.Exec(ctx, req)
	}
	if createsTemporaryTable(req.SQL) {
		c, err := s.engine.OpenSession()
		if err != nil {
			return nil, fmt.Errorf("opening an engine connection for a sessionless temporary table: %w", err)
		}
		defer c.Close()
		return c.Exec(ctx, req)
	}
	return s.conns.exec(ctx, req)
}

// readOnlyKeywords start the statements a GET request may run.
var readOnlyKeywords = map[string]bool{
	"SELECT": true, "WITH": true, "SHOW": true, "DESCRIBE": true, "DESC": true,
	"EXISTS": true, "EXPLAIN": true, "CHECK": true, "(": true,
}

// spoolData writes insert data to a temporary file for FROM INFILE, which
// is not limited by max_query_size the way inline data is.
func (s *Server) spoolData(data io.Reader) (string, error) {
	f, err := os.CreateTemp(s.spool, "insert-*.data")
	if err != nil {
		return "", fmt.Errorf("spooling insert data: %w", err)
	}
	_, err = io.Copy(f, data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(f.Name())
		return "", &serverError{code: 33, name: "CANNOT_READ_ALL_DATA", msg: "reading insert data: " + err.Error()}
	}
	return f.Name(), nil
}

// hello answers clickhouse-go's handshake query. clickhouse-go decodes this
// answer at its own protocol revision and every later answer at the
// revision reported here. The engine writes Native at revision 0 (no block
// info, no serialization kinds), so report revision 0 and encode this one
// block at the revision the client asked for.
func (s *Server) hello(clientRevision string) ([]byte, error) {
	rev, err := strconv.Atoi(clientRevision)
	if err != nil || rev < 0 {
		return nil, &serverError{code: 36, name: "BAD_ARGUMENTS", msg: "client_protocol_version must be a number"}
	}
	name, version, tz := new(proto.ColStr), new(proto.ColStr), new(proto.ColStr)
	revision := new(proto.ColUInt32)
	name.Append(s.displayName)
	version.Append(s.version)
	revision.Append(0)
	tz.Append(s.timezone)
	input := []proto.InputColumn{
		{Name: "displayName()", Data: name},
		{Name: "version()", Data: version},
		{Name: "revision()", Data: revision},
		{Name: "timezone()", Data: tz},
	}
	var buf proto.Buffer
	if err := (proto.Block{Columns: len(input), Rows: 1}).EncodeBlock(&buf, rev, input); err != nil {
		return nil, fmt.Errorf("encoding handshake block: %w", err)
	}
	return buf.Buf, nil
}

// writeError sends err as a ClickHouse exception with the matching status.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	code, name, text := 1001, "STD_EXCEPTION", "Code: 1001. DB::Exception: "+err.Error()+". (STD_EXCEPTION)"
	var ce *chdb.Error
	var se *serverError
	switch {
	case errors.As(err, &se):
		code, name, text = se.code, se.name, se.Error()
	case errors.As(err, &ce):
		if ce.Code != 0 {
			code, name, text = ce.Code, ce.Name, ce.Error()
		} else {
			text = "Code: 1001. DB::Exception: " + ce.Message + ". (STD_EXCEPTION)"
		}
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		code, name, text = 394, "QUERY_WAS_CANCELLED", "Code: 394. DB::Exception: Query was cancelled. (QUERY_WAS_CANCELLED)"
	}
	status := StatusForCode(code, name)
	h := w.Header()
	h.Del("Content-Encoding")
	h.Set("Content-Type", "text/plain; charset=UTF-8")
	h.Set("X-ClickHouse-Exception-Code", strconv.Itoa(code))
	if status == http.StatusUnauthorized {
		h.Set("WWW-Authenticate", `Basic realm="ClickHouse server HTTP API"`)
	}
	s.log.Warn("clickhouse http request failed", "query_id", h.Get("X-ClickHouse-Query-Id"), "code", code, "status", status, "error", text)
	w.WriteHeader(status)
	io.WriteString(w, text+" (version "+s.version+")\n")
}

// StatusForCode maps a ClickHouse error (code, and the symbolic name when
// known) to the HTTP status ClickHouse's HTTP handler answers with
// (exceptionCodeToHTTPStatus). Authentication failures answer 401 with
// WWW-Authenticate, as ClickHouse does.
func StatusForCode(code int, name string) int {
	switch code {
	case 194, 192, 193, 516: // REQUIRED_PASSWORD, UNKNOWN_USER, WRONG_PASSWORD, AUTHENTICATION_FAILED
		return http.StatusUnauthorized
	case 497: // ACCESS_DENIED
		return http.StatusForbidden
	case 6, 25, 26, 27, 38, 41, 72, // CANNOT_PARSE_*
		62, 117, 53, 167, 168: // SYNTAX_ERROR, INCORRECT_DATA, TYPE_MISMATCH, TOO_DEEP_AST, TOO_BIG_AST
		return http.StatusBadRequest
	case 60, 46, 47, 50, 56, 81, 115, 63, 73, 336: // UNKNOWN_TABLE ... UNKNOWN_DATABASE_ENGINE
		return http.StatusNotFound
	case 80: // QUERY_IS_TOO_LARGE
		return http.StatusRequestEntityTooLarge
	case 48: // NOT_IMPLEMENTED
		return http.StatusNotImplemented
	case 209, 76: // SOCKET_TIMEOUT, CANNOT_OPEN_FILE
		return http.StatusServiceUnavailable
	case 381: // HTTP_LENGTH_REQUIRED
		return http.StatusLengthRequired
	}
	switch name {
	case "UNKNOWN_ELEMENT_IN_AST", "UNKNOWN_TYPE_OF_AST_NODE", "UNEXPECTED_AST_STRUCTURE":
		return http.StatusBadRequest
	case "UNKNOWN_DIRECTION_OF_SORTING", "UNKNOWN_TYPE_OF_QUERY":
		return http.StatusNotFound
	}
	return http.StatusInternalServerError
}

func contentType(format string) string {
	f := strings.ToLower(format)
	switch {
	case strings.HasPrefix(f, "json"), strings.HasPrefix(f, "ndjson"):
		return "application/json; charset=UTF-8"
	case strings.HasPrefix(f, "tabseparated"), strings.HasPrefix(f, "tsv"):
		return "text/tab-separated-values; charset=UTF-8"
	case strings.HasPrefix(f, "csv"):
		return "text/csv; charset=UTF-8; header=absent"
	case f == "native", strings.HasPrefix(f, "rowbinary"), f == "parquet", f == "arrow", f == "arrowstream", f == "orc", f == "avro":
		return "application/octet-stream"
	case f == "xml":
		return "application/xml; charset=UTF-8"
	}
	return "text/plain; charset=UTF-8"
}

func summary(res *chdb.Result, resultBytes int) string {
	if res == nil {
		res = &chdb.Result{}
	}
	m := map[string]string{
		"read_rows":          strconv.FormatUint(res.RowsRead, 10),
		"read_bytes":         strconv.FormatUint(res.BytesRead, 10),
		"written_rows":       strconv.FormatUint(res.RowsWritten, 10),
		"written_bytes":      strconv.FormatUint(res.BytesWritten, 10),
		"total_rows_to_read": strconv.FormatUint(res.RowsRead, 10),
		"result_rows":        "0",
		"result_bytes":       strconv.Itoa(resultBytes),
		"elapsed_ns":         strconv.FormatInt(res.Elapsed.Nanoseconds(), 10),
	}
	b, _ := json.Marshal(m)
	return string(b)
}

func newQueryID() string {
	var b [16]byte
	rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// eofReader turns ch-go's wrapped io.EOF into a plain io.EOF for io.Copy,
// and makes it sticky: compress.Reader re-serves its last block when read
// again after EOF.
type eofReader struct {
	r   io.Reader
	err error
}

func (e *eofReader) Read(p []byte) (int, error) {
	if e.err != nil {
		return 0, e.err
	}
	n, err := e.r.Read(p)
	if err != nil {
		if errors.Is(err, io.EOF) {
			err = io.EOF
		}
		e.err = err
	}
	return n, err
}
