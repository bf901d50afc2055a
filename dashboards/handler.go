// Package dashboards owns the analysts' and engineers' views of the
// telemetry: the Grafana dashboards in grafana/ (JSON for the official
// ClickHouse data source plugin and for Prometheus, with their provisioning
// files), the expander that turns a panel's rawSql into the SQL the plugin
// would run (Expand), and the built-in dashboards (Handler), served to
// staff only on a listener of their own (Server): product and error
// panels, the error explorer and the pipeline page. The built-in panels run
// the very queries of the Grafana panels, read from the embedded JSON:
// there is one source of SQL. It must not write to ClickHouse.
package dashboards

import (
	"bytes"
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Embedded assets of the built-in dashboard: the page and the bundle built
// from web/src by web/build.mjs (committed; see mk/dashboards.mk).
var (
	//go:embed web/index.html
	indexHTML []byte
	//go:embed web/dist/dashboard.js
	bundleJS []byte
	//go:embed web/dist/dashboard.css
	bundleCSS []byte
)

// pageHTML is the page shell of one of the built-in pages (product,
// errors, pipeline): the same document, told which page it is.
func pageHTML(page string) []byte {
	return bytes.Replace(indexHTML, []byte(`data-page="product"`), []byte(`data-page="`+page+`"`), 1)
}

// BundleJS returns the embedded JavaScript bundle (for the freshness test).
func BundleJS() []byte { return bundleJS }

// BundleCSS returns the embedded stylesheet bundle.
func BundleCSS() []byte { return bundleCSS }

// BuiltinDashboards are the Grafana dashboards (by file) whose panels the
// built-in pages show: product and errors on /dashboard/, the recorded
// pipeline history on /dashboard/pipeline. (The explorer's identifiers are
// served by /dashboard/api/errors/ only.)
var BuiltinDashboards = []string{"product.json", "errors.json", "pipeline-history.json"}

// rangeSpan is how a panel's SQL measures the range to pick its bucket.
const rangeSpan = "dateDiff('second', $__fromTime, $__toTime)"

// pageOf is the built-in page that shows a dashboard file's panels.
func pageOf(file string) string {
	if strings.HasPrefix(file, "pipeline") {
		return "pipeline"
	}
	return "product"
}

// builtinVars are the variables the built-in dashboard can fill; a panel
// using any other (errors' session) is left to Grafana.
var builtinVars = []string{"database", "plan", "quality", "browser", "group"}

// listVars are the page filters whose values come from the request as a
// comma-separated list (or repeated); a group id may hold a comma, so
// group is only ever repeated.
var listVars = []string{"plan", "quality", "browser"}

// PanelInfo describes one panel of the built-in dashboard.
type PanelInfo struct {
	// ID is the panel's key: <dashboard>-<panel id>, e.g. product-1.
	ID string `json:"id"`
	// Dashboard is the Grafana dashboard's title.
	Dashboard string `json:"dashboard"`
	// Page is the built-in page showing the panel: product or pipeline.
	Page string `json:"page"`
	// Title is the panel's title.
	Title string `json:"title"`
	// Type is the Grafana visualization: timeseries, barchart, piechart, stat or table.
	Type string `json:"type"`
	// Description says what the panel shows.
	Description string `json:"description"`
	// Unit is Grafana's unit of the values (percentunit, ms, short...).
	Unit string `json:"unit,omitempty"`
	// FollowsRange says the panel's time buckets follow the range (a
	// minute up to 6 h, an hour up to 7 days, a day beyond): its SQL
	// derives them from the range's length.
	FollowsRange bool `json:"follows_range,omitempty"`
}

// PanelData is the answer of /dashboard/api/panels/<id>.
type PanelData struct {
	PanelInfo
	// From and To are the range the query ran over.
	From time.Time `json:"from"`
	To   time.Time `json:"to"`
	Result
}

type builtin struct {
	info  PanelInfo
	query Query
}

// BuiltinPanels returns the panels of the built-in dashboard, in order.
func BuiltinPanels() ([]PanelInfo, error) {
	ps, err := builtinPanels()
	if err != nil {
		return nil, err
	}
	out := make([]PanelInfo, len(ps))
	for i, p := range ps {
		out[i] = p.info
	}
	return out, nil
}

func builtinPanels() ([]builtin, error) {
	ds, err := Dashboards()
	if err != nil {
		return nil, err
	}
	var keep []Dashboard
	for _, f := range BuiltinDashboards {
		for _, d := range ds {
			if d.File == f {
				keep = append(keep, d)
			}
		}
	}
	qs, err := ClickHouseQueries(keep)
	if err != nil {
		return nil, err
	}
	var out []builtin
next:
	for _, q := range qs {
		for _, m := range varRE.FindAllStringSubmatch(q.Target.RawSQL, -1) {
			if name := m[1] + m[3]; !strings.HasPrefix(name, "__") && !slices.Contains(builtinVars, name) {
				continue next
			}
		}
		var fc struct {
			Defaults struct {
				Unit string `json:"unit"`
			} `json:"defaults"`
		}
		_ = json.Unmarshal(q.Panel.FieldConfig, &fc)
		out = append(out, builtin{query: q, info: PanelInfo{ID: q.Key, Dashboard: q.Dashboard.Title, Page: pageOf(q.Dashboard.File), Title: q.Panel.Title,
			Type: q.Panel.Type, Description: q.Panel.Description, Unit: fc.Defaults.Unit,
			FollowsRange: strings.Contains(q.Target.RawSQL, rangeSpan)}})
	}
	return out, nil
}

// Handler serves the built-in dashboards under /dashboard, without the
// staff token (NewServer puts them behind it on their own listener): the
// pages /dashboard/ (product and errors), /dashboard/errors (the error
// explorer) and /dashboard/pipeline, their assets under
// /dashboard/assets/, the panel list at /dashboard/api/panels, each
// panel's data at /dashboard/api/panels/<id>?from=&to=&plan=&quality=&browser=&group=
// (from and to: RFC 3339 times, YYYY-MM-DD dates or Unix milliseconds,
// default the last 7 days; plan, quality and browser comma-separated or
// repeated, group repeated, absent: All), which is the Grafana panel's rawSql expanded by
// Expand and run on db, the values a query variable offers (the product
// dashboard's group) at /dashboard/api/variables/<name>, and the
// explorer's /dashboard/api/errors/....
func Handler(cfg Config, db DB) http.Handler {
	cfg = cfg.withDefaults()
	panels, err := builtinPanels()
	h := &handler{cfg: cfg, db: db, panels: map[string]builtin{}, err: err}
	for _, p := range panels {
		h.order = append(h.order, p.info)
		h.panels[p.info.ID] = p
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /dashboard", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/dashboard/", http.StatusMovedPermanently)
	})
	for _, page := range []string{"product", "errors", "pipeline"} {
		path := "GET /dashboard/" + page
		if page == "product" {
			path = "GET /dashboard/{$}"
		}
		mux.HandleFunc(path, h.asset("text/html; charset=utf-8", pageHTML(page)))
	}
	mux.HandleFunc("GET /dashboard/assets/dashboard.js", h.asset("text/javascript; charset=utf-8", bundleJS))
	mux.HandleFunc("GET /dashboard/assets/dashboard.css", h.asset("text/css; charset=utf-8", bundleCSS))
	mux.HandleFunc("GET /dashboard/api/panels", h.list)
	mux.HandleFunc("GET /dashboard/api/panels/{id}", h.data)
	mux.HandleFunc("GET /dashboard/api/variables/{name}", h.variable)
	mux.HandleFunc("GET /dashboard/api/errors/groups", h.errorGroups)
	mux.HandleFunc("GET /dashboard/api/errors/occurrences", h.errorOccurrences)
	mux.HandleFunc("GET /dashboard/api/errors/occurrence/{id}", h.errorOccurrence)
	return mux
}

type handler struct {
	cfg    Config
	db     DB
	order  []PanelInfo
	panels map[string]builtin
	err    error
}

func (h *handler) asset(ctype string, body []byte) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", ctype)
		w.Header().Set("Cache-Control", "no-cache")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		_, _ = w.Write(body)
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, err error) {
	writeJSON(w, status, map[string]string{"error": err.Error()})
}

func (h *handler) list(w http.ResponseWriter, _ *http.Request) {
	if h.err != nil {
		writeError(w, http.StatusInternalServerError, h.err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"panels": h.order})
}

// ErrBadRequest marks invalid query parameters.
var ErrBadRequest = errors.New("bad request")

func (h *handler) data(w http.ResponseWriter, r *http.Request) {
	if h.err != nil {
		writeError(w, http.StatusInternalServerError, h.err)
		return
	}
	p, ok := h.panels[r.PathValue("id")]
	if !ok {
		writeError(w, http.StatusNotFound, fmt.Errorf("no panel %q", r.PathValue("id")))
		return
	}
	params, res, ok := h.run(w, r, p.query.Dashboard, p.query.Target.RawSQL, "panel "+p.info.ID)
	if !ok {
		return
	}
	writeJSON(w, http.StatusOK, PanelData{PanelInfo: p.info, From: params.From, To: params.To, Result: *res})
}

// run expands sql (of dashboard d) with the request's range and variables
// and runs it within the query timeout; on failure it answers the request
// (400 for bad parameters, 502 for the engine's error, logged) and
// returns false. what names the query in errors.
func (h *handler) run(w http.ResponseWriter, r *http.Request, d *Dashboard, sql, what string) (Params, *Result, bool) {
	params, err := h.params(r, d)
	if err != nil {
		writeError(w, http.StatusBadRequest, err)
		return params, nil, false
	}
	if sql, err = Expand(sql, params); err != nil {
		writeError(w, http.StatusBadRequest, err)
		return params, nil, false
	}
	ctx, cancel := context.WithTimeout(r.Context(), h.cfg.QueryTimeout)
	defer cancel()
	res, err := Run(ctx, h.db, sql, h.cfg.MaxRows)
	if err != nil {
		h.cfg.Log.Error("dashboard query failed", "query", what, "err", err)
		writeError(w, http.StatusBadGateway, fmt.Errorf("%s: %w", what, err))
		return params, nil, false
	}
	return params, res, true
}

// browserRE bounds a browser name: uap-core families are letters, digits,
// spaces and a little punctuation.
var browserRE = regexp.MustCompile(`^[\pL\pN ._()/+-]{1,64}$`)

// timeRange reads the request's from and to (default: the last 7 days).
func (h *handler) timeRange(r *http.Request) (from, to time.Time, err error) {
	q := r.URL.Query()
	if to, err = parseTime(q.Get("to"), time.Now().UTC().Truncate(time.Second)); err != nil {
		return from, to, fmt.Errorf("%w: to: %w", ErrBadRequest, err)
	}
	if from, err = parseTime(q.Get("from"), to.Add(-7*24*time.Hour)); err != nil {
		return from, to, fmt.Errorf("%w: from: %w", ErrBadRequest, err)
	}
	if !from.Before(to) {
		return from, to, fmt.Errorf("%w: from must be before to", ErrBadRequest)
	}
	if to.Sub(from) > h.cfg.MaxRange {
		return from, to, fmt.Errorf("%w: range longer than %v", ErrBadRequest, h.cfg.MaxRange)
	}
	return from, to, nil
}

// params reads the request's time range and variables.
func (h *handler) params(r *http.Request, d *Dashboard) (Params, error) {
	q := r.URL.Query()
	from, to, err := h.timeRange(r)
	if err != nil {
		return Params{}, err
	}
	opts := d.Options()
	opts["database"] = []string{h.cfg.Database}
	vars := map[string][]string{"database": {h.cfg.Database}}
	for _, name := range listVars {
		var vals []string
		for _, v := range q[name] {
			for _, s := range strings.Split(v, ",") {
				if s = strings.TrimSpace(s); s != "" && s != "All" && s != AllValue {
					vals = append(vals, s)
				}
			}
		}
		if len(vals) > 32 {
			return Params{}, fmt.Errorf("%w: %s: at most 32 values", ErrBadRequest, name)
		}
		for _, v := range vals {
			if allowed := opts[name]; allowed != nil && !slices.Contains(allowed, v) {
				return Params{}, fmt.Errorf("%w: %s: %q is not one of %v", ErrBadRequest, name, v, allowed)
			}
			if name == "browser" && !browserRE.MatchString(v) {
				return Params{}, fmt.Errorf("%w: browser: %q is not a browser name", ErrBadRequest, v)
			}
		}
		vars[name] = vals
	}
	var groups []string
	for _, v := range q["group"] {
		if v = strings.TrimSpace(v); v == "" || v == "All" || v == AllValue {
			continue
		}
		if err := checkFilter("group", v); err != nil {
			return Params{}, err
		}
		groups = append(groups, v)
	}
	if len(groups) > 32 {
		return Params{}, fmt.Errorf("%w: group: at most 32 values", ErrBadRequest)
	}
	vars["group"] = groups
	return Params{From: from, To: to, Interval: DefaultInterval(from, to), Vars: vars, Options: opts}, nil
}

// parseTime accepts RFC 3339, YYYY-MM-DD (UTC midnight) and Unix
// milliseconds; empty gives def.
func parseTime(s string, def time.Time) (time.Time, error) {
	switch {
	case s == "":
		return def, nil
	case strings.ContainsAny(s, "T:"):
		t, err := time.Parse(time.RFC3339, s)
		return t.UTC(), err
	case strings.Count(s, "-") == 2:
		return time.Parse(time.DateOnly, s)
	}
	ms, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q: want RFC 3339, YYYY-MM-DD or Unix milliseconds", s)
	}
	return time.UnixMilli(ms).UTC(), nil
}

// variable answers the values of a query variable of the product
// dashboard (its Grafana query, expanded and run like a panel's), for the
// page's selector: {"name":..., "values":[...]}.
func (h *handler) variable(w http.ResponseWriter, r *http.Request) {
	if h.err != nil {
		writeError(w, http.StatusInternalServerError, h.err)
		return
	}
	name := r.PathValue("name")
	d, v, ok := h.queryVariable(name)
	if !ok {
		writeError(w, http.StatusNotFound, fmt.Errorf("no query variable %q", name))
		return
	}
	_, res, ok := h.run(w, r, d, v.Query.(string), "variable "+name)
	if !ok {
		return
	}
	values := []string{}
	for _, row := range res.Rows {
		if s, ok := row[0].(string); ok && s != "" {
			values = append(values, s)
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"name": name, "values": values})
}

// queryVariable finds the query variable name of the built-in product
// dashboard, if the built-in pages can fill it.
func (h *handler) queryVariable(name string) (*Dashboard, Variable, bool) {
	if !slices.Contains(builtinVars, name) {
		return nil, Variable{}, false
	}
	for _, p := range h.order {
		d := h.panels[p.ID].query.Dashboard
		if d.File != "product.json" {
			continue
		}
		for _, v := range d.Templating.List {
			if _, isSQL := v.Query.(string); v.Name == name && v.Type == "query" && isSQL {
				return d, v, true
			}
		}
	}
	return nil, Variable{}, false
}
