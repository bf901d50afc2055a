package audit

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"text/tabwriter"
	"time"
)

// SessionGaps is what the browsers' sequence numbers say: the events a
// browser made (schema.Event.Seq) that never arrived, per browser, and
// how many of them the browser had handed over while a page was unloading
// (schema.Context.UnloadSeq). Only numbers between a session's first and
// last arrived events count: a session's last unload is seen only once
// the session sends again.
type SessionGaps struct {
	Gaps
	// ByBrowser splits the counts by device_browser, largest first.
	ByBrowser []BrowserGaps `json:"by_browser"`
}

// Gaps are the counts of a set of sessions.
type Gaps struct {
	// Sessions is the sessions with numbered events.
	Sessions uint64 `json:"sessions"`
	// SessionsWithGaps is those missing at least one number.
	SessionsWithGaps uint64 `json:"sessions_with_gaps"`
	// SessionsWithUnloadGaps is those missing a number at unload.
	SessionsWithUnloadGaps uint64 `json:"sessions_with_unload_gaps"`
	// Arrived is the distinct numbers that arrived.
	Arrived uint64 `json:"arrived"`
	// Missing is the numbers that did not.
	Missing uint64 `json:"missing"`
	// MissingAtUnload is the missing numbers handed over at unload.
	MissingAtUnload uint64 `json:"missing_at_unload"`
}

// BrowserGaps is one browser's Gaps.
type BrowserGaps struct {
	Browser string `json:"browser"`
	Gaps
}

// SessionShare is the share of sessions with a gap.
func (g Gaps) SessionShare() float64 { return share(g.SessionsWithGaps, g.Sessions) }

// EventShare is the share of the numbered events that never arrived.
func (g Gaps) EventShare() float64 { return share(g.Missing, g.Arrived+g.Missing) }

func share(n, of uint64) float64 {
	if of == 0 {
		return 0
	}
	return float64(n) / float64(of)
}

// session is one session's arrived numbers.
type session struct {
	seqs []uint32
	// unloads are the ranges [unload_seq, seq) the session said were
	// handed over at unload.
	unloads [][2]uint32
}

// gaps counts the missing numbers of s, and those within an unload range.
func (s *session) gaps() (missing, atUnload uint64) {
	sort.Slice(s.seqs, func(i, j int) bool { return s.seqs[i] < s.seqs[j] })
	for i := 1; i < len(s.seqs); i++ {
		for n := s.seqs[i-1] + 1; n < s.seqs[i]; n++ {
			missing++
			for _, u := range s.unloads {
				if u[0] <= n && n < u[1] {
					atUnload++
					break
				}
			}
		}
	}
	return missing, atUnload
}

func (g *Gaps) add(arrived, missing, atUnload uint64) {
	g.Sessions++
	g.Arrived += arrived
	g.Missing += missing
	g.MissingAtUnload += atUnload
	if missing > 0 {
		g.SessionsWithGaps++
	}
	if atUnload > 0 {
		g.SessionsWithUnloadGaps++
	}
}

// querySessions reads the numbered events received since since, one row
// per distinct (session, seq), and counts their gaps.
func querySessions(ctx context.Context, db DB, database string, since time.Time) (SessionGaps, error) {
	var out SessionGaps
	rows, err := db.Query(ctx, "SELECT session_id, any(device_browser), seq, max(context_unload_seq) FROM "+database+".events"+
		" WHERE received_at >= ? AND session_id != '' AND seq > 0 GROUP BY session_id, seq", since)
	if err != nil {
		return out, fmt.Errorf("reading session numbers: %w", err)
	}
	sessions := map[string]*session{}
	browsers := map[string]string{}
	for rows.Next() {
		var id, browser string
		var seq, unload uint32
		if err := rows.Scan(&id, &browser, &seq, &unload); err != nil {
			rows.Close()
			return out, fmt.Errorf("reading session numbers: %w", err)
		}
		s := sessions[id]
		if s == nil {
			s = &session{}
			sessions[id] = s
			browsers[id] = browser
		}
		s.seqs = append(s.seqs, seq)
		if unload > 0 && unload < seq {
			s.unloads = append(s.unloads, [2]uint32{unload, seq})
		}
	}
	if err := errors.Join(rows.Err(), rows.Close()); err != nil {
		return out, fmt.Errorf("reading session numbers: %w", err)
	}
	by := map[string]*BrowserGaps{}
	for id, s := range sessions {
		missing, atUnload := s.gaps()
		out.add(uint64(len(s.seqs)), missing, atUnload)
		b := by[browsers[id]]
		if b == nil {
			b = &BrowserGaps{Browser: browsers[id]}
			by[browsers[id]] = b
		}
		b.add(uint64(len(s.seqs)), missing, atUnload)
	}
	for _, b := range by {
		out.ByBrowser = append(out.ByBrowser, *b)
	}
	sort.Slice(out.ByBrowser, func(i, j int) bool {
		if out.ByBrowser[i].Sessions != out.ByBrowser[j].Sessions {
			return out.ByBrowser[i].Sessions > out.ByBrowser[j].Sessions
		}
		return out.ByBrowser[i].Browser < out.ByBrowser[j].Browser
	})
	return out, nil
}

// WriteText prints the gaps, one line per browser.
func (s SessionGaps) WriteText(out io.Writer) error {
	if s.Sessions == 0 {
		_, err := fmt.Fprintln(out, "client delivery: no numbered sessions (seq) in the span")
		return err
	}
	fmt.Fprintf(out, "client delivery: %d of %d sessions (%.2f%%) miss events; %d of %d events (%.3f%%) never arrived, %d of them handed over at unload\n",
		s.SessionsWithGaps, s.Sessions, 100*s.SessionShare(), s.Missing, s.Arrived+s.Missing, 100*s.EventShare(), s.MissingAtUnload)
	tw := tabwriter.NewWriter(out, 2, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "browser\tsessions\twith gaps\twith unload gaps\tarrived\tmissing\tat unload\tmissing %\t")
	for _, b := range s.ByBrowser {
		name := b.Browser
		if name == "" {
			name = "-"
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t%d\t%.3f\t\n", name, b.Sessions, b.SessionsWithGaps, b.SessionsWithUnloadGaps,
			b.Arrived, b.Missing, b.MissingAtUnload, 100*b.EventShare())
	}
	return tw.Flush()
}
