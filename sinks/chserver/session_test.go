package chserver_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/sora3web/telemetry/internal/testenv"
)

// code sends a request and returns ClickHouse's error code of its answer
// ("" for success) and the body.
func code(t *testing.T, query string, params url.Values, body string) (string, string) {
	t.Helper()
	st, h, b := call(t, "POST", query, params, []byte(body), nil)
	if st == http.StatusOK {
		return "", string(b)
	}
	return h.Get("X-ClickHouse-Exception-Code"), string(b)
}

// TestTemporaryTablesBelongToTheirSession: a session's temporary table is
// created, filled over HTTP and read back in that session only; another
// session and sessionless requests do not see it; a temporary table shadows
// an ordinary one of the same name only when unqualified; a sessionless
// CREATE TEMPORARY TABLE lasts one request, as in ClickHouse; the table
// goes when its session expires.
func TestTemporaryTablesBelongToTheirSession(t *testing.T) {
	a := url.Values{"session_id": {"tmp-a"}}
	b := url.Values{"session_id": {"tmp-b"}}
	mustOK(t, "POST", "CREATE TABLE IF NOT EXISTS default.shadowed (name String) ENGINE = Memory", nil, nil)
	mustOK(t, "POST", "INSERT INTO default.shadowed VALUES ('ordinary')", nil, nil)
	mustOK(t, "POST", "CREATE TEMPORARY TABLE shadowed (name String)", a, nil)
	mustOK(t, "POST", "CREATE TEMPORARY TABLE `odd name` (id UInt32, name String)", a, nil)
	mustOK(t, "POST", "INSERT INTO shadowed FORMAT TSV", a, []byte("temporary\n"))
	mustOK(t, "POST", "INSERT INTO `odd name` FORMAT TSV", a, []byte("1\tx\n2\ty\n"))
	for q, want := range map[string]string{
		"SELECT id, name FROM `odd name` ORDER BY id": "1\tx\n2\ty\n",
		"SELECT name FROM shadowed":                   "temporary\n",
		"SELECT name FROM default.shadowed":           "ordinary\n",
	} {
		if got := mustOK(t, "POST", q, a, nil); string(got) != want {
			t.Errorf("session tmp-a: %s = %q, want %q", q, got, want)
		}
	}
	for _, other := range []url.Values{b, nil} {
		if c, body := code(t, "SELECT * FROM `odd name`", other, ""); c != "60" {
			t.Errorf("%v reads tmp-a's temporary table: code %q %s", other, c, body)
		}
		if got := mustOK(t, "POST", "SELECT name FROM shadowed", other, nil); string(got) != "ordinary\n" {
			t.Errorf("%v sees tmp-a's temporary shadowed: %q", other, got)
		}
	}

	mustOK(t, "POST", "CREATE TEMPORARY TABLE one_request (x UInt8)", nil, nil)
	if c, body := code(t, "SELECT * FROM one_request", nil, ""); c != "60" {
		t.Errorf("a sessionless temporary table outlived its request: code %q %s", c, body)
	}

	short := url.Values{"session_id": {"tmp-short"}, "session_timeout": {"1"}}
	mustOK(t, "POST", "CREATE TEMPORARY TABLE brief (x UInt8)", short, nil)
	mustOK(t, "POST", "SELECT * FROM brief", short, nil)
	time.Sleep(1100 * time.Millisecond) // past session_timeout=1; a request would renew it
	if c, body := code(t, "SELECT 1", url.Values{"session_id": {"tmp-short"}, "session_check": {"1"}}, ""); c != "372" {
		t.Errorf("the session did not expire: code %q %s", c, body)
	}
	if c, body := code(t, "SELECT * FROM brief", url.Values{"session_id": {"tmp-short"}}, ""); c != "60" {
		t.Errorf("the temporary table outlived its expired session: code %q %s", c, body)
	}
}

// TestClientDisconnectKillsQuery: a query that would run for 1000 s stops
// when its client goes away, with or without a session, and the
// connection it ran on answers the next query.
func TestClientDisconnectKillsQuery(t *testing.T) {
	watcher := url.Values{"session_id": {"disconnect-watcher"}} // a connection of its own
	for name, params := range map[string]url.Values{
		"sessionless": nil,
		"session":     {"session_id": {"disconnect-victim"}},
	} {
		t.Run(name, func(t *testing.T) {
			marker := "victim-" + name
			running := "SELECT count() FROM system.processes WHERE query LIKE '%" + marker + "%' AND query NOT LIKE '%system.processes%'"
			q := url.Values{"query": {"SELECT sleepEachRow(1), '" + marker + "' FROM numbers(1000) SETTINGS max_block_size = 1"}}
			for k, v := range params {
				q[k] = v
			}
			cancel, done := postAway(t, q, nil)
			defer cancel()
			waitFor(t, 30*time.Second, func() bool { return string(mustOK(t, "POST", running, watcher, nil)) == "1\n" })
			cancel() // the client goes away
			if err := <-done; !errors.Is(err, context.Canceled) {
				t.Fatalf("client: %v", err)
			}
			waitFor(t, 30*time.Second, func() bool { return string(mustOK(t, "POST", running, watcher, nil)) == "0\n" })
			if got := mustOK(t, "POST", "SELECT 'next'", params, nil); string(got) != "next\n" {
				t.Fatalf("the next query on the same connection: %q", got)
			}
		})
	}
}

// TestClientDisconnectDoesNotSplitAnInsertFromItsViews: an insert whose
// body has arrived runs to its end when its client goes away, its
// materialized view included. Killed between the table and the view, it
// would leave rows the view never counted (a consumer SIGKILLed mid-insert
// left rollups_daily short of events), and no client is left to retry.
func TestClientDisconnectDoesNotSplitAnInsertFromItsViews(t *testing.T) {
	watcher := url.Values{"session_id": {"insert-disconnect-watcher"}}
	for _, q := range []string{
		"CREATE DATABASE IF NOT EXISTS insert_disconnect",
		"CREATE OR REPLACE TABLE insert_disconnect.src (x UInt64) ENGINE = MergeTree ORDER BY x",
		"CREATE OR REPLACE TABLE insert_disconnect.dst (x UInt64) ENGINE = MergeTree ORDER BY x",
		// The view takes 2 s: 4 rows at 0.5 s each.
		"CREATE MATERIALIZED VIEW IF NOT EXISTS insert_disconnect.slow TO insert_disconnect.dst AS SELECT x FROM insert_disconnect.src WHERE sleepEachRow(0.5) = 0",
	} {
		mustOK(t, "POST", q, nil, nil)
	}
	running := "SELECT count() FROM system.processes WHERE query LIKE '%insert_disconnect.src%' AND query NOT LIKE '%system.processes%'"
	q := url.Values{"query": {"INSERT INTO insert_disconnect.src SETTINGS max_block_size = 1 FORMAT TSV"}}
	cancel, done := postAway(t, q, strings.NewReader("1\n2\n3\n4\n"))
	defer cancel()
	waitFor(t, 30*time.Second, func() bool { return string(mustOK(t, "POST", running, watcher, nil)) == "1\n" })
	cancel() // the client goes away mid-insert
	<-done
	waitFor(t, 30*time.Second, func() bool { return string(mustOK(t, "POST", running, watcher, nil)) == "0\n" })
	src := string(mustOK(t, "POST", "SELECT count() FROM insert_disconnect.src", nil, nil))
	dst := string(mustOK(t, "POST", "SELECT count() FROM insert_disconnect.dst", nil, nil))
	if src != "4\n" || dst != "4\n" {
		t.Fatalf("after the client went away mid-insert: table %q rows, view %q rows; want 4 and 4", src, dst)
	}
}

// postAway posts the query q (with body) in the background; cancel makes
// its client go away mid-request. done gets the client's error, or one
// saying the query answered.
func postAway(t *testing.T, q url.Values, body io.Reader) (cancel func(), done <-chan error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, "POST", "http://"+testenv.ClickHouse(t)+"/?"+q.Encode(), body)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	ch := make(chan error, 1)
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			err = errors.New("the query answered " + resp.Status)
		}
		ch <- err
	}()
	return cancel, ch
}

// waitFor polls cond until it holds, failing the test after limit.
func waitFor(t *testing.T, limit time.Duration, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(limit); !cond(); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %v", limit)
		}
	}
}
