package audit

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// DB runs the report's queries: a clickhouse-go connection.
type DB interface {
	Query(ctx context.Context, query string, args ...any) (driver.Rows, error)
}

// Window states.
const (
	// Closed: the window's minute and the grace after it are over; what
	// is not accounted for is lost.
	Closed = "closed"
	// InFlight: events of the window may still be on their way.
	InFlight = "in_flight"
)

// Window is the balance of one minute and one source.
type Window struct {
	Start  time.Time `json:"window"`
	Source string    `json:"source"`
	State  string    `json:"state"`

	Accepted     uint64 `json:"accepted"`
	Published    uint64 `json:"published"`
	Spooled      uint64 `json:"spooled"`
	Consumed     uint64 `json:"consumed"`
	Stored       uint64 `json:"stored"`
	Deduplicated uint64 `json:"deduplicated"`
	DeadLettered uint64 `json:"dead_lettered"`
	Filtered     uint64 `json:"filtered"`
	Rejected     uint64 `json:"rejected"`
	Dropped      uint64 `json:"dropped"`
	Refused      uint64 `json:"refused_requests"`

	// Lost is accepted − stored − deduplicated − dead-lettered − filtered
	// of a closed window, when positive.
	Lost uint64 `json:"lost"`
	// Pending is the same shortfall of a window in flight: not yet
	// accounted for, not (yet) lost.
	Pending uint64 `json:"in_flight"`
	// Surplus is the opposite excess: copies stored or dropped beyond what
	// was answered 2xx (events of a request answered 503 that were stored
	// anyway, a spool replayed after a crash). It can hide as much loss in
	// the same window and source.
	Surplus uint64 `json:"surplus"`
	// Duplicates is the rows beyond the first of event_ids stored more
	// than once, first received in this window.
	Duplicates uint64 `json:"duplicates"`
}

// Report is the audit over a span of windows.
type Report struct {
	Since   time.Time     `json:"since"`
	Until   time.Time     `json:"until"`
	Grace   time.Duration `json:"grace_ns"`
	Windows []Window      `json:"windows"`
	// Total sums every window (Start and Source empty, State "").
	Total Window `json:"total"`
	// Sessions is the browsers' sequence gaps.
	Sessions SessionGaps `json:"sessions"`
}

// Clean reports whether nothing was lost or duplicated.
func (r *Report) Clean() bool { return r.Total.Lost == 0 && r.Total.Duplicates == 0 }

// ErrLoss is returned (wrapped) by Check when the report is not clean.
var ErrLoss = errors.New("events lost or duplicated")

// Check returns an error naming what was lost or duplicated, nil when
// the report is clean.
func (r *Report) Check() error {
	if r.Clean() {
		return nil
	}
	return fmt.Errorf("%w: %d lost, %d duplicated since %s", ErrLoss, r.Total.Lost, r.Total.Duplicates, r.Since.Format(time.RFC3339))
}

// Options choose the report's span.
type Options struct {
	// Database holds pipeline_audit and events.
	Database string
	// Since is the first window (rounded down to its minute).
	Since time.Time
	// Now is the report's clock; zero means time.Now.
	Now time.Time
	// Grace is how long after its minute a window is in flight.
	Grace time.Duration
	// Settled takes every window as closed: for a pipeline whose ingest
	// has stopped and whose consumer has caught up (tests after a drain).
	Settled bool

	// duplicates replaces the duplicates query (the Monitor's cache); nil
	// counts every copy received since Since.
	duplicates func(ctx context.Context) (map[bucket]uint64, error)
}

// Query builds the report from pipeline_audit and events.
func Query(ctx context.Context, db DB, o Options) (*Report, error) {
	now := o.Now
	if now.IsZero() {
		now = time.Now()
	}
	rep := &Report{Since: MinuteOf(o.Since), Until: now.UTC(), Grace: o.Grace}
	windows := map[bucket]*Window{}
	get := func(w time.Time, source string) *Window {
		b := bucket{w.UTC(), source}
		if x := windows[b]; x != nil {
			return x
		}
		x := &Window{Start: b.window, Source: source}
		windows[b] = x
		return x
	}
	rows, err := db.Query(ctx, "SELECT window_start, source, stage, reason, sum(n) FROM "+o.Database+".pipeline_audit FINAL"+
		" WHERE window_start >= ? GROUP BY window_start, source, stage, reason", rep.Since)
	if err != nil {
		return nil, fmt.Errorf("reading pipeline_audit: %w", err)
	}
	for rows.Next() {
		var w time.Time
		var source, stage, reason string
		var n uint64
		if err := rows.Scan(&w, &source, &stage, &reason, &n); err != nil {
			rows.Close()
			return nil, fmt.Errorf("reading pipeline_audit: %w", err)
		}
		get(w, source).count(stage, reason, n)
	}
	if err := errors.Join(rows.Err(), rows.Close()); err != nil {
		return nil, fmt.Errorf("reading pipeline_audit: %w", err)
	}
	dups := o.duplicates
	if dups == nil {
		dups = func(ctx context.Context) (map[bucket]uint64, error) {
			return queryDuplicates(ctx, db, o.Database, rep.Since, time.Time{})
		}
	}
	counted, err := dups(ctx)
	if err != nil {
		return nil, err
	}
	for b, n := range counted {
		get(b.window, b.source).Duplicates += n
	}
	if rep.Sessions, err = querySessions(ctx, db, o.Database, rep.Since); err != nil {
		return nil, err
	}
	for _, w := range windows {
		w.State = InFlight
		if o.Settled || !now.Before(w.Start.Add(time.Minute+o.Grace)) {
			w.State = Closed
		}
		w.balance()
		rep.Windows = append(rep.Windows, *w)
	}
	sort.Slice(rep.Windows, func(i, j int) bool {
		a, b := rep.Windows[i], rep.Windows[j]
		if !a.Start.Equal(b.Start) {
			return a.Start.Before(b.Start)
		}
		return a.Source < b.Source
	})
	for _, w := range rep.Windows {
		rep.Total.add(w)
	}
	return rep, nil
}

// queryDuplicates counts, per window and source, the rows beyond the
// first of the event_ids first received in [from, to), among the copies
// received since from. A zero to means no end: every event_id received
// since from, grouped whole. With an end, only the ids received in the
// range are grouped (the IN set), so counting one closed minute costs a
// minute of ids, not the span's.
func queryDuplicates(ctx context.Context, db DB, database string, from, to time.Time) (map[bucket]uint64, error) {
	q := "SELECT w, source, toUInt64(sum(c - 1)) FROM (SELECT event_id, toStartOfMinute(min(received_at)) AS w," +
		" any(source) AS source, count() AS c FROM " + database + ".events WHERE received_at >= ?"
	args := []any{from}
	if to.IsZero() {
		q += " GROUP BY event_id HAVING c > 1)"
	} else {
		q += " AND event_id IN (SELECT event_id FROM " + database + ".events WHERE received_at >= ? AND received_at < ?)" +
			" GROUP BY event_id HAVING c > 1 AND min(received_at) < ?)"
		args = append(args, from, to, to)
	}
	rows, err := db.Query(ctx, q+" GROUP BY w, source", args...)
	if err != nil {
		return nil, fmt.Errorf("counting duplicates: %w", err)
	}
	out := map[bucket]uint64{}
	for rows.Next() {
		var w time.Time
		var source string
		var n uint64
		if err := rows.Scan(&w, &source, &n); err != nil {
			rows.Close()
			return nil, fmt.Errorf("counting duplicates: %w", err)
		}
		out[bucket{w.UTC(), source}] += n
	}
	if err := errors.Join(rows.Err(), rows.Close()); err != nil {
		return nil, fmt.Errorf("counting duplicates: %w", err)
	}
	return out, nil
}

// count adds n to the counter of stage; an accepted count whose reason is
// its route (Published, Spooled: ingest's records since 2026-12-04, one
// count each) adds to the route's counter too.
func (w *Window) count(stage, reason string, n uint64) {
	if f := w.field(stage); f != nil {
		*f += n
	}
	if stage == Accepted && (reason == Published || reason == Spooled) {
		*w.field(reason) += n
	}
}

// field is the counter of stage.
func (w *Window) field(stage string) *uint64 {
	switch stage {
	case Accepted:
		return &w.Accepted
	case Published:
		return &w.Published
	case Spooled:
		return &w.Spooled
	case Consumed:
		return &w.Consumed
	case Inserted:
		return &w.Stored
	case Deduplicated:
		return &w.Deduplicated
	case DeadLettered:
		return &w.DeadLettered
	case Filtered:
		return &w.Filtered
	case Rejected:
		return &w.Rejected
	case Dropped:
		return &w.Dropped
	case Refused:
		return &w.Refused
	}
	return nil
}

// balance sets Lost, Pending and Surplus from the counts and the state.
func (w *Window) balance() {
	accounted := w.Stored + w.Deduplicated + w.DeadLettered + w.Filtered
	switch {
	case w.Accepted > accounted && w.State == Closed:
		w.Lost = w.Accepted - accounted
	case w.Accepted > accounted:
		w.Pending = w.Accepted - accounted
	case accounted > w.Accepted:
		w.Surplus = accounted - w.Accepted
	}
}

// add sums o into w.
func (w *Window) add(o Window) {
	for _, s := range []string{Accepted, Published, Spooled, Consumed, Inserted, Deduplicated, DeadLettered, Filtered, Rejected, Dropped, Refused} {
		*w.field(s) += *o.field(s)
	}
	w.Lost += o.Lost
	w.Pending += o.Pending
	w.Surplus += o.Surplus
	w.Duplicates += o.Duplicates
}

// Completeness is the share of accepted events accounted for in closed
// windows (1 when none was accepted).
func (r *Report) Completeness() float64 {
	var accepted, lost uint64
	for _, w := range r.Windows {
		if w.State == Closed {
			accepted += w.Accepted
			lost += w.Lost
		}
	}
	if accepted == 0 {
		return 1
	}
	return float64(accepted-lost) / float64(accepted)
}

// WriteText prints the report as a table, one line per window, then the
// totals and the browsers' gaps.
func (r *Report) WriteText(out io.Writer) error {
	tw := tabwriter.NewWriter(out, 2, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "window\tsource\taccepted\tstored\tdeduplicated\tdead-lettered\tfiltered\tlost\tduplicates\tin flight\tsurplus\tstate\t")
	line := func(when, source, state string, w Window) {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%s\t\n", when, source, w.Accepted, w.Stored, w.Deduplicated,
			w.DeadLettered, w.Filtered, w.Lost, w.Duplicates, w.Pending, w.Surplus, state)
	}
	for _, w := range r.Windows {
		source := w.Source
		if source == "" {
			source = "-"
		}
		line(w.Start.Format("2006-01-02 15:04"), source, strings.ReplaceAll(w.State, "_", " "), w)
	}
	line("total", "", "", r.Total)
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(out, "completeness of closed windows: %.4f%%; lost %d, duplicated %d (since %s, grace %s)\n",
		100*r.Completeness(), r.Total.Lost, r.Total.Duplicates, r.Since.Format(time.RFC3339), r.Grace)
	return r.Sessions.WriteText(out)
}
