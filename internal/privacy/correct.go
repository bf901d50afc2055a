package privacy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/sora3web/telemetry/schema"
)

// Correction kinds.
const (
	// CorrectPlan sets the plan of the subject's events over [From, To),
	// which re-applies the retention of that plan.
	CorrectPlan = "plan"
	// CorrectAttach gives the events of an anonymous_id that carry no
	// user_id the user_id UserID (an identify revealed who it was).
	CorrectAttach = "attach"
	// CorrectDetach removes the user_id UserID from the events of an
	// anonymous_id (they were wrongly attached).
	CorrectDetach = "detach"
)

// ErrBadCorrection means a correction request broke a rule; the message
// names the field.
var ErrBadCorrection = errors.New("bad correction")

// ErrUnsupported means the deployment cannot apply a correction.
var ErrUnsupported = errors.New("not supported")

// Correction is one correction of stored data (table corrections). Like a
// tombstone it is bounded by CorrectedAt: it applies to the events ingest
// received at or before it, the stored ones by a mutation and those still
// on the bus (Kafka, the local log) by the consumer, which asks the
// Registry (consumer.Filter's Correct) as it asks about deletions.
type Correction struct {
	// Kind is CorrectPlan, CorrectAttach or CorrectDetach.
	Kind string `json:"kind" ch:"kind"`
	// UserID is the subject of a plan correction by user_id, or the user
	// an anonymous_id is attached to or detached from.
	UserID string `json:"user_id,omitempty" ch:"user_id"`
	// AnonymousID is the subject of a plan correction by anonymous_id, or
	// the anonymous_id attached or detached.
	AnonymousID string `json:"anonymous_id,omitempty" ch:"anonymous_id"`
	// Plan is the right plan (CorrectPlan), one of schema.Plans.
	Plan string `json:"plan,omitempty" ch:"plan"`
	// From and To bound a plan correction by the events' timestamp:
	// From <= timestamp < To. Asked for without them, From is recorded as
	// 1970-01-01 (from the first event) and To as CorrectedAt (until now).
	From time.Time `json:"from" ch:"from_time"`
	To   time.Time `json:"to" ch:"to_time"`
	// CorrectedAt is when it was made (set by the Registry): it applies
	// to the events received at or before it.
	CorrectedAt time.Time `json:"corrected_at" ch:"corrected_at"`
}

// Subject is whom the correction is about, for the audit log.
func (c Correction) Subject() Subject {
	if c.Kind == CorrectPlan && c.UserID != "" {
		return Subject{Type: SubjectUser, ID: c.UserID}
	}
	return Subject{Type: SubjectAnonymous, ID: c.AnonymousID}
}

// applies reports whether c changes e, and changes it.
func (c *Correction) apply(e *schema.Enriched) bool {
	if e.ReceivedAt.After(c.CorrectedAt) {
		return false
	}
	switch c.Kind {
	case CorrectPlan:
		if c.UserID != "" && e.UserID != c.UserID || c.UserID == "" && e.AnonymousID != c.AnonymousID {
			return false
		}
		if e.Timestamp.Before(c.From) || !e.Timestamp.Before(c.To) || e.Plan == c.Plan {
			return false
		}
		e.Plan = c.Plan
	case CorrectAttach:
		if e.AnonymousID != c.AnonymousID || e.UserID != "" {
			return false
		}
		e.UserID = c.UserID
	case CorrectDetach:
		if e.AnonymousID != c.AnonymousID || e.UserID != c.UserID {
			return false
		}
		e.UserID = ""
	default:
		return false
	}
	return true
}

// correctionBody is the JSON body of POST /v1/privacy/correct.
type correctionBody struct {
	UserID      string `json:"user_id"`
	AnonymousID string `json:"anonymous_id"`
	Plan        string `json:"plan"`
	From        string `json:"from"`
	To          string `json:"to"`
	AttachTo    string `json:"attach_to"`
	DetachFrom  string `json:"detach_from"`
}

// DecodeCorrection reads the body of POST /v1/privacy/correct, one of:
//
//	{"user_id" or "anonymous_id": ID, "plan": "pro", "from": RFC 3339, "to": RFC 3339}
//	{"anonymous_id": ID, "attach_to": USER_ID}
//	{"anonymous_id": ID, "detach_from": USER_ID}
//
// from and to are optional (from the first event; until now).
func DecodeCorrection(contentType string, body io.Reader) (Correction, error) {
	var c Correction
	bad := func(field, rule string) (Correction, error) {
		return Correction{}, fmt.Errorf("%w: %s: %s", ErrBadCorrection, field, rule)
	}
	raw, err := readBody(contentType, body)
	if err != nil {
		return Correction{}, fmt.Errorf("%w: %w", ErrBadCorrection, err)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	var b correctionBody
	if err := dec.Decode(&b); err != nil {
		return bad("body", "must be one JSON object of user_id, anonymous_id, plan, from, to, attach_to, detach_from: "+strings.TrimPrefix(err.Error(), "json: "))
	}
	if _, err := dec.Token(); err != io.EOF {
		return bad("body", "one JSON object expected")
	}
	kinds := 0
	for _, set := range []bool{b.Plan != "", b.AttachTo != "", b.DetachFrom != ""} {
		if set {
			kinds++
		}
	}
	if kinds != 1 {
		return bad("plan", "give exactly one of plan, attach_to or detach_from")
	}
	switch {
	case b.Plan != "":
		sub, err := NewSubject(b.UserID, b.AnonymousID)
		if err != nil {
			return Correction{}, fmt.Errorf("%w: %w", ErrBadCorrection, err)
		}
		if !slices.Contains(schema.Plans, b.Plan) {
			return bad("plan", fmt.Sprintf("must be one of %s", strings.Join(schema.Plans, ", ")))
		}
		c = Correction{Kind: CorrectPlan, Plan: b.Plan}
		if sub.Type == SubjectUser {
			c.UserID = sub.ID
		} else {
			c.AnonymousID = sub.ID
		}
		for _, f := range []struct {
			name string
			in   string
			out  *time.Time
		}{{"from", b.From, &c.From}, {"to", b.To, &c.To}} {
			if f.in == "" {
				continue
			}
			t, err := time.Parse(time.RFC3339Nano, f.in)
			if err != nil {
				return bad(f.name, "must be an RFC 3339 time, e.g. 2026-11-01T00:00:00Z")
			}
			*f.out = t.UTC()
		}
		if !c.From.IsZero() && !c.To.IsZero() && !c.From.Before(c.To) {
			return bad("to", "must be after from")
		}
	default:
		user, kind, field := b.AttachTo, CorrectAttach, "attach_to"
		if b.DetachFrom != "" {
			user, kind, field = b.DetachFrom, CorrectDetach, "detach_from"
		}
		if b.UserID != "" || b.From != "" || b.To != "" {
			return bad(field, "takes anonymous_id only (no user_id, from or to)")
		}
		if _, err := NewSubject(user, ""); err != nil {
			return bad(field, strings.TrimPrefix(err.Error(), ErrBadSubject.Error()+": "))
		}
		if b.AnonymousID == "" {
			return bad("anonymous_id", "required with "+field)
		}
		if _, err := NewSubject("", b.AnonymousID); err != nil {
			return Correction{}, fmt.Errorf("%w: %w", ErrBadCorrection, err)
		}
		c = Correction{Kind: kind, UserID: user, AnonymousID: b.AnonymousID}
	}
	return c, nil
}

// correctionSet is an immutable index of the corrections by the
// identifier they match events on; a change builds a new one.
type correctionSet struct {
	byUser, byAnon map[string][]Correction
	n              int
}

func newCorrectionSet(cs []Correction) *correctionSet {
	s := &correctionSet{byUser: map[string][]Correction{}, byAnon: map[string][]Correction{}}
	slices.SortStableFunc(cs, func(a, b Correction) int { return a.CorrectedAt.Compare(b.CorrectedAt) })
	for _, c := range cs {
		s.add(c)
	}
	return s
}

func (s *correctionSet) add(c Correction) {
	if c.Kind == CorrectPlan && c.UserID != "" {
		s.byUser[c.UserID] = append(s.byUser[c.UserID], c)
	} else {
		s.byAnon[c.AnonymousID] = append(s.byAnon[c.AnonymousID], c)
	}
	s.n++
}

func (s *correctionSet) all() []Correction {
	out := make([]Correction, 0, s.n)
	for _, m := range []map[string][]Correction{s.byUser, s.byAnon} {
		for _, cs := range m {
			out = append(out, cs...)
		}
	}
	return out
}

// key identifies a correction across reloads.
func (c Correction) key() string {
	return fmt.Sprintf("%s|%s|%s|%d", c.Kind, c.UserID, c.AnonymousID, c.CorrectedAt.UnixMilli())
}

// Correct applies to e the corrections made after ingest received it:
// first those of its anonymous_id (attach, detach, plan by
// anonymous_id), then the plan corrections of its user_id, the one it
// has after them (consumer.Filter). It reports whether e changed.
func (r *Registry) Correct(e *schema.Enriched) bool {
	s := r.corr.Load()
	if s.n == 0 {
		return false
	}
	changed := false
	if e.AnonymousID != "" {
		for i := range s.byAnon[e.AnonymousID] {
			changed = s.byAnon[e.AnonymousID][i].apply(e) || changed
		}
	}
	if e.UserID != "" {
		for i := range s.byUser[e.UserID] {
			changed = s.byUser[e.UserID][i].apply(e) || changed
		}
	}
	if changed {
		r.corrected.Add(1)
	}
	return changed
}

// Corrected is the number of events Correct changed so far.
func (r *Registry) Corrected() int64 { return r.corrected.Load() }

// RecordCorrection records c as made now, in the table and then in
// memory, and returns it with its bound CorrectedAt (and To, when open,
// set to it): from now on the consumer corrects the matching events
// received at or before it.
func (r *Registry) RecordCorrection(ctx context.Context, c Correction) (Correction, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	c.CorrectedAt = boundNow()
	if c.Kind == CorrectPlan {
		if c.From.IsZero() {
			c.From = time.Unix(0, 0).UTC() // from the first event; DateTime64 cannot hold year 1
		}
		if c.To.IsZero() {
			c.To = c.CorrectedAt.Add(time.Millisecond) // until now, this millisecond included
		}
	}
	q := fmt.Sprintf("INSERT INTO %s (kind, user_id, anonymous_id, plan, from_time, to_time, corrected_at) VALUES (?, ?, ?, ?, fromUnixTimestamp64Milli(?, 'UTC'), fromUnixTimestamp64Milli(?, 'UTC'), fromUnixTimestamp64Milli(?, 'UTC'))", r.tables.table("corrections"))
	if err := r.db.Exec(ctx, q, c.Kind, c.UserID, c.AnonymousID, c.Plan, c.From.UnixMilli(), c.To.UnixMilli(), c.CorrectedAt.UnixMilli()); err != nil {
		return c, fmt.Errorf("recording the correction: %w", err)
	}
	next := newCorrectionSet(append(r.corr.Load().all(), c))
	r.corr.Store(next)
	return c, nil
}

// loadCorrections reads every correction.
func loadCorrections(ctx context.Context, db DB, t Tables) ([]Correction, error) {
	var cs []Correction
	if err := db.Select(ctx, &cs, fmt.Sprintf("SELECT kind, user_id, anonymous_id, plan, from_time, to_time, corrected_at FROM %s", t.table("corrections"))); err != nil {
		return nil, fmt.Errorf("loading corrections: %w", err)
	}
	for i := range cs {
		cs[i].From, cs[i].To, cs[i].CorrectedAt = cs[i].From.UTC(), cs[i].To.UTC(), cs[i].CorrectedAt.UTC()
	}
	return cs, nil
}

// subjectCorrections returns the corrections stored for sub, oldest first.
func subjectCorrections(ctx context.Context, db DB, t Tables, sub Subject) ([]Correction, error) {
	var cs []Correction
	q := fmt.Sprintf("SELECT kind, user_id, anonymous_id, plan, from_time, to_time, corrected_at FROM %s WHERE %s = ? ORDER BY corrected_at", t.table("corrections"), sub.Type)
	if err := db.Select(ctx, &cs, q, sub.ID); err != nil {
		return nil, fmt.Errorf("reading corrections: %w", err)
	}
	for i := range cs {
		cs[i].From, cs[i].To, cs[i].CorrectedAt = cs[i].From.UTC(), cs[i].To.UTC(), cs[i].CorrectedAt.UTC()
	}
	return cs, nil
}

// correctRows applies c to the stored rows received at or before its
// bound and returns the events changed.
//
// A plan correction moves rows: plan is part of the events table's
// sorting key, which a mutation cannot update. The rows are copied with
// the right plan into a scratch table of the same structure, its parts
// attached to events (ATTACH PARTITION FROM: no materialized view runs,
// so rollups_daily keeps counting each event once, under the plan it was
// stored with), and the old rows deleted. A correction that dies half way
// leaves both copies of some events, which ReplacingMergeTree does not
// collapse (different plans); asking for it again finishes it: it copies
// only rows still on the wrong plan, and deletes them. The errors copies
// get the plan by a mutation.
//
// An attach or detach updates user_id in events and errors by mutations.
// group_members keeps the user_id its group call carried (user_id is part
// of its sorting key); identity_links records what alias calls said.
func correctRows(ctx context.Context, db DB, t Tables, c Correction) (uint64, error) {
	bound := c.CorrectedAt.UnixMilli()
	switch c.Kind {
	case CorrectPlan:
		if t.Cluster != "" {
			return 0, fmt.Errorf("%w: plan corrections on a cluster (the rows move between parts of one node)", ErrUnsupported)
		}
		sub := c.Subject()
		where := fmt.Sprintf("%s = ? AND plan != ? AND timestamp >= fromUnixTimestamp64Milli(?, 'UTC') AND timestamp < fromUnixTimestamp64Milli(?, 'UTC') AND received_at <= fromUnixTimestamp64Milli(?, 'UTC')", sub.Type)
		args := []any{sub.ID, c.Plan, c.From.UnixMilli(), c.To.UnixMilli(), bound}
		return movePlan(ctx, db, t, where, args, c.Plan)
	case CorrectAttach, CorrectDetach:
		from, to := "", c.UserID
		if c.Kind == CorrectDetach {
			from, to = c.UserID, ""
		}
		n, err := countWhere(ctx, db, t.table("events"), "anonymous_id = ? AND user_id = ? AND received_at <= fromUnixTimestamp64Milli(?, 'UTC')", c.AnonymousID, from, bound)
		if err != nil || n == 0 {
			return 0, err
		}
		// errors first: its condition reads the events not yet changed.
		ids := fmt.Sprintf("event_id IN (SELECT event_id FROM %s WHERE anonymous_id = ? AND user_id = ? AND received_at <= fromUnixTimestamp64Milli(?, 'UTC'))", t.table("events"))
		q := fmt.Sprintf("ALTER TABLE %s UPDATE user_id = ? WHERE anonymous_id = ? AND user_id = ? AND %s SETTINGS mutations_sync = 2", t.mutable("errors"), ids)
		if err := db.Exec(ctx, q, to, c.AnonymousID, from, c.AnonymousID, from, bound); err != nil {
			return 0, fmt.Errorf("correcting errors: %w", err)
		}
		q = fmt.Sprintf("ALTER TABLE %s UPDATE user_id = ? WHERE anonymous_id = ? AND user_id = ? AND received_at <= fromUnixTimestamp64Milli(?, 'UTC') SETTINGS mutations_sync = 2", t.mutable("events"))
		if err := db.Exec(ctx, q, to, c.AnonymousID, from, bound); err != nil {
			return 0, fmt.Errorf("correcting events: %w", err)
		}
		return n, nil
	}
	return 0, fmt.Errorf("%w: kind %q", ErrBadCorrection, c.Kind)
}

func countWhere(ctx context.Context, db DB, table, where string, args ...any) (uint64, error) {
	var n []struct {
		N uint64 `ch:"n"`
	}
	if err := db.Select(ctx, &n, fmt.Sprintf("SELECT count() AS n FROM %s WHERE %s", table, where), args...); err != nil {
		return 0, fmt.Errorf("counting %s rows: %w", table, err)
	}
	if len(n) == 0 {
		return 0, nil
	}
	return n[0].N, nil
}

// movePlan moves the events rows matching where to plan (see correctRows).
func movePlan(ctx context.Context, db DB, t Tables, where string, args []any, plan string) (uint64, error) {
	events := t.table("events")
	n, err := countWhere(ctx, db, events, where, args...)
	if err != nil || n == 0 {
		return 0, err
	}
	var cols []struct {
		Name string `ch:"name"`
	}
	if err := db.Select(ctx, &cols, "SELECT name FROM system.columns WHERE database = ? AND table = 'events' AND default_kind NOT IN ('MATERIALIZED', 'ALIAS', 'EPHEMERAL') ORDER BY position", t.Database); err != nil {
		return 0, fmt.Errorf("reading the events columns: %w", err)
	}
	names, exprs := make([]string, len(cols)), make([]string, len(cols))
	for i, c := range cols {
		names[i], exprs[i] = c.Name, c.Name
		if c.Name == "plan" {
			// Under another name: an alias plan would be what the WHERE
			// clause's plan reads.
			exprs[i] = "? AS corrected_plan"
		}
	}
	scratchName := fmt.Sprintf("events_correction_%d", time.Now().UnixNano())
	scratch := t.Database + "." + scratchName
	defer func() { _ = db.Exec(context.WithoutCancel(ctx), "DROP TABLE IF EXISTS "+scratch) }()
	if err := db.Exec(ctx, fmt.Sprintf("CREATE TABLE %s AS %s", scratch, events)); err != nil {
		return 0, fmt.Errorf("creating the correction's scratch table: %w", err)
	}
	ins := fmt.Sprintf("INSERT INTO %s (%s) SELECT %s FROM %s WHERE %s", scratch, strings.Join(names, ", "), strings.Join(exprs, ", "), events, where)
	if err := db.Exec(ctx, ins, append([]any{plan}, args...)...); err != nil {
		return 0, fmt.Errorf("copying the rows with the corrected plan: %w", err)
	}
	copied, err := countWhere(ctx, db, scratch, "1")
	if err != nil {
		return 0, err
	}
	if copied != n { // never delete what was not copied
		return 0, fmt.Errorf("copying the rows with the corrected plan: %d of %d rows copied; nothing changed, ask again", copied, n)
	}
	var parts []struct {
		ID string `ch:"id"`
	}
	if err := db.Select(ctx, &parts, "SELECT DISTINCT partition_id AS id FROM system.parts WHERE database = ? AND table = ? AND active", t.Database, scratchName); err != nil {
		return 0, fmt.Errorf("listing the corrected partitions: %w", err)
	}
	for _, p := range parts {
		if err := db.Exec(ctx, fmt.Sprintf("ALTER TABLE %s ATTACH PARTITION ID '%s' FROM %s", events, strings.ReplaceAll(p.ID, "'", ""), scratch)); err != nil {
			return 0, fmt.Errorf("attaching the corrected rows: %w", err)
		}
	}
	if err := db.Exec(ctx, fmt.Sprintf("ALTER TABLE %s DELETE WHERE %s SETTINGS mutations_sync = 2", events, where), args...); err != nil {
		return 0, fmt.Errorf("deleting the rows on the wrong plan: %w", err)
	}
	ids := strings.Replace(where, "plan != ?", "plan = ?", 1)
	q := fmt.Sprintf("ALTER TABLE %s UPDATE plan = ? WHERE event_id IN (SELECT event_id FROM %s WHERE %s) SETTINGS mutations_sync = 2", t.mutable("errors"), events, ids)
	if err := db.Exec(ctx, q, append([]any{plan}, args...)...); err != nil {
		return 0, fmt.Errorf("correcting the errors copies: %w", err)
	}
	return n, nil
}
