package dashboards

import (
	"context"
	"fmt"
	"math"
	"math/bits"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/sora3web/telemetry/schema"
)

// scenario is one setting of the dashboards' time range and variables.
type scenario struct {
	name                      string
	from, to                  time.Time
	interval                  time.Duration
	plans, qualities, browser []string // nil: All
	// groups is the product dashboard's group filter (nil: All) and
	// member its meaning in Go (inGroups).
	groups  []string
	member  func(*schema.Enriched) bool
	session string
	// explore holds the explorer's filters (explorer.json's textboxes);
	// event is the occurrence it opens.
	explore map[string]string
	event   string
}

func (s scenario) params(d *Dashboard) Params {
	vars := map[string][]string{"plan": s.plans, "quality": s.qualities, "browser": s.browser, "group": s.groups}
	if d.File == "explorer.json" {
		vars = map[string][]string{"plan": s.plans, "event_id": {s.event}}
		for k, v := range s.explore {
			vars[k] = []string{v}
		}
	}
	return Params{From: s.from, To: s.to, Interval: s.interval, Vars: vars, Options: d.Options()}
}

// Predicates mirroring the panels' WHERE clauses.
func in(set []string, v string) bool { return set == nil || slices.Contains(set, v) }
func (s scenario) dayIn(e *schema.Enriched) bool {
	d := e.Timestamp.UTC().Truncate(24 * time.Hour)
	return !d.Before(s.from.UTC().Truncate(24*time.Hour)) && d.Before(s.to)
}

// step is the bucket the panels take for the scenario's range: a minute up
// to 6 h, an hour up to 7 days, a day beyond.
func (s scenario) step() time.Duration {
	switch span := s.to.Sub(s.from); {
	case span <= 6*time.Hour:
		return time.Minute
	case span <= 7*24*time.Hour:
		return time.Hour
	}
	return 24 * time.Hour
}

// bucketIn mirrors the rollup source's range: the raw events of the range
// (minutes), the hours from the hour of from that start before to, or the
// days from the day of from that start before to.
func (s scenario) bucketIn(e *schema.Enriched) bool {
	switch s.step() {
	case time.Minute:
		return s.tsIn(e)
	case time.Hour:
		return s.hourIn(e)
	}
	return s.dayIn(e)
}

// hourIn mirrors a read of rollups_hourly: the hours from the hour of
// from that start before to.
func (s scenario) hourIn(e *schema.Enriched) bool {
	h := e.Timestamp.UTC().Truncate(time.Hour)
	return !h.Before(s.from.UTC().Truncate(time.Hour)) && h.Before(s.to)
}

// bucket is e's time bucket, the first one drawn at from.
func (s scenario) bucket(e *schema.Enriched) time.Time {
	return s.clamp(e.Timestamp.UTC().Truncate(s.step()))
}

// clamp draws a bucket that starts before the range at the range's start.
func (s scenario) clamp(t time.Time) time.Time {
	if t.Before(s.from) {
		return s.from.UTC()
	}
	return t
}

func (s scenario) tsIn(e *schema.Enriched) bool {
	return !e.Timestamp.Before(s.from) && !e.Timestamp.After(s.to)
}
func (s scenario) pb(e *schema.Enriched) bool {
	return in(s.plans, e.Plan) && in(s.browser, e.Device.Browser) && (s.member == nil || s.member(e))
}

// inGroups mirrors the group filter: an event belongs to one of groups
// when its own group_id is one of them, or its user_id or anonymous_id
// joined one of them by a group call (group_members, filled from the
// events of type group with a group_id), whenever that call came.
func inGroups(ev []schema.Enriched, groups []string) func(*schema.Enriched) bool {
	users, anons := map[string]bool{}, map[string]bool{}
	for i := range ev {
		if e := &ev[i]; e.Type == schema.TypeGroup && e.GroupID != "" && slices.Contains(groups, e.GroupID) {
			users[e.UserID] = e.UserID != ""
			anons[e.AnonymousID] = e.AnonymousID != ""
		}
	}
	return func(e *schema.Enriched) bool {
		return slices.Contains(groups, e.GroupID) || users[e.UserID] || anons[e.AnonymousID]
	}
}

// grouped is s filtered to groups.
func (s scenario) grouped(ev []schema.Enriched, groups ...string) scenario {
	s.name += "/" + strings.Join(groups, "+")
	s.groups, s.member = groups, inGroups(ev, groups)
	return s
}
func (s scenario) pqb(e *schema.Enriched) bool {
	return s.pb(e) && in(s.qualities, e.Properties.Quality)
}
func notBot(e *schema.Enriched) bool { return e.Device.Class != "bot" }
func isType(types ...string) func(*schema.Enriched) bool {
	return func(e *schema.Enriched) bool { return slices.Contains(types, e.Type) }
}
func isError(e *schema.Enriched) bool {
	return e.Type == schema.TypeClientError || e.Type == schema.TypeGenerationFailed
}

// uid is the rollup's user: user_id, else anonymous_id, else none.
func uid(e *schema.Enriched) string {
	if e.UserID != "" {
		return e.UserID
	}
	return e.AnonymousID
}

func where(events []schema.Enriched, preds ...func(*schema.Enriched) bool) []*schema.Enriched {
	var out []*schema.Enriched
next:
	for i := range events {
		for _, p := range preds {
			if !p(&events[i]) {
				continue next
			}
		}
		out = append(out, &events[i])
	}
	return out
}

// group is an ordered group-by over events.
type group struct {
	keys []string
	rows map[string][]*schema.Enriched
}

func groupBy(es []*schema.Enriched, key func(*schema.Enriched) string) *group {
	g := &group{rows: map[string][]*schema.Enriched{}}
	for _, e := range es {
		k := key(e)
		if _, ok := g.rows[k]; !ok {
			g.keys = append(g.keys, k)
		}
		g.rows[k] = append(g.rows[k], e)
	}
	return g
}

func day(e *schema.Enriched) time.Time { return e.Timestamp.UTC().Truncate(24 * time.Hour) }
func week(e *schema.Enriched) time.Time {
	d := day(e)
	return d.AddDate(0, 0, -((int(d.Weekday()) + 6) % 7))
}
func month(e *schema.Enriched) time.Time {
	t := e.Timestamp.UTC()
	return time.Date(t.Year(), t.Month(), 1, 0, 0, 0, 0, time.UTC)
}
func tkey(t time.Time) string { return t.Format(time.RFC3339) }
func ptime(k string) time.Time {
	t, _ := time.Parse(time.RFC3339, k)
	return t
}

func count(es []*schema.Enriched, p func(*schema.Enriched) bool) float64 {
	n := 0.0
	for _, e := range es {
		if p == nil || p(e) {
			n++
		}
	}
	return n
}

func users(es []*schema.Enriched) float64 {
	set := map[string]bool{}
	for _, e := range es {
		if u := uid(e); u != "" {
			set[u] = true
		}
	}
	return float64(len(set))
}

func ratio(a, b float64) any {
	if b == 0 {
		return nil
	}
	return a / b
}

func sortRows(rows [][]any, less func(a, b []any) bool) [][]any {
	sort.SliceStable(rows, func(i, j int) bool { return less(rows[i], rows[j]) })
	return rows
}

// byKey orders rows by the string (or time) columns idx, ascending.
func byCols(idx ...int) func(a, b []any) bool {
	return func(a, b []any) bool {
		for _, i := range idx {
			x, y := fmt.Sprint(a[i]), fmt.Sprint(b[i])
			if ta, ok := a[i].(time.Time); ok {
				x, y = tkey(ta), tkey(b[i].(time.Time))
			}
			if x != y {
				return x < y
			}
		}
		return false
	}
}

// byCountDesc orders by the number in column n descending, then the
// string in column k.
func byCountDesc(n int, k ...int) func(a, b []any) bool {
	return func(a, b []any) bool {
		if a[n].(float64) != b[n].(float64) {
			return a[n].(float64) > b[n].(float64)
		}
		return byCols(k...)(a, b)
	}
}

func enumOrder(col int, enum []string) func(a, b []any) bool {
	return func(a, b []any) bool {
		return slices.Index(enum, a[col].(string)) < slices.Index(enum, b[col].(string))
	}
}

// interpolated is ClickHouse's quantile over all values (a reservoir not
// yet full): linear interpolation at level*(n-1); it returns the range the
// answer must fall in.
func interpolated(sorted []float64, level float64) (lo, hi float64) {
	x := level * float64(len(sorted)-1)
	return sorted[int(math.Floor(x))], sorted[int(math.Ceil(x))]
}

// exact is ClickHouse's quantileExact: the element at level*n of the sorted values.
func exact(sorted []float64, level float64) float64 {
	return sorted[min(int(level*float64(len(sorted))), len(sorted)-1)]
}

func latencies(es []*schema.Enriched) []float64 {
	var out []float64
	for _, e := range es {
		if e.Properties.LatencyMS > 0 {
			out = append(out, float64(e.Properties.LatencyMS))
		}
	}
	sort.Float64s(out)
	return out
}

// check compares a result against expected rows, with a tolerance per
// column (absolute; 0 means exact) or a custom check.
type expectation struct {
	columns []string
	rows    [][]any
	tol     map[int]float64
	// within, when set, replaces the value comparison of column i with a
	// range check [lo, hi] taken from rows[r][i] as [2]float64.
	within map[int]bool
}

// expected holds, per panel key, the expected answer in a scenario computed
// from the seeded events in Go.
var expected = map[string]func(s scenario, ev []schema.Enriched) expectation{
	"product-1": func(s scenario, ev []schema.Enriched) expectation {
		es := where(ev, s.bucketIn, isType(schema.TypeGenerationRequested), notBot, s.pqb)
		g := groupBy(es, func(e *schema.Enriched) string {
			return tkey(s.bucket(e)) + "|" + e.Plan + " / " + e.Properties.Quality
		})
		var rows [][]any
		for _, k := range g.keys {
			t, series, _ := strings.Cut(k, "|")
			rows = append(rows, []any{ptime(t), series, float64(len(g.rows[k]))})
		}
		return expectation{columns: []string{"time", "series", "generations"}, rows: sortRows(rows, byCols(0, 1))}
	},
	"product-2": func(s scenario, ev []schema.Enriched) expectation {
		es := where(ev, s.bucketIn, isType(schema.TypeGenerationRequested), notBot, s.pqb)
		g := groupBy(es, func(e *schema.Enriched) string { return e.Properties.Resolution })
		var rows [][]any
		for _, k := range g.keys {
			rows = append(rows, []any{k, float64(len(g.rows[k]))})
		}
		return expectation{columns: []string{"resolution", "generations"}, rows: sortRows(rows, enumOrder(0, schema.Resolutions))}
	},
	"product-3": func(s scenario, ev []schema.Enriched) expectation {
		es := where(ev, s.bucketIn, isType(schema.TypeGenerationRequested), notBot, s.pqb)
		g := groupBy(es, func(e *schema.Enriched) string { return e.Properties.AspectRatio })
		var rows [][]any
		for _, k := range g.keys {
			rows = append(rows, []any{k, float64(len(g.rows[k]))})
		}
		return expectation{columns: []string{"aspect_ratio", "generations"}, rows: sortRows(rows, byCountDesc(1, 0))}
	},
	"product-4": func(s scenario, ev []schema.Enriched) expectation {
		es := where(ev, s.bucketIn, isType(schema.TypeGenerationRequested), notBot, s.pqb)
		share := ratio(count(es, func(e *schema.Enriched) bool { return e.Properties.Resolution == "2160p" }), float64(len(es)))
		return expectation{columns: []string{"share_2160p"}, rows: [][]any{{share}}, tol: map[int]float64{0: 1e-12}}
	},
	"product-5": func(s scenario, ev []schema.Enriched) expectation {
		es := where(ev, s.bucketIn, notBot, s.pqb)
		r := ratio(count(es, isType(schema.TypeVideoDownloaded)), count(es, isType(schema.TypeGenerationCompleted)))
		return expectation{columns: []string{"downloads_per_completed"}, rows: [][]any{{r}}, tol: map[int]float64{0: 1e-12}}
	},
	"product-6": func(s scenario, ev []schema.Enriched) expectation {
		es := where(ev, s.tsIn, isType(schema.TypeGenerationRequested), notBot, s.pqb)
		g := groupBy(es, func(e *schema.Enriched) string { return fmt.Sprint(int(math.Floor(e.Properties.DurationS))) })
		var rows [][]any
		for _, k := range g.keys {
			rows = append(rows, []any{k, float64(len(g.rows[k]))})
		}
		return expectation{columns: []string{"seconds", "generations"}, rows: sortRows(rows, func(a, b []any) bool {
			return len(a[0].(string)) < len(b[0].(string)) || (len(a[0].(string)) == len(b[0].(string)) && a[0].(string) < b[0].(string))
		})}
	},
	"product-7": func(s scenario, ev []schema.Enriched) expectation {
		es := where(ev, s.bucketIn, isType(schema.TypeGenerationRequested, schema.TypeGenerationCompleted, schema.TypeGenerationFailed), notBot, s.pqb)
		g := groupBy(es, func(e *schema.Enriched) string { return tkey(s.bucket(e)) })
		var rows [][]any
		for _, k := range g.keys {
			r := g.rows[k]
			req := count(r, isType(schema.TypeGenerationRequested))
			rows = append(rows, []any{ptime(k), ratio(count(r, isType(schema.TypeGenerationCompleted)), req), ratio(count(r, isType(schema.TypeGenerationFailed)), req)})
		}
		return expectation{columns: []string{"time", "completion_rate", "failure_rate"}, rows: sortRows(rows, byCols(0)), tol: map[int]float64{1: 1e-12, 2: 1e-12}}
	},
	"product-8": func(s scenario, ev []schema.Enriched) expectation {
		es := where(ev, s.bucketIn, isType(schema.TypeGenerationCompleted), notBot, s.pqb)
		g := groupBy(es, func(e *schema.Enriched) string { return e.Properties.Quality })
		var rows [][]any
		for _, k := range g.keys {
			l := latencies(g.rows[k])
			row := []any{k}
			for _, lv := range []float64{0.5, 0.9, 0.99} {
				lo, hi := interpolated(l, lv)
				row = append(row, [2]float64{math.Round(lo) - 1, math.Round(hi) + 1})
			}
			rows = append(rows, row)
		}
		return expectation{columns: []string{"quality", "p50_ms", "p90_ms", "p99_ms"}, rows: sortRows(rows, enumOrder(0, schema.Qualities)),
			within: map[int]bool{1: true, 2: true, 3: true}}
	},
	"product-9": func(s scenario, ev []schema.Enriched) expectation {
		es := where(ev, s.tsIn, isType(schema.TypeGenerationCompleted), notBot, s.pqb)
		g := groupBy(es, func(e *schema.Enriched) string { return e.Properties.Quality })
		var rows [][]any
		for _, k := range g.keys {
			l := latencies(g.rows[k])
			rows = append(rows, []any{k, exact(l, 0.5), exact(l, 0.95)})
		}
		return expectation{columns: []string{"quality", "p50_ms", "p95_ms"}, rows: sortRows(rows, enumOrder(0, schema.Qualities))}
	},
	"product-10": func(s scenario, ev []schema.Enriched) expectation {
		lower := s.to.Add(-30 * 24 * time.Hour)
		if s.from.After(lower) {
			lower = s.from
		}
		es := where(ev, func(e *schema.Enriched) bool { return e.Timestamp.After(lower) && !e.Timestamp.After(s.to) }, notBot, s.pb)
		after := func(d time.Duration) []*schema.Enriched {
			var out []*schema.Enriched
			for _, e := range es {
				if e.Timestamp.After(s.to.Add(-d)) {
					out = append(out, e)
				}
			}
			return out
		}
		dau, wau, mau := users(after(24*time.Hour)), users(after(7*24*time.Hour)), users(es)
		var stick any
		if mau > 0 {
			stick = math.Round(dau/mau*1e4) / 1e4
		}
		return expectation{columns: []string{"dau", "wau", "mau", "dau_per_mau"}, rows: [][]any{{dau, wau, mau, stick}}, tol: map[int]float64{3: 1e-9}}
	},
	"product-11": activeUsers("dau", day),
	"product-12": activeUsers("wau", week),
	"product-13": activeUsers("mau", month),
	"product-14": func(s scenario, ev []schema.Enriched) expectation {
		es := where(ev, s.tsIn, isType(schema.TypeGenerationRequested), func(e *schema.Enriched) bool { return !e.OptedOut }, notBot, s.pqb)
		g := groupBy(es, func(e *schema.Enriched) string { return tkey(s.clamp(week(e))) + "|" + e.Plan })
		var rows [][]any
		for _, k := range g.keys {
			t, plan, _ := strings.Cut(k, "|")
			rows = append(rows, []any{ptime(t), plan, float64(len(g.rows[k])) / users(g.rows[k])})
		}
		return expectation{columns: []string{"time", "plan", "generations_per_user"}, rows: sortRows(rows, byCols(0, 1)), tol: map[int]float64{2: 1e-12}}
	},
	"product-18": func(s scenario, ev []schema.Enriched) expectation {
		es := where(ev, s.bucketIn, isType(schema.TypeGenerationRequested, schema.TypeGenerationCompleted, schema.TypeVideoDownloaded), notBot, s.pqb)
		var rows [][]any
		for _, by := range []struct {
			name string
			key  func(*schema.Enriched) string
			less func(a, b []any) bool
		}{
			{"plan", func(e *schema.Enriched) string { return e.Plan }, byCols(1)},
			{"quality", func(e *schema.Enriched) string { return e.Properties.Quality }, enumOrder(1, schema.Qualities)},
		} {
			g := groupBy(es, by.key)
			var part [][]any
			for _, k := range g.keys {
				r := g.rows[k]
				req, done, dl := count(r, isType(schema.TypeGenerationRequested)), count(r, isType(schema.TypeGenerationCompleted)), count(r, isType(schema.TypeVideoDownloaded))
				part = append(part, []any{by.name, k, req, done, dl, ratio(done, req), ratio(dl, done)})
			}
			rows = append(rows, sortRows(part, by.less)...)
		}
		return expectation{columns: []string{"by", "value", "requested", "completed", "downloaded", "completed_rate", "downloaded_rate"}, rows: rows,
			tol: map[int]float64{5: 1e-12, 6: 1e-12}}
	},
	"product-19": func(s scenario, ev []schema.Enriched) expectation {
		es := where(ev, s.tsIn, isType(schema.TypeGenerationRequested), func(e *schema.Enriched) bool { return !e.OptedOut && uid(e) != "" }, notBot, s.pqb)
		sort.SliceStable(es, func(i, j int) bool { return es[i].Timestamp.Before(es[j].Timestamp) })
		first := map[string]*schema.Enriched{}
		active := map[string]map[time.Time]bool{}
		for _, e := range es {
			u := uid(e)
			if first[u] == nil {
				first[u] = e
				active[u] = map[time.Time]bool{}
			}
			active[u][week(e)] = true
		}
		n := map[string]float64{}
		var keys []string
		for u, f := range first {
			for w := range active[u] {
				k := fmt.Sprintf("%s|%s|%03d", f.Plan, tkey(week(f)), int(w.Sub(week(f)).Hours()/24/7))
				if n[k] == 0 {
					keys = append(keys, k)
				}
				n[k]++
			}
		}
		sort.Strings(keys)
		var rows [][]any
		for _, k := range keys {
			parts := strings.Split(k, "|")
			var after int
			fmt.Sscan(parts[2], &after)
			size := n[parts[0]+"|"+parts[1]+"|000"]
			rows = append(rows, []any{parts[0], ptime(parts[1]), float64(after), n[k], math.Round(n[k]/size*1e4) / 1e4})
		}
		return expectation{columns: []string{"plan", "cohort", "weeks_after", "users", "retention"}, rows: rows, tol: map[int]float64{4: 1e-9}}
	},
	"product-20": func(s scenario, ev []schema.Enriched) expectation {
		es := where(ev, s.bucketIn, isType(schema.TypeGenerationRequested), notBot, s.pqb)
		g := groupBy(es, func(e *schema.Enriched) string { return tkey(s.bucket(e)) + "|" + e.Plan })
		var rows [][]any
		for _, k := range g.keys {
			t, plan, _ := strings.Cut(k, "|")
			r := g.rows[k]
			n := float64(len(r))
			rows = append(rows, []any{ptime(t), plan,
				ratio(count(r, func(e *schema.Enriched) bool { return e.Properties.Resolution == "2160p" }), n),
				ratio(count(r, func(e *schema.Enriched) bool { return e.Properties.Quality == "uhd" }), n)})
		}
		return expectation{columns: []string{"time", "plan", "share_2160p", "share_uhd"}, rows: sortRows(rows, byCols(0, 1)), tol: map[int]float64{2: 1e-12, 3: 1e-12}}
	},
	"product-21": func(s scenario, ev []schema.Enriched) expectation {
		in := s.tsIn
		if s.step() != time.Minute {
			in = s.hourIn
		}
		g := groupBy(where(ev, in, isType(schema.TypeGenerationRequested), notBot, s.pqb), func(e *schema.Enriched) string { return e.Properties.Model })
		var rows [][]any
		for _, k := range g.keys {
			rows = append(rows, []any{k, float64(len(g.rows[k]))})
		}
		rows = sortRows(rows, byCountDesc(1, 0))
		return expectation{columns: []string{"model", "generations"}, rows: rows[:min(10, len(rows))]}
	},
	"product-22": func(s scenario, ev []schema.Enriched) expectation {
		es := where(ev, s.tsIn, isType(schema.TypeGenerationCompleted), func(e *schema.Enriched) bool { return e.Properties.LatencyMS > 0 }, notBot, s.pqb)
		g := groupBy(es, func(e *schema.Enriched) string {
			return fmt.Sprintf("%s|%d", tkey(s.bucket(e)), uint64(1)<<(bits.Len64(uint64(e.Properties.LatencyMS))-1))
		})
		var rows [][]any
		for _, k := range g.keys {
			t, b, _ := strings.Cut(k, "|")
			rows = append(rows, []any{ptime(t), b, float64(len(g.rows[k]))})
		}
		return expectation{columns: []string{"time", "latency_from_ms", "generations"}, rows: sortRows(rows, func(a, b []any) bool {
			if !a[0].(time.Time).Equal(b[0].(time.Time)) {
				return a[0].(time.Time).Before(b[0].(time.Time))
			}
			return len(a[1].(string)) < len(b[1].(string)) || len(a[1].(string)) == len(b[1].(string)) && a[1].(string) < b[1].(string)
		})}
	},
	"product-15": clients("device_class", func(e *schema.Enriched) string { return e.Device.Class }),
	"product-16": clients("device_os", func(e *schema.Enriched) string { return e.Device.OS }),
	"product-17": clients("device_browser", func(e *schema.Enriched) string { return e.Device.Browser }),

	"errors-1": func(s scenario, ev []schema.Enriched) expectation {
		return errorsOverTime(s, where(ev, s.tsIn, isError, s.pb))
	},
	"errors-2": func(s scenario, ev []schema.Enriched) expectation {
		es := where(ev, s.bucketIn, s.pb)
		g := groupBy(es, func(e *schema.Enriched) string { return tkey(s.bucket(e)) })
		var rows [][]any
		for _, k := range g.keys {
			r := g.rows[k]
			rows = append(rows, []any{ptime(k), ratio(count(r, isError)*1000, float64(len(r)))})
		}
		return expectation{columns: []string{"time", "errors_per_1000_events"}, rows: sortRows(rows, byCols(0)), tol: map[int]float64{1: 1e-9}}
	},
	"errors-3": func(s scenario, ev []schema.Enriched) expectation {
		es := where(ev, s.tsIn, isError, s.pb)
		g := groupBy(es, func(e *schema.Enriched) string { return e.Properties.ErrorCode + "\x00" + e.Properties.ErrorMessage })
		var rows [][]any
		for _, k := range g.keys {
			code, msg, _ := strings.Cut(k, "\x00")
			sessions := map[string]bool{}
			var last time.Time
			for _, e := range g.rows[k] {
				if e.SessionID != "" {
					sessions[e.SessionID] = true
				}
				if e.Timestamp.After(last) {
					last = e.Timestamp.UTC()
				}
			}
			rows = append(rows, []any{code, msg, float64(len(g.rows[k])), float64(len(sessions)), last})
		}
		rows = sortRows(rows, byCountDesc(2, 0, 1))
		return expectation{columns: []string{"error_code", "error_message", "errors", "sessions", "last_seen"}, rows: rows[:min(20, len(rows))]}
	},
	"errors-4": errorsBy("browser", func(e *schema.Enriched) string { return e.Device.Browser }),
	"errors-5": errorsBy("os", func(e *schema.Enriched) string { return e.Device.OS }),
	"errors-6": errorsBy("app_version", func(e *schema.Enriched) string { return e.Context.AppVersion }),
	"errors-7": func(s scenario, ev []schema.Enriched) expectation {
		es := where(ev, s.bucketIn, isType(schema.TypeGenerationRequested, schema.TypeGenerationFailed), notBot, s.pqb)
		g := groupBy(es, func(e *schema.Enriched) string { return e.Properties.Quality + "|" + e.Properties.Resolution })
		var rows [][]any
		for _, k := range g.keys {
			q, r, _ := strings.Cut(k, "|")
			failed, req := count(g.rows[k], isType(schema.TypeGenerationFailed)), count(g.rows[k], isType(schema.TypeGenerationRequested))
			rows = append(rows, []any{q, r, failed, req, ratio(failed, req)})
		}
		return expectation{columns: []string{"quality", "resolution", "failed", "requested", "failure_rate"}, rows: sortRows(rows, func(a, b []any) bool {
			qa, qb := slices.Index(schema.Qualities, a[0].(string)), slices.Index(schema.Qualities, b[0].(string))
			if qa != qb {
				return qa < qb
			}
			return slices.Index(schema.Resolutions, a[1].(string)) < slices.Index(schema.Resolutions, b[1].(string))
		}), tol: map[int]float64{4: 1e-12}}
	},
}

// errorsOverTime counts errors per bucket and code.
func errorsOverTime(s scenario, es []*schema.Enriched) expectation {
	g := groupBy(es, func(e *schema.Enriched) string { return tkey(s.bucket(e)) + "|" + e.Properties.ErrorCode })
	var rows [][]any
	for _, k := range g.keys {
		t, code, _ := strings.Cut(k, "|")
		rows = append(rows, []any{ptime(t), code, float64(len(g.rows[k]))})
	}
	return expectation{columns: []string{"time", "error_code", "errors"}, rows: sortRows(rows, byCols(0, 1))}
}

func activeUsers(col string, bucket func(*schema.Enriched) time.Time) func(s scenario, ev []schema.Enriched) expectation {
	return func(s scenario, ev []schema.Enriched) expectation {
		es := where(ev, s.tsIn, notBot, s.pb)
		g := groupBy(es, func(e *schema.Enriched) string { return tkey(s.clamp(bucket(e))) + "|" + e.Plan })
		var rows [][]any
		for _, k := range g.keys {
			t, plan, _ := strings.Cut(k, "|")
			rows = append(rows, []any{ptime(t), plan, users(g.rows[k])})
		}
		return expectation{columns: []string{"time", "plan", col}, rows: sortRows(rows, byCols(0, 1))}
	}
}

func clients(col string, key func(*schema.Enriched) string) func(s scenario, ev []schema.Enriched) expectation {
	return func(s scenario, ev []schema.Enriched) expectation {
		es := where(ev, s.bucketIn, s.pb)
		g := groupBy(es, key)
		var rows [][]any
		for _, k := range g.keys {
			rows = append(rows, []any{k, users(g.rows[k]), float64(len(g.rows[k]))})
		}
		return expectation{columns: []string{col, "users", "events"}, rows: sortRows(rows, byCountDesc(1, 0))}
	}
}

func errorsBy(col string, key func(*schema.Enriched) string) func(s scenario, ev []schema.Enriched) expectation {
	return func(s scenario, ev []schema.Enriched) expectation {
		es := where(ev, s.tsIn, isError, s.pb)
		g := groupBy(es, key)
		var rows [][]any
		for _, k := range g.keys {
			rows = append(rows, []any{k, float64(len(g.rows[k]))})
		}
		return expectation{columns: []string{col, "errors"}, rows: sortRows(rows, byCountDesc(1, 0))}
	}
}

// explored mirrors the explorer's WHERE: an error of the range matching
// every filter set (the message text as a case-insensitive substring of
// the message or the code).
func (s scenario) explored(e *schema.Enriched) bool {
	if !isError(e) || !in(s.plans, e.Plan) {
		return false
	}
	p := e.Properties
	cols := map[string]string{"code": p.ErrorCode, "app_version": e.Context.AppVersion, "browser": e.Device.Browser, "os": e.Device.OS,
		"user_id": e.UserID, "anonymous_id": e.AnonymousID, "session_id": e.SessionID, "generation_id": p.GenerationID}
	for k, v := range s.explore {
		if v == "" {
			continue
		}
		if k == "q" {
			if !strings.Contains(strings.ToLower(p.ErrorMessage), strings.ToLower(v)) && !strings.Contains(strings.ToLower(p.ErrorCode), strings.ToLower(v)) {
				return false
			}
		} else if cols[k] != v {
			return false
		}
	}
	return true
}

// normalizeRE is the explorer's message normalisation (RE2 in both).
var normalizeRE = regexp.MustCompile(`(0x)?[0-9a-fA-F]{8,}(-[0-9a-fA-F]{4,})*|[0-9]+`)

// explorerExpected are the explorer dashboard's answers.
var explorerExpected = map[string]func(s scenario, ev []schema.Enriched) expectation{
	"explorer-1": func(s scenario, ev []schema.Enriched) expectation {
		g := groupBy(where(ev, s.tsIn, s.explored), func(e *schema.Enriched) string {
			return e.Properties.ErrorCode + "\x00" + normalizeRE.ReplaceAllString(e.Properties.ErrorMessage, "#")
		})
		var rows [][]any
		for _, k := range g.keys {
			code, msg, _ := strings.Cut(k, "\x00")
			r := g.rows[k]
			first, last := r[0].Timestamp.UTC(), r[0].Timestamp.UTC()
			for _, e := range r {
				if e.Timestamp.Before(first) {
					first = e.Timestamp.UTC()
				}
				if e.Timestamp.After(last) {
					last = e.Timestamp.UTC()
				}
			}
			rows = append(rows, []any{code, msg, float64(len(r)), users(r), first, last})
		}
		rows = sortRows(rows, byCountDesc(2, 0, 1))
		return expectation{columns: []string{"error_code", "message", "errors", "users", "first_seen", "last_seen"}, rows: rows[:min(200, len(rows))]}
	},
	"explorer-2": func(s scenario, ev []schema.Enriched) expectation {
		return errorsOverTime(s, where(ev, s.tsIn, s.explored))
	},
	"explorer-3": func(s scenario, ev []schema.Enriched) expectation {
		es := where(ev, s.tsIn, s.explored)
		sort.SliceStable(es, func(i, j int) bool { return es[i].Timestamp.After(es[j].Timestamp) })
		var rows [][]any
		for _, e := range es[:min(100, len(es))] {
			p := e.Properties
			rows = append(rows, []any{e.EventID, e.Timestamp.UTC(), e.Type, p.ErrorCode, p.ErrorMessage, e.Device.Browser, e.Device.OS, e.Context.AppVersion, e.Plan, e.Context.PageURL, e.SessionID})
		}
		return expectation{columns: []string{"event_id", "timestamp", "type", "error_code", "error_message", "browser", "os", "app_version", "plan", "page_url", "session_id"}, rows: rows}
	},
	"explorer-4": func(s scenario, ev []schema.Enriched) expectation {
		var rows [][]any
		for _, e := range where(ev, func(e *schema.Enriched) bool { return e.EventID == s.event }) {
			p := e.Properties
			rows = append(rows, []any{e.EventID, e.Timestamp.UTC(), e.Type, p.ErrorCode, p.ErrorMessage, p.ErrorStack, e.Context.PageURL,
				e.Device.Class, e.Device.Browser, e.Device.BrowserVersion, e.Device.OS, e.Device.OSVersion, e.Context.AppVersion, e.Plan, p.Model, p.GenerationID, e.SessionID})
		}
		return expectation{columns: []string{"event_id", "timestamp", "type", "error_code", "error_message", "error_stack", "page_url", "device_class", "browser", "browser_version", "os", "os_version", "app_version", "plan", "model", "generation_id", "session_id"}, rows: rows}
	},
	"explorer-5": func(s scenario, ev []schema.Enriched) expectation {
		return expectation{columns: sessionColumns, rows: sessionAround(ev, s.event)}
	},
}

// sessionColumns are the columns of the explorer's session events.
var sessionColumns = []string{"timestamp", "type", "plan", "quality", "resolution", "model", "error_code", "error_message", "page_url", "browser"}

// sessionAround is what the explorer shows around occurrence id: the
// events of its session within 5 minutes either side, in order.
func sessionAround(ev []schema.Enriched, id string) [][]any {
	var at *schema.Enriched
	for i := range ev {
		if ev[i].EventID == id {
			at = &ev[i]
		}
	}
	if at == nil || at.SessionID == "" {
		return nil
	}
	es := where(ev, func(e *schema.Enriched) bool {
		return e.SessionID == at.SessionID && !e.Timestamp.Before(at.Timestamp.Add(-5*time.Minute)) && !e.Timestamp.After(at.Timestamp.Add(5*time.Minute))
	})
	sort.SliceStable(es, func(i, j int) bool { return es[i].Timestamp.Before(es[j].Timestamp) })
	var rows [][]any
	for _, e := range es {
		p := e.Properties
		rows = append(rows, []any{e.Timestamp.UTC(), e.Type, e.Plan, p.Quality, p.Resolution, p.Model, p.ErrorCode, p.ErrorMessage, e.Context.PageURL, e.Device.Browser})
	}
	return rows
}

func init() {
	// The group filter is the product dashboard's; the errors dashboard's
	// panels ignore it.
	for k, f := range expected {
		if strings.HasPrefix(k, "errors-") {
			expected[k] = func(s scenario, ev []schema.Enriched) expectation {
				s.groups, s.member = nil, nil
				return f(s, ev)
			}
		}
	}
	for k, f := range explorerExpected {
		expected[k] = f
	}
	for k, f := range historyExpected {
		expected[k] = f
	}
}

// historyDelta is a counter's increase at one snapshot.
type historyDelta struct {
	at            time.Time
	metric, attrs string
	delta         float64
}

// historyDeltas mirrors the pipeline panels' window: the snapshots from an
// hour before from to to, each less its process's previous one in that
// window (0 for the first), kept from from on.
func historyDeltas(s scenario, metrics ...string) []historyDelta {
	prev := map[string]float64{}
	var out []historyDelta
	for _, r := range historyRows() {
		if !slices.Contains(metrics, r.metric) || r.time.Before(s.from.Add(-time.Hour)) || r.time.After(s.to) {
			continue
		}
		k := r.process + "|" + r.metric + "|" + r.attrs
		d := r.value - prev[k]
		prev[k] = r.value
		if !r.time.Before(s.from) {
			out = append(out, historyDelta{r.time, r.metric, r.attrs, d})
		}
	}
	return out
}

// historyBucket is the pipeline panels' bucket of a snapshot's time.
func (s scenario) historyBucket(t time.Time) time.Time {
	return s.clamp(t.UTC().Truncate(s.step()))
}

// historySeries sums deltas per bucket and attrs (by attrs) or per bucket,
// divided by the bucket's seconds when perSecond.
func historySeries(s scenario, byAttrs, perSecond bool, metric string) [][]any {
	sums := map[string]float64{}
	for _, d := range historyDeltas(s, metric) {
		k := tkey(s.historyBucket(d.at))
		if byAttrs {
			k += "|" + d.attrs
		}
		sums[k] += d.delta
	}
	scale := 1.0
	if perSecond {
		scale = s.step().Seconds()
	}
	return keyedRows(sums, byAttrs, scale)
}

// keyedRows turns sums keyed "time" or "time|attrs" into sorted rows
// (time[, attrs], sum/scale).
func keyedRows(sums map[string]float64, byAttrs bool, scale float64) [][]any {
	var rows [][]any
	for k, v := range sums {
		t, attrs, _ := strings.Cut(k, "|")
		row := []any{ptime(t)}
		if byAttrs {
			row = append(row, attrs)
		}
		rows = append(rows, append(row, v/scale))
	}
	if byAttrs {
		return sortRows(rows, byCols(0, 1))
	}
	return sortRows(rows, byCols(0))
}

// historyGauge sums over processes and attrs (or per attrs) the highest
// value each recorded in a bucket.
func historyGauge(s scenario, byAttrs bool, metric string) [][]any {
	highest := map[string]float64{}
	for _, r := range historyRows() {
		if r.metric != metric || r.time.Before(s.from) || r.time.After(s.to) {
			continue
		}
		k := tkey(s.historyBucket(r.time)) + "|" + r.attrs + "|" + r.process
		highest[k] = max(highest[k], r.value)
	}
	sums := map[string]float64{}
	for k, v := range highest {
		parts := strings.Split(k, "|")
		key := parts[0]
		if byAttrs {
			key += "|" + parts[1]
		}
		sums[key] += v
	}
	return keyedRows(sums, byAttrs, 1)
}

// historyExpected are the recorded pipeline page's answers.
var historyExpected = map[string]func(s scenario, ev []schema.Enriched) expectation{
	"pipeline-history-1": func(s scenario, _ []schema.Enriched) expectation {
		return expectation{columns: []string{"t", "outcome_reason", "events_per_s"}, rows: historySeries(s, true, true, "telemetry.ingest.events"), tol: map[int]float64{2: 1e-9}}
	},
	"pipeline-history-2": func(s scenario, _ []schema.Enriched) expectation {
		n := map[string]float64{}
		sum := map[string]float64{}
		var keys []string
		for _, d := range historyDeltas(s, "telemetry.ingest.publish.duration.count", "telemetry.ingest.publish.duration.sum") {
			k := tkey(s.historyBucket(d.at))
			if _, ok := n[k]; !ok {
				keys = append(keys, k)
				n[k] = 0
			}
			if strings.HasSuffix(d.metric, ".count") {
				n[k] += d.delta
			} else {
				sum[k] += d.delta
			}
		}
		var rows [][]any
		for _, k := range keys {
			rows = append(rows, []any{ptime(k), ratio(1000*sum[k], n[k])})
		}
		return expectation{columns: []string{"t", "publish_ms"}, rows: sortRows(rows, byCols(0)), tol: map[int]float64{1: 1e-6}}
	},
	"pipeline-history-3": func(s scenario, _ []schema.Enriched) expectation {
		return expectation{columns: []string{"t", "messages_behind"}, rows: historyGauge(s, false, "telemetry.consumer.lag")}
	},
	"pipeline-history-4": func(s scenario, _ []schema.Enriched) expectation {
		return expectation{columns: []string{"t", "cursor", "records_behind"}, rows: historyGauge(s, true, "telemetry.wal.cursor.lag")}
	},
	"pipeline-history-5": func(s scenario, _ []schema.Enriched) expectation {
		return expectation{columns: []string{"t", "reason", "dead_letters"}, rows: historySeries(s, true, false, "telemetry.consumer.dead_letters")}
	},
	"pipeline-history-6": func(s scenario, _ []schema.Enriched) expectation {
		return expectation{columns: []string{"t", "rows_per_s"}, rows: historySeries(s, false, true, "telemetry.consumer.rows.inserted"), tol: map[int]float64{1: 1e-9}}
	},
}

// scenarios: the whole seeded window with every variable on All, and a
// window cut inside days with every variable narrowed.
func scenarios(ev []schema.Enriched) []scenario {
	scs := []scenario{
		{name: "all", from: seedFrom, to: seedTo, interval: 6 * time.Hour},
		{name: "filtered", from: seedFrom.Add(7*24*time.Hour + 5*time.Hour), to: seedFrom.Add(20*24*time.Hour + 3*time.Hour + 30*time.Minute),
			interval: time.Hour, plans: []string{"pro"}, qualities: []string{"pro", "uhd"}, browser: []string{"Chrome", "Mobile Safari", "Firefox"}},
		// Hour buckets from rollups_hourly; the range starts inside an hour.
		{name: "days", from: seedFrom.Add(9*24*time.Hour + 20*time.Minute), to: seedFrom.Add(12*24*time.Hour + 5*time.Hour)},
		// Minute buckets from raw events.
		{name: "hours", from: seedFrom.Add(15*24*time.Hour + 2*time.Hour + 30*time.Second), to: seedFrom.Add(15*24*time.Hour + 8*time.Hour)},
	}
	explore := []map[string]string{{"session_id": ""}, {"q": "failed"}, {"code": "TypeError", "app_version": "3.4.1"}, {"os": "Windows"}}
	for i := range scs {
		scs[i].session = busiestErrorSession(ev, &scs[i])
		scs[i].explore = explore[i]
		if i == 0 {
			scs[i].explore = map[string]string{"session_id": scs[i].session}
		}
		es := where(ev, scs[i].tsIn, scs[i].explored, func(e *schema.Enriched) bool { return e.SessionID != "" })
		sort.SliceStable(es, func(a, b int) bool { return es[a].Timestamp.After(es[b].Timestamp) })
		if len(es) > 0 {
			scs[i].event = es[0].EventID
		}
	}
	// The product dashboard filtered to a group: 28 days (day buckets), 3
	// days (hours) and 5½ hours (minutes), the last with two groups, whose
	// common members count once.
	return append(scs, scs[0].grouped(ev, seedGroupA), scs[2].grouped(ev, seedGroupB), scs[3].grouped(ev, seedGroupA, seedGroupB))
}

// busiestErrorSession picks, among the sessions with an error in the
// scenario's range, the one with the most events in it (the session a
// user would follow from Latest errors).
func busiestErrorSession(ev []schema.Enriched, s *scenario) string {
	n := map[string]int{}
	withError := map[string]bool{}
	for _, e := range where(ev, s.tsIn) {
		if e.SessionID == "" {
			continue
		}
		n[e.SessionID]++
		if isError(e) {
			withError[e.SessionID] = true
		}
	}
	best := ""
	for id := range withError {
		if best == "" || n[id] > n[best] || (n[id] == n[best] && id < best) {
			best = id
		}
	}
	return best
}

// TestPanelsOnSeededData runs every ClickHouse query of every dashboard,
// expanded as Grafana would, on the embedded engine over the seeded events
// and compares the answer with what the seed implies.
func TestPanelsOnSeededData(t *testing.T) {
	conn, ev := seed(t)
	qs := panelQueries(t)
	if len(qs) < 20 {
		t.Fatalf("only %d ClickHouse panels", len(qs))
	}
	seen := map[string]bool{}
	for _, sc := range scenarios(ev) {
		for _, q := range qs {
			if sc.groups != nil && q.Dashboard.File != "product.json" {
				continue // only the product dashboard has the group filter
			}
			seen[q.Key] = true
			t.Run(sc.name+"/"+q.Key, func(t *testing.T) {
				want, ok := expected[q.Key]
				if !ok {
					t.Fatalf("panel %s %q has no expectation: add one to expected", q.Key, q.Panel.Title)
				}
				sql, err := Expand(q.Target.RawSQL, sc.params(q.Dashboard))
				if err != nil {
					t.Fatal(err)
				}
				res, err := Run(context.Background(), conn, sql, 0)
				if err != nil {
					t.Fatalf("%v\n%s", err, sql)
				}
				exp := want(sc, ev)
				if len(exp.rows) == 0 {
					t.Fatalf("the seed implies no rows for %s in scenario %s: the test would prove nothing", q.Key, sc.name)
				}
				compare(t, res, exp, sql)
			})
		}
	}
	for k := range expected {
		if !seen[k] {
			t.Errorf("expectation %s matches no panel", k)
		}
	}
}

func compare(t *testing.T, res *Result, exp expectation, sql string) {
	t.Helper()
	var cols []string
	for _, c := range res.Columns {
		cols = append(cols, c.Name)
	}
	if !slices.Equal(cols, exp.columns) {
		t.Fatalf("columns %v, want %v", cols, exp.columns)
	}
	if len(res.Rows) != len(exp.rows) {
		t.Fatalf("%d rows, want %d\ngot first %v\nwant first %v\n%s", len(res.Rows), len(exp.rows), head(res.Rows), head(exp.rows), sql)
	}
	for i := range exp.rows {
		for j, w := range exp.rows[i] {
			g := res.Rows[i][j]
			if !valueOK(g, w, exp.tol[j], exp.within[j]) {
				t.Fatalf("row %d column %s = %v (%T), want %v\nrow %v\nwant %v", i, cols[j], g, g, w, res.Rows[i], exp.rows[i])
			}
		}
	}
}

func head(rows [][]any) [][]any { return rows[:min(3, len(rows))] }

func valueOK(got, want any, tol float64, within bool) bool {
	if within {
		r, g := want.([2]float64), got.(float64)
		return g >= r[0] && g <= r[1]
	}
	switch w := want.(type) {
	case nil:
		return got == nil
	case float64:
		g, ok := got.(float64)
		return ok && math.Abs(g-w) <= tol
	case time.Time:
		g, ok := got.(time.Time)
		return ok && g.Equal(w)
	}
	return got == want
}

// TestBrowserVariableQuery runs the browser variable's query.
func TestBrowserVariableQuery(t *testing.T) {
	conn, ev := seed(t)
	ds, err := Dashboards()
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range ds {
		for _, v := range d.Templating.List {
			if v.Name != "browser" || v.Type != "query" {
				continue
			}
			sql, err := Expand(v.Query.(string), Params{From: seedFrom, To: seedTo, Options: d.Options()})
			if err != nil {
				t.Fatal(err)
			}
			res, err := Run(context.Background(), conn, sql, 0)
			if err != nil {
				t.Fatal(err)
			}
			var got, want []string
			for _, r := range res.Rows {
				got = append(got, r[0].(string))
			}
			set := map[string]bool{}
			for _, e := range ev {
				if e.Device.Browser != "" && !set[e.Device.Browser] {
					set[e.Device.Browser] = true
					want = append(want, e.Device.Browser)
				}
			}
			sort.Strings(want)
			if !slices.Equal(got, want) {
				t.Errorf("%s: browsers %v, want %v", d.File, got, want)
			}
		}
	}
}

// TestRollupPanelsReadOneSourcePerRange asks the engine (EXPLAIN
// ESTIMATE) what each rollup-backed panel reads: raw events only up to 6
// hours, rollups_hourly only up to 7 days (a week at hourly resolution
// never scans raw events), rollups_daily beyond; with a group selected,
// raw events (and group_members) for every range.
func TestRollupPanelsReadOneSourcePerRange(t *testing.T) {
	conn, _ := seed(t)
	qs := panelQueries(t)
	ranges := []struct {
		name     string
		from, to time.Time
		reads    string
	}{
		{"5 hours", seedFrom.Add(15*24*time.Hour + 2*time.Hour), seedFrom.Add(15*24*time.Hour + 7*time.Hour), "events"},
		{"7 days", seedFrom.Add(7 * 24 * time.Hour), seedFrom.Add(14 * 24 * time.Hour), "rollups_hourly"},
		{"28 days", seedFrom, seedTo, "rollups_daily"},
	}
	checked := 0
	for _, q := range qs {
		if !strings.Contains(q.Target.RawSQL, "${database}.rollups_hourly") || !strings.Contains(q.Target.RawSQL, "${database}.rollups_daily") {
			continue
		}
		checked++
		for _, r := range ranges {
			// A group selected (product dashboard only): raw events for any
			// range, since the rollups cannot tell a group's events apart.
			for _, groups := range [][]string{nil, {seedGroupA}} {
				if groups != nil && q.Dashboard.File != "product.json" {
					continue
				}
				reads := r.reads
				if groups != nil {
					reads = "events"
				}
				sc := scenario{from: r.from, to: r.to, groups: groups}
				sql, err := Expand(q.Target.RawSQL, sc.params(q.Dashboard))
				if err != nil {
					t.Fatal(err)
				}
				res, err := Run(context.Background(), conn, "EXPLAIN ESTIMATE "+sql, 0)
				if err != nil {
					t.Fatalf("%s: %v", q.Key, err)
				}
				read := map[string]float64{}
				for _, row := range res.Rows {
					read[row[1].(string)] += row[3].(float64) // database, table, parts, rows, marks
				}
				if read[reads] == 0 {
					t.Errorf("%s over %s, groups %v, reads nothing from %s: %v", q.Key, r.name, groups, reads, read)
				}
				for table, rows := range read {
					if table == "group_members" && groups != nil {
						continue // the members' ids, when the engine estimates them
					}
					if (table == reads) != (rows > 0) {
						t.Errorf("%s over %s, groups %v, reads %v rows of %s (want rows from %s only)", q.Key, r.name, groups, rows, table, reads)
					}
				}
			}
		}
	}
	if checked < 10 {
		t.Fatalf("%d rollup-backed panels checked", checked)
	}
}

// TestGroupFilterCountsAMemberOfTwoGroupsInEach runs the resolution mix
// (product-2) over the seeded 28 days for org-acme, org-beta and both:
// the seed's members of both groups have their generations counted in
// each group, once when both are selected, and no group holds them all.
func TestGroupFilterCountsAMemberOfTwoGroupsInEach(t *testing.T) {
	conn, ev := seed(t)
	qs := panelQueries(t)
	var q *Query
	for i := range qs {
		if qs[i].Key == "product-2" {
			q = &qs[i]
		}
	}
	if q == nil {
		t.Fatal("no panel product-2")
	}
	all := scenario{from: seedFrom, to: seedTo}
	total := func(groups ...string) float64 {
		sql, err := Expand(q.Target.RawSQL, all.grouped(ev, groups...).params(q.Dashboard))
		if err != nil {
			t.Fatal(err)
		}
		res, err := Run(context.Background(), conn, sql, 0)
		if err != nil {
			t.Fatalf("%v\n%s", err, sql)
		}
		n := 0.0
		for _, r := range res.Rows {
			n += r[1].(float64)
		}
		return n
	}
	a, b, both := total(seedGroupA), total(seedGroupB), total(seedGroupA, seedGroupB)
	inA, inB := inGroups(ev, []string{seedGroupA}), inGroups(ev, []string{seedGroupB})
	overlap := float64(len(where(ev, all.bucketIn, isType(schema.TypeGenerationRequested), notBot, inA, inB)))
	unfiltered := float64(len(where(ev, all.bucketIn, isType(schema.TypeGenerationRequested), notBot)))
	if overlap == 0 {
		t.Fatal("the seed has no generation of a member of both groups: the test would prove nothing")
	}
	if a+b-both != overlap || both >= unfiltered || a == 0 || b == 0 {
		t.Errorf("generations: org-acme %v + org-beta %v - both %v = %v, want the %v of members of both; unfiltered %v", a, b, both, a+b-both, overlap, unfiltered)
	}
}

// panelQueries is the ClickHouse query of every panel of every dashboard.
func panelQueries(t testing.TB) []Query {
	t.Helper()
	ds, err := Dashboards()
	if err != nil {
		t.Fatal(err)
	}
	qs, err := ClickHouseQueries(ds)
	if err != nil {
		t.Fatal(err)
	}
	return qs
}
