package dashboards

import (
	"errors"
	"fmt"
	"math"
	"regexp"
	"strings"
	"time"
)

// AllValue is the value Grafana gives a variable whose "All" option is
// selected; Params.Vars may use it (or leave the variable empty) to mean
// every value.
const AllValue = "$__all"

// Params are what Grafana knows when it runs a panel's query: the time
// range, the interval and the variables' selected values.
type Params struct {
	// From and To bound the dashboard's time range.
	From, To time.Time
	// Interval is the panel's interval ($__interval_s, $__timeInterval).
	// Zero means DefaultInterval(From, To).
	Interval time.Duration
	// Vars holds each variable's selected values. A variable that is absent,
	// empty or [AllValue] has every value selected: $__conditionalAll on it
	// becomes 1=1, and a plain reference expands to Options[name].
	Vars map[string][]string
	// Options lists every value of a variable, used where "All" must be
	// spelled out (a reference outside $__conditionalAll).
	Options map[string][]string
}

// ErrExpand means a query cannot be expanded: a bad macro call or a
// variable without a value.
var ErrExpand = errors.New("expanding query")

// DefaultInterval is the interval Grafana would pick for a panel about 100
// points wide over [from, to): the range divided by 100, at least a minute,
// rounded to whole seconds.
func DefaultInterval(from, to time.Time) time.Duration {
	d := to.Sub(from) / 100
	if d < time.Minute {
		d = time.Minute
	}
	return d.Round(time.Second)
}

// Expand expands a panel's rawSql the way Grafana and the ClickHouse data
// source plugin (grafana-clickhouse-datasource v4) do, in their order:
//
//  1. $__conditionalAll(cond, $var) — the plugin's frontend: cond when $var
//     selects some values, 1=1 when it selects All (or nothing).
//  2. Template variables — Grafana's templateSrv: $var, ${var} and
//     ${var:format} with the formats singlequote ('a','b'), sqlstring
//     ('a','b' with ' doubled), csv (a,b), raw and text. Single values are
//     quoted the same way. Unlike Grafana, singlequote also escapes
//     backslashes, so no value can end a ClickHouse string literal.
//  3. The plugin's backend macros: $__timeFilter(col) is
//     col >= toDateTime(FROM) AND col <= toDateTime(TO) (Unix seconds),
//     $__timeFilter_ms(col) the same with fromUnixTimestamp64Milli(ms),
//     $__dateFilter(col) is col >= toDate('YYYY-MM-DD') AND col <= toDate(...),
//     $__dateTimeFilter(d, t) / $__dt(d, t) both,
//     $__timeInterval(col) is toStartOfInterval(toDateTime(col), INTERVAL N second),
//     $__timeInterval_ms(col) likewise in milliseconds, $__interval_s is N,
//     $__fromTime / $__toTime are toDateTime(FROM) / toDateTime(TO) and
//     $__fromTime_ms / $__toTime_ms fromUnixTimestamp64Milli(ms).
//     Dates and times are taken in UTC.
func Expand(sql string, p Params) (string, error) {
	if p.Interval <= 0 {
		p.Interval = DefaultInterval(p.From, p.To)
	}
	out, err := expandConditionalAll(sql, p)
	if err != nil {
		return "", err
	}
	if out, err = expandVars(out, p); err != nil {
		return "", err
	}
	return expandMacros(out, p)
}

// selected reports the values of name and whether All is selected.
func (p Params) selected(name string) (values []string, all bool) {
	v := p.Vars[name]
	if len(v) == 0 || (len(v) == 1 && v[0] == AllValue) || (len(v) == 1 && v[0] == "") {
		return p.Options[name], true
	}
	return v, false
}

const conditionalAll = "$__conditionalAll("

var varRefRE = regexp.MustCompile(`^\s*\$(?:\{(\w+)(?::\w+)?\}|(\w+))\s*$`)

// expandConditionalAll replaces every $__conditionalAll(cond, $var), from
// the last to the first as the plugin does.
func expandConditionalAll(sql string, p Params) (string, error) {
	for {
		i := strings.LastIndex(sql, conditionalAll)
		if i < 0 {
			return sql, nil
		}
		args, end, err := macroArgs(sql, i+len(conditionalAll)-1)
		if err != nil {
			return "", fmt.Errorf("%w: $__conditionalAll: %w", ErrExpand, err)
		}
		if len(args) != 2 {
			return "", fmt.Errorf("%w: $__conditionalAll: want 2 arguments, got %d", ErrExpand, len(args))
		}
		m := varRefRE.FindStringSubmatch(args[1])
		if m == nil {
			return "", fmt.Errorf("%w: $__conditionalAll: second argument %q is not a variable", ErrExpand, args[1])
		}
		name := m[1] + m[2]
		phrase := strings.TrimSpace(args[0])
		if _, all := p.selected(name); all {
			phrase = "1=1"
		}
		sql = sql[:i] + phrase + sql[end:]
	}
}

// macroArgs splits the arguments of the call whose "(" is at open, at
// top-level commas, and returns the index after its ")".
func macroArgs(s string, open int) (args []string, end int, err error) {
	depth, start := 0, open+1
	var quote byte
	for i := open; i < len(s); i++ {
		c := s[i]
		switch {
		case quote != 0:
			if c == '\\' {
				i++
			} else if c == quote {
				quote = 0
			}
		case c == '\'' || c == '"' || c == '`':
			quote = c
		case c == '(':
			depth++
		case c == ')':
			depth--
			if depth == 0 {
				return append(args, s[start:i]), i + 1, nil
			}
		case c == ',' && depth == 1:
			args = append(args, s[start:i])
			start = i + 1
		}
	}
	return nil, 0, errors.New("unbalanced parentheses")
}

// varRE matches $name, ${name} and ${name:format}; $__ names are macros.
var varRE = regexp.MustCompile(`\$\{(\w+)(?::(\w+))?\}|\$(\w+)`)

func expandVars(sql string, p Params) (string, error) {
	var errs []error
	out := varRE.ReplaceAllStringFunc(sql, func(ref string) string {
		m := varRE.FindStringSubmatch(ref)
		name, format := m[1]+m[3], m[2]
		if strings.HasPrefix(name, "__") {
			return ref // a macro, or a Grafana global left to the macro pass
		}
		values, all := p.selected(name)
		if len(values) == 0 {
			if all {
				errs = append(errs, fmt.Errorf("%w: variable %s: All selected and no options known", ErrExpand, name))
			} else {
				errs = append(errs, fmt.Errorf("%w: variable %s has no value", ErrExpand, name))
			}
			return ref
		}
		s, err := formatValues(values, format)
		if err != nil {
			errs = append(errs, fmt.Errorf("%w: variable %s: %w", ErrExpand, name, err))
		}
		return s
	})
	return out, errors.Join(errs...)
}

// formatValues renders values in one of Grafana's variable formats. With no
// format a single value is inserted raw and several become {a,b} (Grafana's
// glob default), which is never valid SQL: queries must name a format.
func formatValues(values []string, format string) (string, error) {
	quoted := func(esc func(string) string) string {
		q := make([]string, len(values))
		for i, v := range values {
			q[i] = "'" + esc(v) + "'"
		}
		return strings.Join(q, ",")
	}
	switch format {
	case "singlequote":
		return quoted(strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace), nil
	case "sqlstring":
		return quoted(strings.NewReplacer(`\`, `\\`, `'`, `''`).Replace), nil
	case "csv", "raw", "text":
		return strings.Join(values, ","), nil
	case "":
		if len(values) == 1 {
			return values[0], nil
		}
		return "{" + strings.Join(values, ",") + "}", nil
	}
	return "", fmt.Errorf("unsupported format %q", format)
}

// macroRE finds the backend macros; the longest names come first.
var macroRE = regexp.MustCompile(`\$__(timeFilter_ms|timeFilter|dateTimeFilter|dateFilter|dt|timeInterval_ms|timeInterval|interval_s|fromTime_ms|fromTime|toTime_ms|toTime)\b`)

func expandMacros(sql string, p Params) (string, error) {
	from, to := p.From.UTC(), p.To.UTC()
	dt := func(t time.Time) string { return fmt.Sprintf("toDateTime(%d)", t.Unix()) }
	dt64 := func(t time.Time) string { return fmt.Sprintf("fromUnixTimestamp64Milli(%d)", t.UnixMilli()) }
	date := func(t time.Time) string { return fmt.Sprintf("toDate('%s')", t.Format("2006-01-02")) }
	secs := int(math.Max(p.Interval.Seconds(), 1))
	ms := int(math.Max(float64(p.Interval.Milliseconds()), 1))
	var b strings.Builder
	for {
		loc := macroRE.FindStringSubmatchIndex(sql)
		if loc == nil {
			b.WriteString(sql)
			break
		}
		b.WriteString(sql[:loc[0]])
		name := sql[loc[2]:loc[3]]
		rest := sql[loc[1]:]
		var args []string
		if strings.HasPrefix(rest, "(") {
			a, end, err := macroArgs(rest, 0)
			if err != nil {
				return "", fmt.Errorf("%w: $__%s: %w", ErrExpand, name, err)
			}
			for _, x := range a {
				args = append(args, strings.TrimSpace(x))
			}
			rest = rest[end:]
		}
		want := map[string]int{"timeFilter": 1, "timeFilter_ms": 1, "dateFilter": 1, "dateTimeFilter": 2, "dt": 2, "timeInterval": 1, "timeInterval_ms": 1}[name]
		if len(args) != want {
			return "", fmt.Errorf("%w: $__%s: want %d arguments, got %d", ErrExpand, name, want, len(args))
		}
		switch name {
		case "timeFilter":
			fmt.Fprintf(&b, "%s >= %s AND %s <= %s", args[0], dt(from), args[0], dt(to))
		case "timeFilter_ms":
			fmt.Fprintf(&b, "%s >= %s AND %s <= %s", args[0], dt64(from), args[0], dt64(to))
		case "dateFilter":
			fmt.Fprintf(&b, "%s >= %s AND %s <= %s", args[0], date(from), args[0], date(to))
		case "dateTimeFilter", "dt":
			fmt.Fprintf(&b, "(%s >= %s AND %s <= %s) AND (%s >= %s AND %s <= %s)",
				args[0], date(from), args[0], date(to), args[1], dt(from), args[1], dt(to))
		case "timeInterval":
			fmt.Fprintf(&b, "toStartOfInterval(toDateTime(%s), INTERVAL %d second)", args[0], secs)
		case "timeInterval_ms":
			fmt.Fprintf(&b, "toStartOfInterval(toDateTime64(%s, 3), INTERVAL %d millisecond)", args[0], ms)
		case "interval_s":
			fmt.Fprintf(&b, "%d", secs)
		case "fromTime":
			b.WriteString(dt(from))
		case "toTime":
			b.WriteString(dt(to))
		case "fromTime_ms":
			b.WriteString(dt64(from))
		case "toTime_ms":
			b.WriteString(dt64(to))
		}
		sql = rest
	}
	if i := strings.Index(b.String(), "$__"); i >= 0 {
		s := b.String()[i:]
		return "", fmt.Errorf("%w: unknown macro %.30s", ErrExpand, s)
	}
	return b.String(), nil
}
