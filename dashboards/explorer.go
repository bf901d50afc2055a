package dashboards

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/google/uuid"

	"github.com/sora3web/telemetry/internal/privacy"
)

// The error explorer (/dashboard/errors): error groups (code plus the
// message with numbers and hex ids normalised), a group's latest
// occurrences, and one occurrence with its whole stack and the session's
// events within ±5 minutes. Every query is a constant text with
// {name:Type} placeholders whose values travel as param_* (bound by
// ClickHouse, never spliced), has a LIMIT and sets max_execution_time.

// explorerFilters are the explorer's filters: query parameter, column of
// the errors table, and whether it names a person (a lookup by it is
// audited).
var explorerFilters = []struct {
	name, column string
	person       bool
}{
	{"code", "error_code", false},
	{"app_version", "app_version", false},
	{"browser", "browser", false},
	{"os", "os", false},
	{"plan", "plan", false},
	{"user_id", "user_id", true},
	{"anonymous_id", "anonymous_id", true},
	{"session_id", "session_id", true},
	{"generation_id", "generation_id", true},
}

// normalizedMessage groups messages that differ only in numbers and ids.
const normalizedMessage = `replaceRegexpAll(error_message, '(0x)?[0-9a-fA-F]{8,}(-[0-9a-fA-F]{4,})*|[0-9]+', '#')`

// explorerWhere is the WHERE clause every explorer list shares.
var explorerWhere = func() string {
	var b strings.Builder
	b.WriteString("timestamp >= {from:DateTime64(3, 'UTC')} AND timestamp <= {to:DateTime64(3, 'UTC')}\n")
	b.WriteString("  AND ({q:String} = '' OR positionCaseInsensitiveUTF8(error_message, {q:String}) > 0 OR positionCaseInsensitiveUTF8(error_code, {q:String}) > 0)\n")
	for _, f := range explorerFilters {
		fmt.Fprintf(&b, "  AND ({%[1]s:String} = '' OR %[2]s = {%[1]s:String})\n", f.name, f.column)
	}
	return b.String()
}()

// sparkBuckets is the number of points in a group's sparkline.
const sparkBuckets = 24

var (
	groupsSQL = `SELECT error_code, ` + normalizedMessage + ` AS message, count() AS errors,
  uniqExactIf(coalesce(nullIf(user_id, ''), nullIf(anonymous_id, '')), user_id != '' OR anonymous_id != '') AS users,
  min(timestamp) AS first_seen, max(timestamp) AS last_seen, any(type) AS type,
  countResample(0, ` + strconv.Itoa(sparkBuckets) + `, 1)(toUInt32(intDiv(toUnixTimestamp64Milli(timestamp) - toUnixTimestamp64Milli({from:DateTime64(3, 'UTC')}), {bucket_ms:UInt64}))) AS sparkline
FROM %s.errors
WHERE ` + explorerWhere + `GROUP BY error_code, message
ORDER BY errors DESC, error_code, message
LIMIT 200`

	occurrencesSQL = `SELECT event_id, timestamp, type, error_code, error_message, browser, os, app_version, plan, page_url, session_id
FROM %s.errors
WHERE ` + explorerWhere + `  AND ({group_code:String} = '' OR error_code = {group_code:String})
  AND ({group_message:String} = '' OR ` + normalizedMessage + ` = {group_message:String})
ORDER BY timestamp DESC, event_id
LIMIT 100`

	occurrenceSQL = `SELECT event_id, timestamp, type, error_code, error_message, error_stack, page_url,
  device_class, browser, browser_version, os, os_version, app_version, plan, model, generation_id,
  session_id, user_id, anonymous_id, source
FROM %s.errors
WHERE event_id = {event_id:UUID}
LIMIT 1`

	sessionSQL = `SELECT event_id, timestamp, type, plan, quality, resolution, model, error_code, error_message,
  context_page_url AS page_url, device_browser AS browser
FROM %s.events
WHERE session_id = {session_id:String} AND session_id != ''
  AND timestamp >= {at:DateTime64(3, 'UTC')} - INTERVAL 5 MINUTE
  AND timestamp <= {at:DateTime64(3, 'UTC')} + INTERVAL 5 MINUTE
ORDER BY timestamp, event_id
LIMIT 1000`
)

// maxFilterLen bounds a filter value.
const maxFilterLen = 256

// filterValue reads one filter: printable UTF-8, at most maxFilterLen bytes.
func filterValue(q map[string][]string, name string) (string, error) {
	v := ""
	if vs := q[name]; len(vs) > 0 {
		v = strings.TrimSpace(vs[0])
	}
	return v, checkFilter(name, v)
}

// checkFilter checks a filter value: printable UTF-8, at most
// maxFilterLen bytes.
func checkFilter(name, v string) error {
	if len(v) > maxFilterLen {
		return fmt.Errorf("%w: %s: at most %d bytes", ErrBadRequest, name, maxFilterLen)
	}
	if !utf8.ValidString(v) || strings.IndexFunc(v, unicode.IsControl) >= 0 {
		return fmt.Errorf("%w: %s: must be printable UTF-8", ErrBadRequest, name)
	}
	return nil
}

// lookup is one explorer request: its bound parameters and the person it
// looks up, if any (for the audit line).
type lookup struct {
	params  clickhouse.Parameters
	subject privacy.Subject
}

// explorerParams reads the time range and every filter.
func (h *handler) explorerParams(r *http.Request) (*lookup, time.Time, time.Time, error) {
	from, to, err := h.timeRange(r)
	if err != nil {
		return nil, from, to, err
	}
	q := r.URL.Query()
	l := &lookup{params: clickhouse.Parameters{
		"from": from.Format("2006-01-02 15:04:05.000"), "to": to.Format("2006-01-02 15:04:05.000"),
	}}
	for _, name := range []string{"q", "group_code", "group_message"} {
		if l.params[name], err = filterValue(q, name); err != nil {
			return nil, from, to, err
		}
	}
	for _, f := range explorerFilters {
		v, err := filterValue(q, f.name)
		if err != nil {
			return nil, from, to, err
		}
		l.params[f.name] = v
		if f.person && v != "" && l.subject.ID == "" {
			l.subject = privacy.Subject{Type: f.name, ID: v}
		}
	}
	return l, from, to, nil
}

// query runs one explorer statement with its parameters bound and the
// handler's time bound, and audits a lookup of a person.
func (h *handler) explorerQuery(w http.ResponseWriter, r *http.Request, action, sql string, l *lookup) (*Result, bool) {
	ctx, cancel := context.WithTimeout(r.Context(), h.cfg.QueryTimeout)
	defer cancel()
	ctx = clickhouse.Context(ctx, clickhouse.WithParameters(l.params),
		clickhouse.WithSettings(clickhouse.Settings{"max_execution_time": int(h.cfg.QueryTimeout.Seconds() + 0.5)}))
	start := time.Now()
	res, err := Run(ctx, h.db, fmt.Sprintf(sql, h.cfg.Database), h.cfg.MaxRows)
	status := http.StatusOK
	if err != nil {
		status = http.StatusBadGateway
	}
	if l.subject.ID != "" {
		rows := 0
		if res != nil {
			rows = len(res.Rows)
		}
		// Like the admin API's audit: the hash of the id, never the id.
		h.cfg.Log.Info("dashboard explorer lookup", "audit", true, "action", action, "subject_type", l.subject.Type,
			"subject_hash", l.subject.Hash(), "status", status, "rows", rows, "duration", time.Since(start))
	}
	if err != nil {
		h.cfg.Log.Error("explorer query failed", "action", action, "err", err)
		writeError(w, status, fmt.Errorf("%s: %w", action, err))
		return nil, false
	}
	return res, true
}

func (h *handler) errorGroups(w http.ResponseWriter, r *http.Request) {
	l, from, to, err := h.explorerParams(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	bucket := max(to.Sub(from).Milliseconds()/sparkBuckets+1, 1)
	l.params["bucket_ms"] = strconv.FormatInt(bucket, 10)
	if res, ok := h.explorerQuery(w, r, "errors.groups", groupsSQL, l); ok {
		writeJSON(w, http.StatusOK, map[string]any{"from": from, "to": to, "bucket_ms": bucket, "columns": res.Columns, "rows": res.Rows})
	}
}

func (h *handler) errorOccurrences(w http.ResponseWriter, r *http.Request) {
	l, from, to, err := h.explorerParams(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	if res, ok := h.explorerQuery(w, r, "errors.occurrences", occurrencesSQL, l); ok {
		writeJSON(w, http.StatusOK, map[string]any{"from": from, "to": to, "columns": res.Columns, "rows": res.Rows})
	}
}

// errorOccurrence answers one occurrence and its session's events within
// ±5 minutes: a lookup of a person, always audited.
func (h *handler) errorOccurrence(w http.ResponseWriter, r *http.Request) {
	id, err := uuid.Parse(r.PathValue("id"))
	if err != nil {
		writeError(w, http.StatusBadRequest, fmt.Errorf("%w: event id: must be a UUID", ErrBadRequest))
		return
	}
	l := &lookup{params: clickhouse.Parameters{"event_id": id.String()}, subject: privacy.Subject{Type: "event_id", ID: id.String()}}
	occ, ok := h.explorerQuery(w, r, "errors.occurrence", occurrenceSQL, l)
	if !ok {
		return
	}
	if len(occ.Rows) == 0 {
		writeError(w, http.StatusNotFound, fmt.Errorf("no error with event id %s", id))
		return
	}
	row := map[string]any{}
	for i, c := range occ.Columns {
		row[c.Name] = occ.Rows[0][i]
	}
	session, _ := row["session_id"].(string)
	at, _ := row["timestamp"].(time.Time)
	events := &Result{Columns: []Column{}, Rows: [][]any{}}
	if session != "" {
		sl := &lookup{params: clickhouse.Parameters{"session_id": session, "at": at.Format("2006-01-02 15:04:05.000")},
			subject: privacy.Subject{Type: "session_id", ID: session}}
		if events, ok = h.explorerQuery(w, r, "errors.session", sessionSQL, sl); !ok {
			return
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"occurrence": row, "session": events})
}
