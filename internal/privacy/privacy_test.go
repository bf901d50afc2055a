package privacy

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/sora3web/telemetry/schema"
)

type exportDoc struct {
	SubjectType string                      `json:"subject_type"`
	Tables      map[string][]map[string]any `json:"tables"`
}

func (e *env) status(t *testing.T, q string) StatusResponse {
	t.Helper()
	var st StatusResponse
	if err := json.Unmarshal(e.mustOK(t, e.call(t, "GET", "/v1/privacy/status?"+q, testToken, "")), &st); err != nil {
		t.Fatal(err)
	}
	return st
}

func rows(st StatusResponse) map[string]uint64 {
	out := map[string]uint64{}
	for _, tc := range st.Tables {
		out[tc.Table] = tc.Rows
	}
	return out
}

// TestAliasLinksAndGroupMembersAreExportedAndDeleted: the rows an alias
// and a group call leave in identity_links and group_members (through the
// materialized views of migration 0007) belong to their subjects: the
// user, and the earlier identifier the alias linked. Export and status
// show them, a deletion removes them and leaves other subjects' rows.
func TestAliasLinksAndGroupMembersAreExportedAndDeleted(t *testing.T) {
	e := newEnv(t)
	e.seedEvent(t, "alias", "user-a", "anon-old", "anon-old", "")
	e.seedEvent(t, "group", "user-a", "anon-new", "", "org-1")
	e.seedEvent(t, "group", "user-b", "anon-b", "", "org-1")

	if got := rows(e.status(t, "user_id=user-a")); !reflect.DeepEqual(got, map[string]uint64{"events": 2, "errors": 0, "identity_links": 1, "group_members": 1, "corrections": 0}) {
		t.Fatalf("status of the user: %v", got)
	}
	var doc exportDoc
	if err := json.Unmarshal(e.mustOK(t, e.call(t, "GET", "/v1/privacy/export?anonymous_id=anon-old", testToken, "")), &doc); err != nil {
		t.Fatal(err)
	}
	if l := doc.Tables["identity_links"]; len(l) != 1 || l[0]["previous_id"] != "anon-old" || l[0]["user_id"] != "user-a" {
		t.Fatalf("export of the earlier anonymous id: links %v", l)
	}
	var del DeleteResponse
	if err := json.Unmarshal(e.mustOK(t, e.call(t, "POST", "/v1/privacy/delete", testToken, `{"user_id":"user-a"}`)), &del); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(del.Deleted, []TableCount{{"events", 2}, {"errors", 0}, {"identity_links", 1}, {"group_members", 1}, {"corrections", 0}}) {
		t.Fatalf("delete answered %+v", del)
	}
	if got := rows(e.status(t, "anonymous_id=anon-old")); got["identity_links"] != 0 {
		t.Fatalf("the link survives the deletion of its user: %v", got)
	}
	if got := rows(e.status(t, "user_id=user-b")); got["group_members"] != 1 || got["events"] != 1 {
		t.Fatalf("another member of the group was touched: %v", got)
	}
	// A replayed alias that links the deleted user as its earlier id is
	// held data too: the consumer drops it; one linking someone else not.
	held := func(previous string) *schema.Enriched {
		return &schema.Enriched{Event: schema.Event{Type: schema.TypeAlias, UserID: "user-z", PreviousID: previous}, ReceivedAt: del.DeletedAt}
	}
	if !e.svc.Registry().Drop(held("user-a")) || e.svc.Registry().Drop(held("user-b")) {
		t.Fatal("the consumer filter does not hold an alias's previous_id to the deletion")
	}
}

// TestExportDeleteStatusThroughHTTP seeds rows for three subjects, then
// exports, deletes and checks one of them over the admin API against the
// embedded engine.
func TestExportDeleteStatusThroughHTTP(t *testing.T) {
	e := newEnv(t)
	e.seed(t, "user-del", "anon-del", 5) // 5 events, 2 of them client_error
	e.seed(t, "user-keep", "anon-keep", 4)
	e.seed(t, "", "anon-only", 3)

	st := e.status(t, "user_id=user-del")
	if got := rows(st); !reflect.DeepEqual(got, map[string]uint64{"events": 5, "errors": 2, "identity_links": 0, "group_members": 0, "corrections": 0}) || st.Tombstoned || st.OptedOut {
		t.Fatalf("status before delete: %+v", st)
	}

	var doc exportDoc
	if err := json.Unmarshal(e.mustOK(t, e.call(t, "GET", "/v1/privacy/export?user_id=user-del", testToken, "")), &doc); err != nil {
		t.Fatal(err)
	}
	if len(doc.Tables["events"]) != 5 || len(doc.Tables["errors"]) != 2 || doc.SubjectType != "user_id" {
		t.Fatalf("export: %d events, %d errors, subject %q", len(doc.Tables["events"]), len(doc.Tables["errors"]), doc.SubjectType)
	}
	for _, row := range append(doc.Tables["events"], doc.Tables["errors"]...) {
		if row["user_id"] != "user-del" || row["event_id"] == "" {
			t.Fatalf("exported a row of another subject or without id: %v", row)
		}
	}
	if ev := doc.Tables["events"][0]; ev["prompt"] != "a fox in the snow" || ev["ip"] != "198.51.100.0" {
		t.Fatalf("export misses stored columns: %v", ev)
	}

	w := e.call(t, "GET", "/v1/privacy/export?anonymous_id=anon-del", testToken, "", "Accept", "application/x-ndjson")
	if ct := w.Header().Get("Content-Type"); ct != "application/x-ndjson" {
		t.Fatalf("NDJSON export Content-Type %q", ct)
	}
	perTable := map[string]int{}
	sc := bufio.NewScanner(bytes.NewReader(e.mustOK(t, w)))
	for sc.Scan() {
		var l ExportLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		perTable[l.Table]++
	}
	if !reflect.DeepEqual(perTable, map[string]int{"events": 5, "errors": 2}) {
		t.Fatalf("NDJSON export lines per table: %v", perTable)
	}

	var del DeleteResponse
	if err := json.Unmarshal(e.mustOK(t, e.call(t, "POST", "/v1/privacy/delete", testToken, `{"user_id":"user-del"}`)), &del); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(del.Deleted, []TableCount{{"events", 5}, {"errors", 2}, {"identity_links", 0}, {"group_members", 0}, {"corrections", 0}}) || !del.Tombstoned {
		t.Fatalf("delete answered %+v, want 5 events and 2 errors removed", del)
	}
	if err := json.Unmarshal(e.mustOK(t, e.call(t, "GET", "/v1/privacy/export?user_id=user-del", testToken, "")), &doc); err != nil {
		t.Fatal(err)
	}
	if len(doc.Tables["events"])+len(doc.Tables["errors"]) != 0 {
		t.Fatalf("export after delete: %v", doc.Tables)
	}
	if st := e.status(t, "user_id=user-del"); rows(st)["events"] != 0 || rows(st)["errors"] != 0 || !st.Tombstoned {
		t.Fatalf("status after delete: %+v", st)
	}
	if st := e.status(t, "user_id=user-keep"); !reflect.DeepEqual(rows(st), map[string]uint64{"events": 4, "errors": 2, "identity_links": 0, "group_members": 0, "corrections": 0}) || st.Tombstoned {
		t.Fatalf("another subject was touched: %+v", st)
	}
	if st := e.status(t, "anonymous_id=anon-only"); rows(st)["events"] != 3 {
		t.Fatalf("anonymous subject was touched: %+v", st)
	}
	if !e.svc.Registry().Drop(&schema.Enriched{Event: schema.Event{UserID: "user-del"}, ReceivedAt: del.DeletedAt}) || e.svc.Registry().Drop(&schema.Enriched{Event: schema.Event{UserID: "user-keep"}}) {
		t.Fatal("the consumer filter does not reflect the deletion")
	}
	// The deletion is of what was held: the person's next events are stored.
	if e.svc.Registry().Drop(&schema.Enriched{Event: schema.Event{UserID: "user-del"}, ReceivedAt: del.DeletedAt.Add(time.Millisecond)}) {
		t.Fatal("the consumer filter drops an event received after the deletion")
	}
	// Deleting again removes nothing and says so.
	if err := json.Unmarshal(e.mustOK(t, e.call(t, "POST", "/v1/privacy/delete", testToken, `{"user_id":"user-del"}`)), &del); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(del.Deleted, []TableCount{{"events", 0}, {"errors", 0}, {"identity_links", 0}, {"group_members", 0}, {"corrections", 0}}) {
		t.Fatalf("second delete answered %+v", del)
	}
}

// TestOptOutRegistryThroughHTTP opts a subject out and back in; the
// in-memory set ingest consults follows at once, and a reload from the
// table agrees.
func TestOptOutRegistryThroughHTTP(t *testing.T) {
	e := newEnv(t)
	reg := e.svc.Registry()
	steps := []struct {
		path string
		want bool
	}{{"/v1/privacy/opt-out", true}, {"/v1/privacy/opt-in", false}, {"/v1/privacy/opt-out", true}}
	for _, s := range steps {
		var resp OptOutResponse
		if err := json.Unmarshal(e.mustOK(t, e.call(t, "POST", s.path, testToken, `{"anonymous_id":"anon-77"}`)), &resp); err != nil {
			t.Fatal(err)
		}
		if resp.OptedOut != s.want || reg.OptedOut("", "anon-77") != s.want || reg.OptedOut("anon-77", "") {
			t.Fatalf("after %s: answer %+v, registry %v", s.path, resp, reg.OptedOut("", "anon-77"))
		}
		if st := e.status(t, "anonymous_id=anon-77"); st.OptedOut != s.want {
			t.Fatalf("status after %s: %+v", s.path, st)
		}
		if err := reg.Reload(context.Background()); err != nil {
			t.Fatal(err)
		}
		if reg.OptedOut("", "anon-77") != s.want {
			t.Fatalf("reload after %s disagrees", s.path)
		}
	}
}

// TestRegistryReloadSeesChangesOfOtherProcesses writes the tables directly
// (as another process's admin API would) and reloads.
func TestRegistryReloadSeesChangesOfOtherProcesses(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	for _, q := range []string{
		"INSERT INTO %s.tombstones VALUES ('user_id', 'gone', now64(3), now64(6))",
		"INSERT INTO %s.opt_outs VALUES ('user_id', 'quiet', true, '2026-01-01 00:00:00')",
		"INSERT INTO %s.opt_outs VALUES ('user_id', 'back', true, '2026-01-01 00:00:00'), ('user_id', 'back', false, '2026-01-02 00:00:00')",
	} {
		if err := e.conn.Exec(ctx, fmt.Sprintf(q, e.db)); err != nil {
			t.Fatal(err)
		}
	}
	reg := e.svc.Registry()
	if reg.Tombstoned("gone", "") || reg.OptedOut("quiet", "") {
		t.Fatal("registry changed before reload")
	}
	if err := reg.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	if !reg.Tombstoned("gone", "") || !reg.OptedOut("quiet", "") || reg.OptedOut("back", "") {
		t.Fatalf("after reload: gone %v quiet %v back %v", reg.Tombstoned("gone", ""), reg.OptedOut("quiet", ""), reg.OptedOut("back", ""))
	}
}

// TestAdminRefusesBadTokensAndAuditsEveryCall: a wrong, empty or missing
// token is 401, and every call leaves one audit line with the action, the
// subject type and hash, the result and the rows, never the raw id or the
// token.
func TestAdminRefusesBadTokensAndAuditsEveryCall(t *testing.T) {
	e := newEnv(t)
	cases := []struct {
		name, auth string
		want       int
	}{
		{"missing", "", http.StatusUnauthorized},
		{"empty bearer", "Bearer ", http.StatusUnauthorized},
		{"wrong token", "Bearer wrong-token-0123456789abcdef-0123456789", http.StatusUnauthorized},
		{"prefix of the token", "Bearer " + testToken[:len(testToken)-1], http.StatusUnauthorized},
		{"token with a suffix", "Bearer " + testToken + "x", http.StatusUnauthorized},
		{"basic scheme", "Basic " + testToken, http.StatusUnauthorized},
		{"right token", "Bearer " + testToken, http.StatusOK},
	}
	for _, c := range cases {
		for _, call := range []struct{ method, target, body string }{
			{"GET", "/v1/privacy/status?user_id=secret-user-1", ""},
			{"POST", "/v1/privacy/opt-in", `{"user_id":"secret-user-1"}`},
			{"POST", "/v1/privacy/correct", `{"user_id":"secret-user-1","plan":"pro"}`},
		} {
			t.Run(c.name+" "+call.target, func(t *testing.T) {
				before := strings.Count(e.logs.String(), "\n")
				req := strings.NewReader(call.body)
				r, _ := http.NewRequest(call.method, call.target, req)
				if c.auth != "" {
					r.Header.Set("Authorization", c.auth)
				}
				w := httptest.NewRecorder()
				e.svc.Handler().ServeHTTP(w, r)
				if w.Code != c.want {
					t.Fatalf("status %d, want %d: %s", w.Code, c.want, w.Body.String())
				}
				if c.want == http.StatusUnauthorized && !strings.HasPrefix(w.Header().Get("WWW-Authenticate"), "Bearer") {
					t.Fatal("401 without WWW-Authenticate: Bearer")
				}
				lines := strings.Split(strings.TrimSpace(e.logs.String()), "\n")[before:]
				var audits []map[string]any
				for _, l := range lines {
					var m map[string]any
					if err := json.Unmarshal([]byte(l), &m); err != nil {
						t.Fatalf("log line %q: %v", l, err)
					}
					if m["audit"] == true {
						audits = append(audits, m)
					}
				}
				if len(audits) != 1 {
					t.Fatalf("%d audit lines, want 1: %v", len(audits), lines)
				}
				a := audits[0]
				wantResult := "ok"
				if c.want == http.StatusUnauthorized {
					wantResult = "unauthorized"
				}
				if a["result"] != wantResult || a["status"] != float64(c.want) || a["action"] == "" || a["rows"] == nil ||
					strings.HasSuffix(call.target, "/correct") && a["action"] != "correct" {
					t.Fatalf("audit line %v", a)
				}
				if c.want == http.StatusOK && (a["subject_type"] != "user_id" || a["subject_hash"] != (Subject{ID: "secret-user-1"}).Hash()) {
					t.Fatalf("audit line of a served call misses the subject: %v", a)
				}
			})
		}
	}
	all := e.logs.String()
	for _, secret := range []string{"secret-user-1", testToken, testToken[:16]} {
		if strings.Contains(all, secret) {
			t.Fatalf("the log holds %q:\n%s", secret, all)
		}
	}
}

// TestTokenComparisonIsConstantTime reads authorized's source: the token
// must be compared by crypto/subtle, and no == or != may touch it.
func TestTokenComparisonIsConstantTime(t *testing.T) {
	f, err := parser.ParseFile(token.NewFileSet(), "server.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	var fn *ast.FuncDecl
	for _, d := range f.Decls {
		if d, ok := d.(*ast.FuncDecl); ok && d.Name.Name == "authorized" {
			fn = d
		}
	}
	if fn == nil {
		t.Fatal("no authorized function in server.go")
	}
	subtleCalls := 0
	ast.Inspect(fn.Body, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.CallExpr:
			if sel, ok := n.Fun.(*ast.SelectorExpr); ok {
				if x, ok := sel.X.(*ast.Ident); ok && x.Name == "subtle" && sel.Sel.Name == "ConstantTimeCompare" {
					subtleCalls++
				}
				if sel.Sel.Name == "Equal" || sel.Sel.Name == "Compare" || sel.Sel.Name == "HasPrefix" && len(n.Args) == 2 && mentionsToken(n.Args[1]) {
					t.Errorf("authorized compares with %s", sel.Sel.Name)
				}
			}
		case *ast.BinaryExpr:
			if (n.Op == token.EQL || n.Op == token.NEQ) && !isSubtleCall(n.X) && (mentionsToken(n.X) || mentionsToken(n.Y)) {
				t.Errorf("authorized compares the token with %s", n.Op)
			}
		}
		return true
	})
	if subtleCalls != 1 {
		t.Fatalf("authorized calls subtle.ConstantTimeCompare %d times, want 1", subtleCalls)
	}
}

// isSubtleCall reports whether e is a subtle.ConstantTimeCompare call
// (whose int result may be compared with 1).
func isSubtleCall(e ast.Expr) bool {
	c, ok := e.(*ast.CallExpr)
	if !ok {
		return false
	}
	sel, ok := c.Fun.(*ast.SelectorExpr)
	if !ok {
		return false
	}
	x, ok := sel.X.(*ast.Ident)
	return ok && x.Name == "subtle" && sel.Sel.Name == "ConstantTimeCompare"
}

// mentionsToken reports whether an expression reads a token value.
func mentionsToken(e ast.Expr) bool {
	found := false
	ast.Inspect(e, func(n ast.Node) bool {
		if id, ok := n.(*ast.Ident); ok && (id.Name == "tok" || id.Name == "token" || id.Name == "got" || id.Name == "Token") {
			found = true
		}
		return true
	})
	return found
}

func TestDecodeSubject(t *testing.T) {
	cases := []struct {
		name, query, body string
		want              Subject
		bad               bool
	}{
		{"user in query", "user_id=u1", "", Subject{SubjectUser, "u1"}, false},
		{"anonymous in query", "anonymous_id=a%201", "", Subject{SubjectAnonymous, "a 1"}, false},
		{"both", "user_id=u&anonymous_id=a", "", Subject{}, true},
		{"none", "", "", Subject{}, true},
		{"repeated", "user_id=a&user_id=b", "", Subject{}, true},
		{"unknown parameter", "user_id=a&x=1", "", Subject{}, true},
		{"CRLF in id", "user_id=a%0d%0aSet-Cookie:%20x", "", Subject{}, true},
		{"too long", "user_id=" + strings.Repeat("x", 129), "", Subject{}, true},
		{"bad escape", "user_id=%zz", "", Subject{}, true},
		{"user in body", "", `{"user_id":"u1"}`, Subject{SubjectUser, "u1"}, false},
		{"unknown field", "", `{"user_id":"u1","all":true}`, Subject{}, true},
		{"two objects", "", `{"user_id":"u1"}{"user_id":"u2"}`, Subject{}, true},
		{"array", "", `[{"user_id":"u1"}]`, Subject{}, true},
		{"empty id", "", `{"user_id":""}`, Subject{}, true},
		{"newline in id", "", `{"anonymous_id":"a\nb"}`, Subject{}, true},
		{"invalid UTF-8", "", "{\"user_id\":\"\xff\"}", Subject{}, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var got Subject
			var err error
			if c.body != "" {
				got, err = DecodeBody("application/json", strings.NewReader(c.body))
			} else {
				got, err = DecodeQuery(c.query)
			}
			if c.bad {
				if !errors.Is(err, ErrBadSubject) {
					t.Fatalf("got %+v, %v; want ErrBadSubject", got, err)
				}
				return
			}
			if err != nil || got != c.want {
				t.Fatalf("got %+v, %v; want %+v", got, err, c.want)
			}
		})
	}
}

func TestCheckTokenOutsideDev(t *testing.T) {
	cases := []struct {
		token string
		dev   bool
		ok    bool
	}{
		{DevToken, true, true},
		{"short", true, true},
		{DevToken, false, false},
		{"", false, false},
		{strings.Repeat("k", MinTokenLen-1), false, false},
		{strings.Repeat("k", MinTokenLen), false, true},
	}
	for _, c := range cases {
		cfg := DefaultConfig()
		cfg.Token = c.token
		if err := cfg.CheckToken(c.dev); (err == nil) != c.ok {
			t.Errorf("token %q dev %v: %v", c.token, c.dev, err)
		}
	}
}

// TestTombstoneBoundCoversItsOwnMillisecond: deleted_at is stored in
// milliseconds; an event received earlier in the same millisecond as the
// deletion must still be before the bound (the random histories found a
// truncated bound that let two such events through).
func TestTombstoneBoundCoversItsOwnMillisecond(t *testing.T) {
	e := newEnv(t)
	reg := e.svc.Registry()
	for i := range 20 {
		id := fmt.Sprintf("ms-user-%d", i)
		before := time.Now()
		at, err := reg.Tombstone(context.Background(), Subject{Type: SubjectUser, ID: id})
		if err != nil {
			t.Fatal(err)
		}
		if at.Before(before) {
			t.Fatalf("bound %v is before an event received at %v, earlier than the deletion", at, before)
		}
		if !reg.Drop(&schema.Enriched{Event: schema.Event{UserID: id}, ReceivedAt: before}) {
			t.Fatalf("an event received at %v, before the deletion bounded at %v, is kept", before, at)
		}
		if at != at.Truncate(time.Millisecond) {
			t.Fatalf("bound %v is finer than the table's milliseconds", at)
		}
	}
}
