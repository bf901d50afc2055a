package chdb

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

var (
	sharedOnce sync.Once
	shared     *Engine
	sharedErr  error
)

// engine returns the one Engine of this test process (libchdb allows one).
func engine(t *testing.T) *Engine {
	t.Helper()
	sharedOnce.Do(func() {
		dir, err := os.MkdirTemp("", "chdb-test-")
		if err != nil {
			sharedErr = err
			return
		}
		shared, sharedErr = Open(Config{Path: dir})
	})
	if sharedErr != nil {
		t.Fatalf("opening engine (run scripts/chdb.sh fetch first): %v", sharedErr)
	}
	return shared
}

func TestMain(m *testing.M) {
	if dir := os.Getenv("CHDB_TEST_CHILD_DIR"); dir != "" {
		os.Exit(child(dir, os.Getenv("CHDB_TEST_CHILD_SQL")))
	}
	code := m.Run()
	if shared != nil {
		shared.Close()
		os.RemoveAll(shared.Path())
	}
	os.Exit(code)
}

// child opens dir in a fresh process, runs sql and prints the result.
func child(dir, sql string) int {
	nice, _ := strconv.Atoi(os.Getenv("CHDB_TEST_CHILD_NICE"))
	e, err := Open(Config{Path: dir, MergeNice: nice})
	if err != nil {
		os.Stderr.WriteString(err.Error())
		return 2
	}
	defer e.Close()
	for _, q := range strings.Split(sql, ";") {
		r, err := e.Query(context.Background(), q, "TabSeparated")
		if err != nil {
			os.Stderr.WriteString(err.Error())
			return 3
		}
		os.Stdout.Write(r.Data)
	}
	return 0
}

func runChild(t *testing.T, dir, sql string, env ...string) string {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(append(os.Environ(), "CHDB_TEST_CHILD_DIR="+dir, "CHDB_TEST_CHILD_SQL="+sql), env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("child process %q: %v: %s", sql, err, stderr.String())
	}
	return string(out)
}

func TestTablesSurviveProcessRestart(t *testing.T) {
	dir := t.TempDir()
	runChild(t, dir, "CREATE TABLE keep (a UInt32) ENGINE = MergeTree ORDER BY a;INSERT INTO keep VALUES (1), (2), (39)")
	if got := runChild(t, dir, "SELECT count(), sum(a) FROM keep"); got != "3\t42\n" {
		t.Fatalf("after restart got %q, want %q", got, "3\t42\n")
	}
}

// TestMergeNiceIsTheEnginesSetting: Config.MergeNice reaches the engine
// as its server setting, which it applies to merge threads while they
// merge; left 0, the engine's default (0) stays.
func TestMergeNiceIsTheEnginesSetting(t *testing.T) {
	q := "SELECT value FROM system.server_settings WHERE name = 'os_threads_nice_value_merge_mutate'"
	for _, c := range []struct{ nice, want string }{{"10", "10\n"}, {"0", "0\n"}} {
		if got := runChild(t, t.TempDir(), q, "CHDB_TEST_CHILD_NICE="+c.nice); got != c.want {
			t.Errorf("MergeNice %s: the engine's setting is %q, want %q", c.nice, got, c.want)
		}
	}
}

func TestOnlyOneEnginePerProcess(t *testing.T) {
	engine(t)
	_, err := Open(Config{Path: t.TempDir()})
	if !errors.Is(err, ErrAlreadyOpen) {
		t.Fatalf("second Open: got %v, want ErrAlreadyOpen", err)
	}
}

func TestConfigValidate(t *testing.T) {
	for _, c := range []Config{{}, {Path: ":memory:"}, {Path: "x", MergeNice: -1}, {Path: "x", MergeNice: 20}} {
		if c.Validate() == nil {
			t.Errorf("Validate(%+v) = nil, want error", c)
		}
	}
	_, err := Open(Config{Path: t.TempDir(), LibPath: "/nonexistent/libchdb.so"})
	if !errors.Is(err, ErrLibraryNotFound) {
		t.Fatalf("opening with a missing library: %v, want ErrLibraryNotFound", err)
	}
	t.Setenv("CHDB_LIB_PATH", "/x/libchdb.so")
	if got := ResolveLibPath(""); got != "/x/libchdb.so" {
		t.Errorf("ResolveLibPath with CHDB_LIB_PATH = %q", got)
	}
	t.Setenv("CHDB_LIB_PATH", "")
	t.Setenv("TELEMETRY_CACHE", "/c")
	if got := ResolveLibPath(""); got != "/c/chdb/"+Version+"/libchdb.so" {
		t.Errorf("ResolveLibPath default = %q", got)
	}
}

func TestQueryResultAndStats(t *testing.T) {
	e := engine(t)
	r, err := e.Query(context.Background(), "SELECT number FROM numbers(5)", "CSV")
	if err != nil {
		t.Fatal(err)
	}
	if string(r.Data) != "0\n1\n2\n3\n4\n" {
		t.Fatalf("data %q", r.Data)
	}
	if r.RowsRead != 5 || r.BytesRead != 40 || r.Elapsed <= 0 {
		t.Fatalf("stats rows=%d bytes=%d elapsed=%v", r.RowsRead, r.BytesRead, r.Elapsed)
	}
}

func TestErrorsCarryCode(t *testing.T) {
	e := engine(t)
	_, err := e.Query(context.Background(), "SELECT * FROM no_such_table", "")
	var ce *Error
	if !errors.As(err, &ce) {
		t.Fatalf("got %T %v, want *Error", err, err)
	}
	if ce.Code != 60 || ce.Name != "UNKNOWN_TABLE" || !strings.Contains(ce.Message, "no_such_table") {
		t.Fatalf("got %+v", ce)
	}
	if !strings.HasPrefix(ce.Error(), "Code: 60. DB::Exception: ") || !strings.HasSuffix(ce.Error(), "(UNKNOWN_TABLE)") {
		t.Fatalf("Error() = %q", ce.Error())
	}
	if _, err := e.Query(context.Background(), "SELEC 1", ""); ErrorCode(err) != 62 {
		t.Fatalf("syntax error code: %v", err)
	}
}

func TestParseError(t *testing.T) {
	for _, tc := range []struct {
		in        string
		code      int
		name, msg string
	}{
		{"Code: 60. DB::Exception: Unknown table x. (UNKNOWN_TABLE)", 60, "UNKNOWN_TABLE", "Unknown table x."},
		{"Code: 516. DB::Exception: default: Authentication failed. (AUTHENTICATION_FAILED) (version 26.5.1.1)", 516, "AUTHENTICATION_FAILED", "default: Authentication failed."},
		{"Code: 1. something", 1, "", "something"},
		{"plain failure", 0, "", "plain failure"},
	} {
		e := ParseError(tc.in)
		if e.Code != tc.code || e.Name != tc.name || e.Message != tc.msg {
			t.Errorf("ParseError(%q) = %+v", tc.in, e)
		}
	}
}

// Native is binary and full of zero bytes: it must survive inline in the SQL.
func TestBinaryInlineInsertAndInfile(t *testing.T) {
	e := engine(t)
	ctx := context.Background()
	if _, err := e.Query(ctx, "CREATE TABLE bin (a UInt32, s String) ENGINE = MergeTree ORDER BY a", ""); err != nil {
		t.Fatal(err)
	}
	nat, err := e.Query(ctx, "SELECT number::UInt32 AS a, repeat('x', number) AS s FROM numbers(1000)", "Native")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(nat.Data, []byte{0}) {
		t.Fatal("Native output has no zero byte; the test would prove nothing")
	}
	if _, err := e.Query(ctx, "INSERT INTO bin FORMAT Native\n"+string(nat.Data), ""); err != nil {
		t.Fatalf("inline Native insert: %v", err)
	}
	f := t.TempDir() + "/data.native"
	os.WriteFile(f, nat.Data, 0o600)
	if _, err := e.Query(ctx, "INSERT INTO bin (a, s) FROM INFILE "+QuoteString(f)+" FORMAT Native", ""); err != nil {
		t.Fatalf("INFILE Native insert: %v", err)
	}
	back, err := e.Query(ctx, "SELECT a, s FROM bin ORDER BY a LIMIT 1 BY a", "Native")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(back.Data, nat.Data) {
		t.Fatalf("round trip differs: %d vs %d bytes", len(back.Data), len(nat.Data))
	}
	cnt, _ := e.Query(ctx, "SELECT count() FROM bin", "")
	if string(cnt.Data) != "2000\n" {
		t.Fatalf("count %q", cnt.Data)
	}
}

func TestParamsAreBoundNotSpliced(t *testing.T) {
	e := engine(t)
	r, err := e.Exec(context.Background(), Request{
		SQL:    "SELECT {n:UInt32} + 1, {s:String}, length({s:String})",
		Format: "TabSeparatedRaw",
		Params: []Param{{"n", "41"}, {"s", `it\'s'); DROP TABLE x; --\t`}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := "42\tit's'); DROP TABLE x; --\t\t25\n"; string(r.Data) != want {
		t.Fatalf("got %q want %q", r.Data, want)
	}
	_, err = e.Exec(context.Background(), Request{SQL: "SELECT {n:UInt32}", Params: []Param{{"n", "nope"}}})
	if ErrorCode(err) == 0 {
		t.Fatalf("bad UInt32 param: %v", err)
	}
}

func TestSettingsAndDatabaseAreScopedToOneQuery(t *testing.T) {
	e := engine(t)
	ctx := context.Background()
	if _, err := e.Query(ctx, "CREATE DATABASE IF NOT EXISTS other", ""); err != nil {
		t.Fatal(err)
	}
	r, err := e.Exec(ctx, Request{
		SQL:      "SELECT getSetting('max_execution_time'), currentDatabase()",
		Settings: map[string]string{"max_execution_time": "7"},
		Database: "other",
	})
	if err != nil {
		t.Fatal(err)
	}
	if string(r.Data) != "7\tother\n" {
		t.Fatalf("inside: %q", r.Data)
	}
	r, err = e.Query(ctx, "SELECT getSetting('max_execution_time'), currentDatabase()", "")
	if err != nil {
		t.Fatal(err)
	}
	if string(r.Data) != "0\tdefault\n" {
		t.Fatalf("after: %q (state leaked)", r.Data)
	}
	if _, err := e.Exec(ctx, Request{SQL: "SELECT 1", Settings: map[string]string{"bad name": "1"}}); err == nil {
		t.Fatal("invalid setting name accepted")
	}
}

func TestGoRuntimeSignalsSurviveEngine(t *testing.T) {
	e := engine(t)
	if _, err := e.Query(context.Background(), "SELECT 1", ""); err != nil {
		t.Fatal(err)
	}
	var got any
	func() {
		defer func() { got = recover() }()
		var p *int
		_ = *p // must be a Go panic, not a crash in the engine's handler
	}()
	if got == nil {
		t.Fatal("nil dereference did not panic")
	}
}

func TestParallelQueries(t *testing.T) {
	e := engine(t)
	var wg sync.WaitGroup
	errs := make(chan error, 8*5)
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 5; i++ {
				r, err := e.Query(context.Background(), "SELECT sum(number) FROM numbers(1000000)", "")
				if err == nil && string(r.Data) != "499999500000\n" {
					err = errors.New("wrong sum " + string(r.Data))
				}
				if err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestContextCanceledBeforeStart(t *testing.T) {
	e := engine(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := e.Query(ctx, "SELECT 1", ""); !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v", err)
	}
}

func TestSessionsKeepTemporaryTablesApart(t *testing.T) {
	e := engine(t)
	ctx := context.Background()
	a, err := e.OpenSession()
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := e.OpenSession()
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	for _, sql := range []string{"CREATE TEMPORARY TABLE tmp (x UInt8)", "INSERT INTO tmp VALUES (7)"} {
		if _, err := a.Exec(ctx, Request{SQL: sql}); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	if r, err := a.Exec(ctx, Request{SQL: "SELECT x FROM tmp"}); err != nil || string(r.Data) != "7\n" {
		t.Fatalf("own session reads %v, %v; want 7", r, err)
	}
	if _, err := b.Exec(ctx, Request{SQL: "SELECT x FROM tmp"}); ErrorCode(err) != 60 {
		t.Fatalf("another session reads the temporary table: %v, want code 60", err)
	}
	if _, err := e.Query(ctx, "SELECT x FROM tmp", ""); ErrorCode(err) != 60 {
		t.Fatalf("the engine's own session reads the temporary table: %v, want code 60", err)
	}
	a.Close()
	if _, err := a.Exec(ctx, Request{SQL: "SELECT 1"}); !errors.Is(err, ErrClosed) {
		t.Fatalf("closed session: %v, want ErrClosed", err)
	}
}

// TestContextEndKillsRunningQuery: a query that would run for 1000 s is
// killed when its context is cancelled, and the engine's connection is
// free for the next query at once.
func TestContextEndKillsRunningQuery(t *testing.T) {
	e := engine(t)
	watcher, err := e.OpenSession()
	if err != nil {
		t.Fatal(err)
	}
	defer watcher.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	const marker = "kill-me-4711"
	done := make(chan error, 1)
	go func() {
		_, err := e.Query(ctx, "SELECT sleepEachRow(1), '"+marker+"' FROM numbers(1000) SETTINGS max_block_size = 1", "")
		done <- err
	}()
	// The watcher runs beside the long query: it is a connection of its own.
	waitFor(t, func() bool {
		r, err := watcher.Exec(context.Background(), Request{SQL: "SELECT count() FROM system.processes WHERE query LIKE '%" + marker + "%' AND query NOT LIKE '%system.processes%'"})
		return err == nil && string(r.Data) == "1\n"
	})
	cancel()
	select {
	case err := <-done:
		if ErrorCode(err) != 394 || !errors.Is(err, context.Canceled) {
			t.Fatalf("killed query returned %v; want code 394 wrapping context.Canceled", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the query still runs 30 s after its context was cancelled")
	}
	if r, err := e.Query(context.Background(), "SELECT getSetting('log_comment')", ""); err != nil || string(r.Data) != "\n" {
		t.Fatalf("after the kill: %v, %v; want an empty log_comment (the tag reset)", r, err)
	}
}

// waitFor polls cond until it holds, failing the test after 30 s.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); !cond(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 30 s")
		}
	}
}
