// Package chdb owns the in-process ClickHouse engine: it loads libchdb.so
// (ClickHouse packaged as a shared library by the chDB project) with purego,
// opens one persistent session on a data directory and runs SQL on it.
//
// It must not speak any network protocol (sinks/chserver does that), must not
// download the library (scripts/chdb.sh does that) and must not interpret SQL
// beyond what the engine itself does.
//
// Concurrency and sessions: libchdb 26.5.3 boots one engine per process,
// and every chdb_connect on its data directory is a connection of its own
// that is also a ClickHouse session of its own (temporary tables, SET,
// USE; measured). Connections run their queries concurrently; one
// connection runs one query at a time (4 concurrent "SELECT sleep(0.5)" on
// one connection take 2.0 s with or without a Go-side lock). So each
// connection has a mutex, which costs nothing and makes per-request state
// (see Exec) safe. The Engine's own queries (Query, Exec) share one
// connection and queue; OpenSession gives a Session, a connection of its
// own. Session state changed by a query (SET, USE) is visible to that
// connection's following queries: callers that need per-request state use
// Exec with Settings/Database, which applies and restores it while holding
// the lock.
//
// Cancellation: a third connection, the control connection, runs KILL QUERY
// for a query whose context ends while it runs (non-streaming calls cannot
// be interrupted otherwise: chdb_stream_cancel_query only acts between
// chunks, and waits for a chunk being computed).
package chdb

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"github.com/ebitengine/purego"
)

// Version is the chDB library version this package is built and tested with.
const Version = "26.5.3"

// Sentinel errors callers branch on.
var (
	// ErrLibraryNotFound means libchdb.so was not at the configured path.
	ErrLibraryNotFound = errors.New("chdb: libchdb.so not found")
	// ErrAlreadyOpen means another Engine is open in this process; libchdb
	// supports a single connection per process.
	ErrAlreadyOpen = errors.New("chdb: an engine is already open in this process")
	// ErrClosed means the Engine was closed.
	ErrClosed = errors.New("chdb: engine closed")
)

// Config configures Open.
type Config struct {
	// Path is the data directory (created if missing). Tables created in it
	// survive a restart of the process. Required.
	Path string
	// LibPath is the path of libchdb.so. Empty means $CHDB_LIB_PATH, else
	// DefaultLibPath().
	LibPath string
	// MergeNice is the nice value of the engine's merge and mutation
	// threads while they run a task (ClickHouse's server setting
	// os_threads_nice_value_merge_mutate): above 0 the kernel gives the
	// cores to the inserts and queries first and to merges what is left.
	// 0 to 19; 0 leaves them at the process's own.
	MergeNice int
}

// Validate reports whether the configuration can be used.
func (c Config) Validate() error {
	if c.Path == "" {
		return errors.New("chdb: config: Path (data directory) is required")
	}
	if c.Path == ":memory:" {
		return errors.New("chdb: config: Path must be a directory, not :memory:")
	}
	if c.MergeNice < 0 || c.MergeNice > 19 {
		// Below 0 needs CAP_SYS_NICE, which the engine then silently lacks.
		return fmt.Errorf("chdb: config: MergeNice must be 0 to 19, got %d", c.MergeNice)
	}
	return nil
}

// DefaultLibPath returns where scripts/chdb.sh puts the library:
// ${TELEMETRY_CACHE:-$HOME/.cache/telemetry}/chdb/<Version>/libchdb.so.
func DefaultLibPath() string {
	cache := os.Getenv("TELEMETRY_CACHE")
	if cache == "" {
		home, _ := os.UserHomeDir()
		cache = filepath.Join(home, ".cache", "telemetry")
	}
	return filepath.Join(cache, "chdb", Version, "libchdb.so")
}

// ResolveLibPath returns the library path Open would use for libPath.
func ResolveLibPath(libPath string) string {
	if libPath != "" {
		return libPath
	}
	if p := os.Getenv("CHDB_LIB_PATH"); p != "" {
		return p
	}
	return DefaultLibPath()
}

// Result is the complete answer of one query.
type Result struct {
	// Data is the output in the requested format (empty for DDL and INSERT).
	Data []byte
	// RowsRead and BytesRead are what the engine processed.
	RowsRead, BytesRead uint64
	// RowsWritten and BytesWritten are what an INSERT wrote.
	RowsWritten, BytesWritten uint64
	// Elapsed is the engine's own timing of the query.
	Elapsed time.Duration
}

// Error is an error reported by the engine, carrying ClickHouse's error
// code (e.g. 60 for UNKNOWN_TABLE) and message.
type Error struct {
	// Code is the ClickHouse error code; 0 when the message had none.
	Code int
	// Name is the symbolic code name, e.g. "UNKNOWN_TABLE" (may be empty).
	Name string
	// Message is the exception text without the "Code: N. DB::Exception: "
	// prefix and the trailing "(NAME)".
	Message string
	// Raw is the full message as the engine reported it.
	Raw string
}

// Error returns the message in ClickHouse's own format.
func (e *Error) Error() string {
	s := fmt.Sprintf("Code: %d. DB::Exception: %s", e.Code, e.Message)
	if e.Name != "" {
		s += " (" + e.Name + ")"
	}
	return s
}

var errRe = regexp.MustCompile(`(?s)^Code: (\d+)\. (?:DB::Exception: )?(.*?)(?: \(([A-Z][A-Z0-9_]*)\))?(?: \(version [^)]*\))?\s*$`)

// ParseError turns an engine error message ("Code: 60. DB::Exception: ...
// (UNKNOWN_TABLE)") into an *Error. Messages without a code get Code 0.
func ParseError(msg string) *Error {
	msg = strings.TrimSpace(msg)
	if m := errRe.FindStringSubmatch(msg); m != nil {
		code, _ := strconv.Atoi(m[1])
		return &Error{Code: code, Name: m[3], Message: m[2], Raw: msg}
	}
	return &Error{Message: msg, Raw: msg}
}

// ErrorCode returns the ClickHouse error code in err's chain, or 0.
func ErrorCode(err error) int {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return 0
}

// lib holds the bound C functions. libchdb is loaded once per process.
type lib struct {
	connect        func(argc int32, argv **byte) unsafe.Pointer
	closeConn      func(conn unsafe.Pointer)
	queryN         func(conn unsafe.Pointer, q *byte, qlen uintptr, f *byte, flen uintptr) unsafe.Pointer
	queryParamsN   func(conn unsafe.Pointer, q *byte, qlen uintptr, f *byte, flen uintptr, names **byte, nameLens *uintptr, values **byte, valueLens *uintptr, count uintptr) unsafe.Pointer
	destroy        func(res unsafe.Pointer)
	buffer         func(res unsafe.Pointer) unsafe.Pointer
	length         func(res unsafe.Pointer) uintptr
	elapsed        func(res unsafe.Pointer) float64
	rowsRead       func(res unsafe.Pointer) uint64
	bytesRead      func(res unsafe.Pointer) uint64
	rowsWritten    func(res unsafe.Pointer) uint64
	bytesWritten   func(res unsafe.Pointer) uint64
	resultError    func(res unsafe.Pointer) unsafe.Pointer
	signalsEnabled func(enabled int32)
}

var (
	libMu     sync.Mutex
	loaded    *lib
	loadedAt  string
	openCount int
)

func loadLib(path string) (*lib, error) {
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("%w at %s (run scripts/chdb.sh fetch): %w", ErrLibraryNotFound, path, err)
	}
	libMu.Lock()
	defer libMu.Unlock()
	if loaded != nil {
		if path != loadedAt {
			return nil, fmt.Errorf("chdb: loading %s: %s is already loaded in this process", path, loadedAt)
		}
		return loaded, nil
	}
	h, err := purego.Dlopen(path, purego.RTLD_NOW|purego.RTLD_LOCAL)
	if err != nil {
		return nil, fmt.Errorf("chdb: dlopen %s: %w", path, err)
	}
	l := &lib{}
	for name, fn := range map[string]any{
		"chdb_connect":                     &l.connect,
		"chdb_close_conn":                  &l.closeConn,
		"chdb_query_n":                     &l.queryN,
		"chdb_query_with_params_n":         &l.queryParamsN,
		"chdb_destroy_query_result":        &l.destroy,
		"chdb_result_buffer":               &l.buffer,
		"chdb_result_length":               &l.length,
		"chdb_result_elapsed":              &l.elapsed,
		"chdb_result_rows_read":            &l.rowsRead,
		"chdb_result_bytes_read":           &l.bytesRead,
		"chdb_result_rows_written":         &l.rowsWritten,
		"chdb_result_bytes_written":        &l.bytesWritten,
		"chdb_result_error":                &l.resultError,
		"chdb_set_signal_handlers_enabled": &l.signalsEnabled,
	} {
		sym, err := purego.Dlsym(h, name)
		if err != nil {
			return nil, fmt.Errorf("chdb: %s lacks symbol %s (need chDB >= %s): %w", path, name, Version, err)
		}
		purego.RegisterFunc(fn, sym)
	}
	loaded, loadedAt = l, path
	return l, nil
}

// conn is one libchdb connection. Each connection is a ClickHouse session
// of its own (temporary tables, SET, USE), and connections run queries
// concurrently; one connection runs one query at a time, so mu serializes
// every call into it.
type conn struct {
	lib *lib
	mu  sync.Mutex
	// ptr is the chdb_connection queries run on; handle is what
	// chdb_connect returned (chdb_connection*), needed by close. Both are
	// nil once closed.
	ptr, handle unsafe.Pointer
}

// connect opens a connection on the data directory dir, with settings
// (--name=value) for the engine. The first one boots the engine; later
// ones join it.
func connect(l *lib, dir string, settings []string) (*conn, error) {
	args := append([]string{"clickhouse", "--path=" + dir}, settings...)
	cargs := make([]*byte, len(args)+1)
	keep := make([][]byte, len(args))
	for i, a := range args {
		keep[i] = append([]byte(a), 0)
		cargs[i] = &keep[i][0]
	}
	var handle unsafe.Pointer
	// The engine's crash handlers would replace the Go runtime's (Go turns
	// SIGSEGV into nil-pointer panics and uses SIGURG for preemption).
	// Opting out resets those signals to SIG_DFL, so save and restore them.
	withGoSignals(func() {
		l.signalsEnabled(0)
		handle = l.connect(int32(len(args)), &cargs[0])
	})
	runtime.KeepAlive(keep)
	if handle == nil {
		return nil, fmt.Errorf("chdb: connecting to data directory %s failed", dir)
	}
	ptr := *(*unsafe.Pointer)(handle)
	if ptr == nil {
		return nil, fmt.Errorf("chdb: connecting to data directory %s: engine returned no connection", dir)
	}
	return &conn{lib: l, ptr: ptr, handle: handle}, nil
}

// close ends the connection once its running query (if any) is done; its
// temporary tables go with it.
func (c *conn) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ptr == nil {
		return
	}
	withGoSignals(func() { c.lib.closeConn(c.handle) })
	c.ptr, c.handle = nil, nil
}

// Engine is one open libchdb engine on a data directory. Its own queries
// (Query, Exec) share one connection; OpenSession gives a connection of
// its own.
type Engine struct {
	lib      *lib
	path     string
	settings []string // the engine's settings, as connect takes them

	main *conn // Query and Exec
	// control runs KILL QUERY for queries whose context ended: on a
	// connection of its own, it is not queued behind them.
	control *conn
	// tags numbers queries, so that KILL QUERY finds exactly one.
	tags atomic.Uint64

	mu       sync.Mutex // guards sessions
	sessions map[*Session]struct{}
}

// Open loads libchdb and opens a persistent session on cfg.Path. Only one
// Engine may be open per process at a time (ErrAlreadyOpen).
func Open(cfg Config) (*Engine, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	dir, err := filepath.Abs(cfg.Path)
	if err != nil {
		return nil, fmt.Errorf("chdb: resolving data directory %q: %w", cfg.Path, err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("chdb: creating data directory: %w", err)
	}
	l, err := loadLib(ResolveLibPath(cfg.LibPath))
	if err != nil {
		return nil, err
	}
	libMu.Lock()
	defer libMu.Unlock()
	if openCount > 0 {
		return nil, ErrAlreadyOpen
	}
	var settings []string
	if cfg.MergeNice != 0 {
		settings = append(settings, "--os_threads_nice_value_merge_mutate="+strconv.Itoa(cfg.MergeNice))
	}
	main, err := connect(l, dir, settings)
	if err != nil {
		return nil, err
	}
	control, err := connect(l, dir, settings)
	if err != nil {
		main.close()
		return nil, fmt.Errorf("chdb: opening the control connection: %w", err)
	}
	openCount++
	return &Engine{lib: l, path: dir, settings: settings, main: main, control: control, sessions: map[*Session]struct{}{}}, nil
}

// Path returns the absolute data directory.
func (e *Engine) Path() string { return e.path }

// Close closes every open Session, then ends the engine's own session;
// later queries fail with ErrClosed. Data stays on disk. Close waits for
// running queries to finish.
func (e *Engine) Close() error {
	e.mu.Lock()
	open := e.sessions
	e.sessions = nil
	e.mu.Unlock()
	if open == nil {
		return nil // already closed
	}
	for s := range open {
		s.c.close()
	}
	e.control.close()
	e.main.close()
	libMu.Lock()
	openCount--
	libMu.Unlock()
	return nil
}

// Session is a connection of its own to the engine: a ClickHouse session
// whose temporary tables, SET and USE no other Session and not the
// Engine's own queries see, and whose queries run concurrently with
// theirs. Its temporary tables are dropped when it is closed.
type Session struct {
	e *Engine
	c *conn
}

// OpenSession opens a new Session. Close it when done; Engine.Close
// closes those still open.
func (e *Engine) OpenSession() (*Session, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.sessions == nil {
		return nil, ErrClosed
	}
	c, err := connect(e.lib, e.path, e.settings)
	if err != nil {
		return nil, fmt.Errorf("chdb: opening a session: %w", err)
	}
	s := &Session{e: e, c: c}
	e.sessions[s] = struct{}{}
	return s, nil
}

// Exec runs req in the session, as Engine.Exec does on the engine's own
// session.
func (s *Session) Exec(ctx context.Context, req Request) (*Result, error) {
	return s.e.exec(ctx, s.c, req)
}

// Close ends the session and drops its temporary tables, after its running
// query (if any) finishes. Closing twice is a no-op.
func (s *Session) Close() error {
	s.e.mu.Lock()
	delete(s.e.sessions, s)
	s.e.mu.Unlock()
	s.c.close()
	return nil
}

// Param is one named query parameter, bound to a {name:Type} placeholder by
// the engine. Value uses ClickHouse's escaped text form, exactly like the
// param_<name> URL parameter of ClickHouse's HTTP interface.
type Param struct {
	Name, Value string
}

// Request is one query with its per-query session state.
type Request struct {
	// SQL is the statement. It may contain binary data (e.g. inline Native
	// after INSERT ... FORMAT Native): it is passed with its length.
	SQL string
	// Format is the output format used when SQL has no FORMAT clause.
	// Empty means TabSeparated.
	Format string
	// Params bind {name:Type} placeholders.
	Params []Param
	// Database, if set, is made current for this query only.
	Database string
	// Settings are SET for this query only and reset to DEFAULT after it.
	// Names must be valid identifiers; values are quoted as strings
	// (ClickHouse converts them to the setting's type).
	Settings map[string]string
}

var identRe = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// Query runs sql and returns its output in format (TabSeparated if empty).
func (e *Engine) Query(ctx context.Context, sql, format string) (*Result, error) {
	return e.Exec(ctx, Request{SQL: sql, Format: format})
}

// Exec runs req on the engine's own session. The context is checked before
// the query starts; if it ends while the query runs, the query is killed
// (KILL QUERY from the control connection) and Exec returns the engine's
// QUERY_WAS_CANCELLED error (code 394) wrapped with ctx.Err().
func (e *Engine) Exec(ctx context.Context, req Request) (*Result, error) {
	return e.exec(ctx, e.main, req)
}

// cancelTag is the setting that marks a query for KILL QUERY. The engine
// has no custom settings and a query id cannot be chosen, so the tag is
// log_comment (shown in system.processes.Settings); there is no query log
// it could otherwise reach. A request that sets log_comment itself keeps
// it, and is then not cancelled when its context ends.
const cancelTag = "log_comment"

func (e *Engine) exec(ctx context.Context, c *conn, req Request) (*Result, error) {
	for name := range req.Settings {
		if !identRe.MatchString(name) {
			return nil, fmt.Errorf("chdb: setting name %q is not an identifier", name)
		}
	}
	if strings.ContainsRune(req.Database, 0) {
		return nil, fmt.Errorf("chdb: database name contains NUL")
	}
	if req.Format == "" {
		req.Format = "TabSeparated"
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("chdb: query not started: %w", err)
	}
	if c.ptr == nil {
		return nil, ErrClosed
	}
	tag := ""
	if _, own := req.Settings[cancelTag]; !own && ctx.Done() != nil {
		tag = fmt.Sprintf("chdb-query-%d", e.tags.Add(1))
		req.Settings = maps.Clone(req.Settings)
		if req.Settings == nil {
			req.Settings = map[string]string{}
		}
		req.Settings[cancelTag] = tag
	}

	// Per-request state is applied, and restored however the query ends,
	// while the lock is held, so no other query ever sees it.
	var restore []string
	if req.Database != "" {
		restore = append(restore, "USE default")
		if _, err := c.run("USE "+QuoteIdent(req.Database), "TabSeparated", nil); err != nil {
			return nil, c.restore(err, restore)
		}
	}
	if len(req.Settings) > 0 {
		var set, reset []string
		for k, v := range req.Settings {
			set = append(set, k+" = "+QuoteString(v))
			reset = append(reset, k+" = DEFAULT")
		}
		restore = append(restore, "SET "+strings.Join(reset, ", "))
		if _, err := c.run("SET "+strings.Join(set, ", "), "TabSeparated", nil); err != nil {
			return nil, c.restore(err, restore)
		}
	}
	var killErr error
	stopKill := func() bool { return true }
	finished, killed := make(chan struct{}), make(chan struct{})
	if tag != "" {
		stopKill = context.AfterFunc(ctx, func() {
			defer close(killed)
			killErr = e.killUntil(tag, finished)
		})
	}
	res, err := c.run(req.SQL, req.Format, req.Params)
	close(finished)
	if !stopKill() {
		<-killed // the KILL has finished before the tag is reset
		if err != nil {
			err = fmt.Errorf("chdb: query killed as its context ended (%w): %w", ctx.Err(), errors.Join(err, killErr))
		}
	}
	if err := c.restore(nil, restore); err != nil {
		return nil, err
	}
	return res, err
}

// killInterval is how often killUntil repeats KILL QUERY: a context that
// ends just as its query starts may be seen before the engine lists the
// query.
const killInterval = 100 * time.Millisecond

// killUntil cancels the running query tagged tag, from the control
// connection, repeating until finished is closed (the query's call has
// returned QUERY_WAS_CANCELLED, or completed). KILL QUERY ... ASYNC asks
// the query to stop and returns at once.
func (e *Engine) killUntil(tag string, finished <-chan struct{}) error {
	kill := Request{SQL: "KILL QUERY WHERE Settings[" + QuoteString(cancelTag) + "] = " + QuoteString(tag) + " ASYNC"}
	for {
		if _, err := e.exec(context.Background(), e.control, kill); err != nil {
			return fmt.Errorf("chdb: killing the query tagged %s: %w", tag, err)
		}
		select {
		case <-finished:
			return nil
		case <-time.After(killInterval):
		}
	}
}

// restore runs the statements that undo per-request state. A failure means
// the session is no longer clean; it is reported (joined to cause).
func (c *conn) restore(cause error, stmts []string) error {
	for _, stmt := range stmts {
		if _, err := c.run(stmt, "TabSeparated", nil); err != nil {
			return errors.Join(cause, fmt.Errorf("chdb: restoring session state (%s): %w", stmt, err))
		}
	}
	return cause
}

// run executes one statement; c.mu must be held.
func (c *conn) run(sql, format string, params []Param) (*Result, error) {
	q := []byte(sql)
	if len(q) == 0 {
		return nil, &Error{Code: 62, Name: "SYNTAX_ERROR", Message: "Empty query", Raw: "Empty query"}
	}
	f := []byte(format)
	var res unsafe.Pointer
	if len(params) == 0 {
		res = c.lib.queryN(c.ptr, &q[0], uintptr(len(q)), &f[0], uintptr(len(f)))
	} else {
		names := make([]*byte, len(params))
		nameLens := make([]uintptr, len(params))
		values := make([]*byte, len(params))
		valueLens := make([]uintptr, len(params))
		keep := make([][]byte, 0, 2*len(params))
		for i, p := range params {
			n := append([]byte(p.Name), 0)
			v := append([]byte(p.Value), 0) // never empty, so &v[0] is valid
			keep = append(keep, n, v)
			names[i], nameLens[i] = &n[0], uintptr(len(p.Name))
			values[i], valueLens[i] = &v[0], uintptr(len(p.Value))
		}
		res = c.lib.queryParamsN(c.ptr, &q[0], uintptr(len(q)), &f[0], uintptr(len(f)),
			&names[0], &nameLens[0], &values[0], &valueLens[0], uintptr(len(params)))
		runtime.KeepAlive(keep)
	}
	runtime.KeepAlive(q)
	runtime.KeepAlive(f)
	if res == nil {
		return nil, &Error{Message: "engine returned no result", Raw: "engine returned no result"}
	}
	defer c.lib.destroy(res)
	if p := c.lib.resultError(res); p != nil {
		if msg := cString(p); msg != "" {
			return nil, ParseError(msg)
		}
	}
	r := &Result{
		RowsRead:     c.lib.rowsRead(res),
		BytesRead:    c.lib.bytesRead(res),
		RowsWritten:  c.lib.rowsWritten(res),
		BytesWritten: c.lib.bytesWritten(res),
		Elapsed:      time.Duration(c.lib.elapsed(res) * float64(time.Second)),
	}
	if n := c.lib.length(res); n > 0 {
		if buf := c.lib.buffer(res); buf != nil {
			r.Data = append([]byte(nil), unsafe.Slice((*byte)(buf), n)...)
		}
	}
	return r, nil
}

func cString(p unsafe.Pointer) string {
	n := 0
	for *(*byte)(unsafe.Add(p, n)) != 0 {
		n++
	}
	return string(unsafe.Slice((*byte)(p), n))
}

// QuoteIdent quotes a name as a ClickHouse identifier (`name`).
func QuoteIdent(s string) string {
	return "`" + strings.NewReplacer("\\", "\\\\", "`", "\\`").Replace(s) + "`"
}

// QuoteString quotes s as a ClickHouse string literal.
func QuoteString(s string) string {
	var b strings.Builder
	b.WriteByte('\'')
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '\\':
			b.WriteString(`\\`)
		case '\'':
			b.WriteString(`\'`)
		case 0:
			b.WriteString(`\0`)
		case '\n':
			b.WriteString(`\n`)
		case '\r':
			b.WriteString(`\r`)
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('\'')
	return b.String()
}

// goSignals are the signals whose handlers the Go runtime installs and the
// engine's opt-out resets to SIG_DFL.
var goSignals = []syscall.Signal{
	syscall.SIGABRT, syscall.SIGSEGV, syscall.SIGILL, syscall.SIGBUS,
	syscall.SIGSYS, syscall.SIGFPE, syscall.SIGTSTP, syscall.SIGTRAP,
	syscall.SIGURG, syscall.SIGPIPE, syscall.SIGPROF,
}

// kernelSigaction mirrors the Linux kernel's struct sigaction (x86-64/arm64).
type kernelSigaction struct {
	handler, flags, restorer, mask uint64
}

// withGoSignals runs f and then restores the handlers of goSignals as they
// were before f.
func withGoSignals(f func()) {
	saved := make([]kernelSigaction, len(goSignals))
	for i, s := range goSignals {
		syscall.RawSyscall6(syscall.SYS_RT_SIGACTION, uintptr(s), 0,
			uintptr(unsafe.Pointer(&saved[i])), 8, 0, 0)
	}
	defer func() {
		for i, s := range goSignals {
			syscall.RawSyscall6(syscall.SYS_RT_SIGACTION, uintptr(s),
				uintptr(unsafe.Pointer(&saved[i])), 0, 8, 0, 0)
		}
	}()
	f()
}
