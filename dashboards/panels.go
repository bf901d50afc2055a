package dashboards

import (
	"embed"
	"encoding/json"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strings"
)

//go:embed grafana/*.json
var grafanaFS embed.FS

// Datasource types of the provisioned data sources.
const (
	// ClickHouseType is the official ClickHouse plugin's type.
	ClickHouseType = "grafana-clickhouse-datasource"
	// PrometheusType is Grafana's built-in Prometheus data source.
	PrometheusType = "prometheus"
)

// Dashboard is one Grafana dashboard file, as much of its JSON model as
// the built-in dashboard and the tests need.
type Dashboard struct {
	// File is the file name under grafana/.
	File string `json:"-"`
	// UID is the dashboard's stable id in Grafana URLs.
	UID string `json:"uid"`
	// Title is shown in Grafana's dashboard list.
	Title string `json:"title"`
	// Panels are the dashboard's panels (rows are flattened out).
	Panels []Panel `json:"panels"`
	// Templating holds the dashboard's variables.
	Templating struct {
		List []Variable `json:"list"`
	} `json:"templating"`
}

// Variable is a dashboard template variable.
type Variable struct {
	// Name is how queries refer to it ($name, ${name:format}).
	Name string `json:"name"`
	// Type is custom, query, constant, textbox or datasource.
	Type string `json:"type"`
	// Query is a custom variable's comma-separated values, a constant's
	// value or a query variable's SQL.
	Query any `json:"query"`
	// Multi allows several values.
	Multi bool `json:"multi"`
	// IncludeAll offers the All option.
	IncludeAll bool `json:"includeAll"`
}

// Values returns the values a custom or constant variable offers.
func (v Variable) Values() []string {
	q, _ := v.Query.(string)
	switch v.Type {
	case "constant", "textbox":
		return []string{q}
	case "custom":
		var out []string
		for _, s := range strings.Split(q, ",") {
			if s = strings.TrimSpace(s); s != "" {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}

// Panel is one panel of a dashboard.
type Panel struct {
	// ID is unique within its dashboard.
	ID int `json:"id"`
	// Title is the panel's heading.
	Title string `json:"title"`
	// Type is the visualization: timeseries, barchart, stat, table, ...
	Type string `json:"type"`
	// Description says what the panel shows.
	Description string `json:"description"`
	// Datasource is the panel's data source.
	Datasource Datasource `json:"datasource"`
	// Targets are the panel's queries.
	Targets []Target `json:"targets"`
	// FieldConfig carries units and data links.
	FieldConfig json.RawMessage `json:"fieldConfig"`
	// Panels are the children of a collapsed row.
	Panels []Panel `json:"panels,omitempty"`
}

// Datasource references a provisioned data source.
type Datasource struct {
	// Type is ClickHouseType or PrometheusType.
	Type string `json:"type"`
	// UID is the provisioned data source's uid.
	UID string `json:"uid"`
}

// Target is one query of a panel in the ClickHouse plugin's (rawSql,
// format, queryType) or Prometheus's (expr) query model.
type Target struct {
	// RefID names the query within the panel.
	RefID string `json:"refId"`
	// Datasource is the query's data source.
	Datasource Datasource `json:"datasource"`
	// RawSQL is the ClickHouse query with Grafana macros and variables.
	RawSQL string `json:"rawSql,omitempty"`
	// Format is the plugin's result format: 0 time series, 1 table.
	Format *int `json:"format,omitempty"`
	// QueryType is the plugin's query type: timeseries or table.
	QueryType string `json:"queryType,omitempty"`
	// Expr is the PromQL of a Prometheus query.
	Expr string `json:"expr,omitempty"`
}

// Dashboards loads every embedded Grafana dashboard, sorted by file name.
func Dashboards() ([]Dashboard, error) {
	files, err := fs.Glob(grafanaFS, "grafana/*.json")
	if err != nil {
		return nil, fmt.Errorf("listing dashboards: %w", err)
	}
	sort.Strings(files)
	var out []Dashboard
	for _, f := range files {
		raw, err := grafanaFS.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("reading %s: %w", f, err)
		}
		var d Dashboard
		if err := json.Unmarshal(raw, &d); err != nil {
			return nil, fmt.Errorf("decoding %s: %w", f, err)
		}
		d.File = path.Base(f)
		var flat []Panel
		for _, p := range d.Panels {
			if p.Type == "row" {
				flat = append(flat, p.Panels...)
				continue
			}
			flat = append(flat, p)
		}
		d.Panels = flat
		out = append(out, d)
	}
	return out, nil
}

// Options returns the values of the dashboard's custom and constant
// variables, for Params.Options.
func (d Dashboard) Options() map[string][]string {
	out := map[string][]string{}
	for _, v := range d.Templating.List {
		if vals := v.Values(); vals != nil {
			out[v.Name] = vals
		}
	}
	return out
}

// Query is one ClickHouse query of a panel.
type Query struct {
	// Key is "<dashboard file without .json>-<panel id>", e.g. product-3:
	// the built-in dashboard's panel id.
	Key string
	// Dashboard holds the panel.
	Dashboard *Dashboard
	// Panel is the panel.
	Panel Panel
	// Target is the panel's ClickHouse query.
	Target Target
}

// ClickHouseQueries returns the ClickHouse query of every panel of ds, in
// dashboard and panel order; a panel has at most one.
func ClickHouseQueries(ds []Dashboard) ([]Query, error) {
	var out []Query
	for i := range ds {
		d := &ds[i]
		for _, p := range d.Panels {
			var qs []Target
			for _, t := range p.Targets {
				if t.RawSQL != "" {
					qs = append(qs, t)
				}
			}
			switch {
			case len(qs) > 1:
				return nil, fmt.Errorf("%s panel %d %q: %d ClickHouse queries, at most 1 allowed", d.File, p.ID, p.Title, len(qs))
			case len(qs) == 1:
				out = append(out, Query{Key: fmt.Sprintf("%s-%d", strings.TrimSuffix(d.File, ".json"), p.ID), Dashboard: d, Panel: p, Target: qs[0]})
			}
		}
	}
	return out, nil
}
