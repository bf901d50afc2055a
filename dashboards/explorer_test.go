package dashboards

import (
	"encoding/json"
	"log/slog"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sora3web/telemetry/internal/privacy"
	"github.com/sora3web/telemetry/internal/testenv"
	"github.com/sora3web/telemetry/schema"
)

func newExplorerServer(t *testing.T) (*httptest.Server, *testenv.LogBuffer) {
	t.Helper()
	conn, _ := seed(t)
	logs := &testenv.LogBuffer{}
	h := Handler(Config{Database: testDB, Log: slog.New(slog.NewJSONHandler(logs, nil))}, conn)
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv, logs
}

type explorerAnswer struct {
	Columns []Column `json:"columns"`
	Rows    [][]any  `json:"rows"`
}

func (a explorerAnswer) col(name string) int {
	return slices.IndexFunc(a.Columns, func(c Column) bool { return c.Name == name })
}

func getJSON(t *testing.T, u string, v any) {
	t.Helper()
	resp, body := get(t, u)
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d %s", u, resp.StatusCode, body)
	}
	if err := json.Unmarshal(body, v); err != nil {
		t.Fatal(err)
	}
}

// TestExplorerFindsASessionsErrorWithStackAndSurroundingEvents searches
// the seeded errors by session_id, as an engineer following a support
// ticket would: the groups, the group's occurrences, then one occurrence
// with its whole stack and its session's events within ±5 minutes, each
// as the seed implies; every lookup by a person's id leaves one audit line
// with the id's hash and never the id.
func TestExplorerFindsASessionsErrorWithStackAndSurroundingEvents(t *testing.T) {
	srv, logs := newExplorerServer(t)
	_, ev := seed(t)
	sc := scenario{from: seedFrom, to: seedTo}
	session := mostErrorsSession(ev)
	sc.explore = map[string]string{"session_id": session}
	want := where(ev, sc.tsIn, sc.explored)
	if len(want) < 2 {
		t.Fatalf("session %s has %d errors: the test would prove little", session, len(want))
	}
	q := url.Values{"from": {seedFrom.Format(time.RFC3339)}, "to": {seedTo.Format(time.RFC3339)}, "session_id": {session}}

	var groups explorerAnswer
	getJSON(t, srv.URL+"/dashboard/api/errors/groups?"+q.Encode(), &groups)
	total, spark := 0.0, 0.0
	for _, r := range groups.Rows {
		total += r[groups.col("errors")].(float64)
		for _, v := range r[groups.col("sparkline")].([]any) {
			spark += v.(float64)
		}
	}
	if int(total) != len(want) || spark != total {
		t.Fatalf("groups count %v errors (sparklines %v), want %d", total, spark, len(want))
	}

	first := groups.Rows[0]
	oq := url.Values{}
	for k, v := range q {
		oq[k] = v
	}
	oq.Set("group_code", first[groups.col("error_code")].(string))
	oq.Set("group_message", first[groups.col("message")].(string))
	var occ explorerAnswer
	getJSON(t, srv.URL+"/dashboard/api/errors/occurrences?"+oq.Encode(), &occ)
	if len(occ.Rows) != int(first[groups.col("errors")].(float64)) {
		t.Fatalf("%d occurrences, want the group's %v", len(occ.Rows), first[groups.col("errors")])
	}
	id := occ.Rows[0][occ.col("event_id")].(string)
	var one struct {
		Occurrence map[string]any `json:"occurrence"`
		Session    explorerAnswer `json:"session"`
	}
	getJSON(t, srv.URL+"/dashboard/api/errors/occurrence/"+id, &one)
	var e *schema.Enriched
	for i := range ev {
		if ev[i].EventID == id {
			e = &ev[i]
		}
	}
	if e == nil || one.Occurrence["error_stack"] != e.Properties.ErrorStack || one.Occurrence["app_version"] != e.Context.AppVersion ||
		one.Occurrence["page_url"] != e.Context.PageURL || one.Occurrence["browser"] != e.Device.Browser || one.Occurrence["os"] != e.Device.OS {
		t.Fatalf("occurrence %v, want %+v", one.Occurrence, e)
	}
	around := sessionAround(ev, id)
	if len(one.Session.Rows) != len(around) || len(around) == 0 {
		t.Fatalf("%d session events, want %d", len(one.Session.Rows), len(around))
	}
	for i, r := range around {
		got, _ := time.Parse(time.RFC3339, one.Session.Rows[i][one.Session.col("timestamp")].(string))
		if !got.Equal(r[0].(time.Time)) || one.Session.Rows[i][one.Session.col("type")] != r[1] {
			t.Fatalf("session event %d: %v, want %v", i, one.Session.Rows[i], r)
		}
	}

	audits := logs.Audits(t)
	if len(audits) != 4 { // groups, occurrences, the occurrence, its session
		t.Fatalf("%d audit lines, want 4: %v", len(audits), audits)
	}
	hash := privacy.Subject{Type: "session_id", ID: session}.Hash()
	for _, a := range audits[:2] {
		if a["subject_type"] != "session_id" || a["subject_hash"] != hash || a["action"] == "" {
			t.Errorf("audit line %v, want session_id %s", a, hash)
		}
	}
	if audits[3]["subject_hash"] != hash || audits[3]["action"] != "errors.session" {
		t.Errorf("audit of the session's events: %v", audits[3])
	}
	if strings.Contains(logs.String(), session) {
		t.Error("a log line holds the raw session id")
	}
}

// TestExplorerBindsFiltersAndRefusesBadOnes: filter values are bound
// parameters, so a value built to break out of a string literal matches
// nothing instead of everything; bad values get 400 naming the field, and
// an unknown occurrence 404. A search without identifiers is not audited.
func TestExplorerBindsFiltersAndRefusesBadOnes(t *testing.T) {
	srv, logs := newExplorerServer(t)
	base := url.Values{"from": {seedFrom.Format(time.RFC3339)}, "to": {seedTo.Format(time.RFC3339)}}
	for _, inj := range []string{`' OR 1=1 --`, `x') OR ('1'='1`, `\' OR 1=1 --`, `{session_id:String}`} {
		for _, field := range []string{"q", "code", "session_id"} {
			q := url.Values{}
			for k, v := range base {
				q[k] = v
			}
			q.Set(field, inj)
			var a explorerAnswer
			getJSON(t, srv.URL+"/dashboard/api/errors/groups?"+q.Encode(), &a)
			if len(a.Rows) != 0 {
				t.Errorf("%s=%q matched %d groups", field, inj, len(a.Rows))
			}
		}
	}
	var all explorerAnswer
	getJSON(t, srv.URL+"/dashboard/api/errors/groups?"+base.Encode(), &all)
	if len(all.Rows) == 0 {
		t.Fatal("no groups in the seeded range")
	}
	for _, tc := range []struct{ path, field string }{
		{"/dashboard/api/errors/groups?q=" + url.QueryEscape(strings.Repeat("x", 300)), "q"},
		{"/dashboard/api/errors/groups?session_id=" + url.QueryEscape("a\x00b"), "session_id"},
		{"/dashboard/api/errors/occurrences?from=yesterday", "from"},
		{"/dashboard/api/errors/occurrence/not-a-uuid", "event id"},
	} {
		resp, body := get(t, srv.URL+tc.path)
		if resp.StatusCode != 400 || !strings.Contains(string(body), tc.field) {
			t.Errorf("GET %s: %d %s, want 400 naming %s", tc.path, resp.StatusCode, body, tc.field)
		}
	}
	if resp, _ := get(t, srv.URL+"/dashboard/api/errors/occurrence/00000000-0000-4000-8000-000000000000"); resp.StatusCode != 404 {
		t.Errorf("unknown occurrence: %d", resp.StatusCode)
	}
	for _, a := range logs.Audits(t) {
		if a["subject_type"] != "session_id" && a["subject_type"] != "event_id" {
			t.Errorf("audit line for a search without identifiers: %v", a)
		}
	}
}

// TestBuiltinPanelsShowNoIdentifiers: user, anonymous and session ids
// appear in the explorer only, never in a built-in panel's columns.
func TestBuiltinPanelsShowNoIdentifiers(t *testing.T) {
	srv := newTestServer(t)
	panels, err := BuiltinPanels()
	if err != nil {
		t.Fatal(err)
	}
	q := url.Values{"from": {seedFrom.Format(time.RFC3339)}, "to": {seedTo.Format(time.RFC3339)}}
	for _, p := range panels {
		var a explorerAnswer
		getJSON(t, srv.URL+"/dashboard/api/panels/"+p.ID+"?"+q.Encode(), &a)
		for _, c := range a.Columns {
			if slices.Contains([]string{"user_id", "anonymous_id", "session_id", "event_id", "ip"}, c.Name) {
				t.Errorf("%s %q shows %s", p.ID, p.Title, c.Name)
			}
		}
	}
}
