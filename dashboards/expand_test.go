package dashboards

import (
	"errors"
	"testing"
	"time"
)

func TestExpand(t *testing.T) {
	from := time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)
	to := time.Date(2026, 3, 4, 12, 30, 0, 500e6, time.UTC)
	base := Params{From: from, To: to, Interval: 90 * time.Second,
		Options: map[string][]string{"plan": {"free", "pro"}, "database": {"telemetry"}}}
	with := func(vars map[string][]string) Params { p := base; p.Vars = vars; return p }
	tests := []struct {
		name, sql string
		p         Params
		want      string
		err       error
	}{
		{"timeFilter", "WHERE $__timeFilter(timestamp)", base, "WHERE timestamp >= toDateTime(1772445600) AND timestamp <= toDateTime(1772627400)", nil},
		{"timeFilter_ms", "$__timeFilter_ms(ts)", base, "ts >= fromUnixTimestamp64Milli(1772445600000) AND ts <= fromUnixTimestamp64Milli(1772627400500)", nil},
		{"dateFilter", "$__dateFilter(day)", base, "day >= toDate('2026-03-02') AND day <= toDate('2026-03-04')", nil},
		{"dateTimeFilter", "$__dt(day, ts)", base, "(day >= toDate('2026-03-02') AND day <= toDate('2026-03-04')) AND (ts >= toDateTime(1772445600) AND ts <= toDateTime(1772627400))", nil},
		{"timeInterval", "$__timeInterval(timestamp)", base, "toStartOfInterval(toDateTime(timestamp), INTERVAL 90 second)", nil},
		{"timeInterval_ms", "$__timeInterval_ms(timestamp)", base, "toStartOfInterval(toDateTime64(timestamp, 3), INTERVAL 90000 millisecond)", nil},
		{"interval_s", "x / $__interval_s", base, "x / 90", nil},
		{"from and to", "$__fromTime, $__toTime, $__fromTime_ms, $__toTime_ms", base, "toDateTime(1772445600), toDateTime(1772627400), fromUnixTimestamp64Milli(1772445600000), fromUnixTimestamp64Milli(1772627400500)", nil},
		{"conditionalAll all", "WHERE $__conditionalAll(plan IN (${plan:singlequote}), $plan)", base, "WHERE 1=1", nil},
		{"conditionalAll explicit all", "WHERE $__conditionalAll(plan IN (${plan:singlequote}), ${plan})", with(map[string][]string{"plan": {AllValue}}), "WHERE 1=1", nil},
		{"conditionalAll some", "WHERE $__conditionalAll(plan IN (${plan:singlequote}), $plan) AND x", with(map[string][]string{"plan": {"pro"}}), "WHERE plan IN ('pro') AND x", nil},
		{"conditionalAll nested parens", "$__conditionalAll(f(a, (b)) = 1 AND p IN (${plan:singlequote}), $plan)", with(map[string][]string{"plan": {"free", "pro"}}), "f(a, (b)) = 1 AND p IN ('free','pro')", nil},
		// The group filter's branch switch: the plugin replaces the macro
		// with 1=1 for All, its condition otherwise, however often it occurs.
		{"branch switch all", "WHERE (span <= 21600 OR NOT ($__conditionalAll(0=1, $group))) AND $__conditionalAll(0=1, $group)", base,
			"WHERE (span <= 21600 OR NOT (1=1)) AND 1=1", nil},
		{"branch switch group", "WHERE (span <= 21600 OR NOT ($__conditionalAll(0=1, $group))) AND $__conditionalAll(0=1, $group)", with(map[string][]string{"group": {"org-a"}}),
			"WHERE (span <= 21600 OR NOT (0=1)) AND 0=1", nil},
		{"membership subquery", "AND ($__conditionalAll(group_id IN (${group:singlequote}) OR user_id IN (SELECT user_id FROM t WHERE group_id IN (${group:singlequote}) AND user_id != ''), $group))",
			with(map[string][]string{"group": {"org-a", "o'b"}}),
			`AND (group_id IN ('org-a','o\'b') OR user_id IN (SELECT user_id FROM t WHERE group_id IN ('org-a','o\'b') AND user_id != ''))`, nil},
		{"membership all", "AND ($__conditionalAll(group_id IN (${group:singlequote}) OR user_id IN (SELECT user_id FROM t WHERE group_id IN (${group:singlequote})), $group))", base,
			"AND (1=1)", nil},
		{"singlequote escapes", "${b:singlequote}", with(map[string][]string{"b": {`it's`, `back\`}}), `'it\'s','back\\'`, nil},
		{"sqlstring", "${s:sqlstring}", with(map[string][]string{"s": {"o'k"}}), "'o''k'", nil},
		{"csv and bare", "$database.t, ${plan:csv}", with(map[string][]string{"plan": {"free", "pro"}}), "telemetry.t, free,pro", nil},
		{"all spelled out", "IN (${plan:singlequote})", base, "IN ('free','pro')", nil},
		{"default interval", "$__interval_s", Params{From: from, To: from.Add(24 * time.Hour)}, "864", nil},
		{"unknown variable", "$nope", base, "", ErrExpand},
		{"unknown format", "${plan:json}", base, "", ErrExpand},
		{"bad arity", "$__timeFilter(a, b)", base, "", ErrExpand},
		{"unbalanced", "$__timeFilter(a", base, "", ErrExpand},
		{"unknown macro", "$__timeGroup(ts, 1h)", base, "", ErrExpand},
		{"conditionalAll without variable", "$__conditionalAll(a = 1, b)", base, "", ErrExpand},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Expand(tc.sql, tc.p)
			if tc.err != nil {
				if !errors.Is(err, tc.err) {
					t.Fatalf("Expand(%q) = %q, %v; want error %v", tc.sql, got, err, tc.err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("Expand(%q)\n got %q, %v\nwant %q", tc.sql, got, err, tc.want)
			}
		})
	}
}
