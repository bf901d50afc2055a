package privacy

import (
	"context"
	"fmt"
	"maps"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sora3web/telemetry/schema"
)

// set is an immutable set of subjects, each with a time (a tombstone's
// deleted_at; unused for opt-outs); a change builds a new one.
type set struct {
	users, anons map[string]time.Time
}

func newSet() *set { return &set{users: map[string]time.Time{}, anons: map[string]time.Time{}} }

// at returns the later time of the identifiers in s, and whether either is.
func (s *set) at(userID, anonymousID string) (time.Time, bool) {
	var t time.Time
	var found bool
	if userID != "" {
		if at, ok := s.users[userID]; ok {
			t, found = at, true
		}
	}
	if anonymousID != "" {
		if at, ok := s.anons[anonymousID]; ok {
			if !found || at.After(t) {
				t = at
			}
			found = true
		}
	}
	return t, found
}

func (s *set) has(userID, anonymousID string) bool {
	_, ok := s.at(userID, anonymousID)
	return ok
}

func (s *set) len() int { return len(s.users) + len(s.anons) }

// with returns a copy of s with sub added at t (in true; a later time
// wins) or removed.
func (s *set) with(sub Subject, at time.Time, in bool) *set {
	out := &set{users: maps.Clone(s.users), anons: maps.Clone(s.anons)}
	m := out.users
	if sub.Type == SubjectAnonymous {
		m = out.anons
	}
	if !in {
		delete(m, sub.ID)
	} else if old, ok := m[sub.ID]; !ok || at.After(old) {
		m[sub.ID] = at
	}
	return out
}

// Registry holds the tombstone and opt-out sets in memory. Reads are
// lock-free (an atomic pointer to an immutable set), so the ingest hot path
// and the consumer pay one or two map lookups per event. It implements
// collector.OptOuts (OptedOut) and consumer.Filter (Drop, DeletedAt and
// Correct), and holds the corrections (correct.go) beside the tombstones.
type Registry struct {
	db     DB
	tables Tables

	tomb, opt atomic.Pointer[set]
	corr      atomic.Pointer[correctionSet]
	// mu serialises reloads with local changes, so a reload that read the
	// tables before a change cannot overwrite it.
	mu sync.Mutex

	// dropped counts events the consumer was told to drop; corrected,
	// those it was told to correct.
	dropped, corrected atomic.Int64
}

// NewRegistry returns an empty registry reading tables over db.
func NewRegistry(db DB, tables Tables) (*Registry, error) {
	if err := tables.validate(); err != nil {
		return nil, err
	}
	r := &Registry{db: db, tables: tables}
	r.tomb.Store(newSet())
	r.opt.Store(newSet())
	r.corr.Store(newCorrectionSet(nil))
	return r, nil
}

// OptedOut reports whether either identifier is in the opt-out registry
// (collector.OptOuts).
func (r *Registry) OptedOut(userID, anonymousID string) bool {
	return r.opt.Load().has(userID, anonymousID)
}

// Tombstoned reports whether either identifier was ever deleted.
func (r *Registry) Tombstoned(userID, anonymousID string) bool {
	return r.tomb.Load().has(userID, anonymousID)
}

// Drop reports whether the consumer must not store e: its user_id or
// anonymous_id was deleted after ingest received e, so e is data held at
// the time of the deletion (still in Kafka or the local log, or replayed
// later) (consumer.Filter). An event received after the deletion is the
// person using the product again and is stored: a deletion erases what
// was held, it does not opt the person out.
//
// An alias event holds a third identifier, its previous_id (an earlier
// user_id or anonymous_id): it is dropped as well when that one was
// deleted after ingest received it, so a replay never links a deleted id
// again.
func (r *Registry) Drop(e *schema.Enriched) bool {
	tomb := r.tomb.Load()
	deletedAt, ok := tomb.at(e.UserID, e.AnonymousID)
	if e.PreviousID != "" {
		if at, found := tomb.at(e.PreviousID, e.PreviousID); found && (!ok || at.After(deletedAt)) {
			deletedAt, ok = at, true
		}
	}
	if ok && !e.ReceivedAt.After(deletedAt) {
		r.dropped.Add(1)
		return true
	}
	return false
}

// DeletedAt returns the bound of the latest deletion of e's subjects
// (its user_id or anonymous_id), if one was deleted: the consumer lets a
// copy of an event through its dedup window when the copy it stored was
// deleted since.
func (r *Registry) DeletedAt(e *schema.Enriched) (time.Time, bool) {
	return r.tomb.Load().at(e.UserID, e.AnonymousID)
}

// Dropped is the number of events Drop refused so far.
func (r *Registry) Dropped() int64 { return r.dropped.Load() }

// Sizes returns the number of tombstoned and opted-out subjects in memory.
func (r *Registry) Sizes() (tombstones, optOuts int) {
	return r.tomb.Load().len(), r.opt.Load().len()
}

type subjectRow struct {
	Type string    `ch:"subject_type"`
	ID   string    `ch:"subject_id"`
	At   time.Time `ch:"at"`
}

// Tombstone is one deletion: its subject and its bound.
type Tombstone struct {
	Subject
	// DeletedAt bounds it: events received at or before it are deleted.
	DeletedAt time.Time
}

// Reload replaces the sets with the tables' contents.
func (r *Registry) Reload(ctx context.Context) error {
	_, _, err := r.reload(ctx)
	return err
}

// reload is Reload, returning the tombstones it learned (new subjects, or
// a later bound for a known one) and the corrections it learned: those
// made through another process.
func (r *Registry) reload(ctx context.Context) ([]Tombstone, []Correction, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var tombs, opts []subjectRow
	if err := r.db.Select(ctx, &tombs, fmt.Sprintf("SELECT subject_type, subject_id, max(deleted_at) AS at FROM %s GROUP BY subject_type, subject_id", r.tables.table("tombstones"))); err != nil {
		return nil, nil, fmt.Errorf("loading tombstones: %w", err)
	}
	if err := r.db.Select(ctx, &opts, fmt.Sprintf("SELECT subject_type, subject_id, max(updated_at) AS at FROM %s GROUP BY subject_type, subject_id HAVING argMax(opted_out, updated_at)", r.tables.table("opt_outs"))); err != nil {
		return nil, nil, fmt.Errorf("loading opt-outs: %w", err)
	}
	corrs, err := loadCorrections(ctx, r.db, r.tables)
	if err != nil {
		return nil, nil, err
	}
	knownCorr := map[string]bool{}
	for _, c := range r.corr.Load().all() {
		knownCorr[c.key()] = true
	}
	var freshCorr []Correction
	for _, c := range corrs {
		if !knownCorr[c.key()] {
			freshCorr = append(freshCorr, c)
		}
	}
	known := r.tomb.Load()
	var fresh []Tombstone
	for _, row := range tombs {
		m := known.users
		if row.Type == SubjectAnonymous {
			m = known.anons
		}
		if at, ok := m[row.ID]; !ok || row.At.After(at) {
			fresh = append(fresh, Tombstone{Subject: Subject{Type: row.Type, ID: row.ID}, DeletedAt: row.At})
		}
	}
	r.tomb.Store(build(tombs))
	r.opt.Store(build(opts))
	r.corr.Store(newCorrectionSet(corrs))
	return fresh, freshCorr, nil
}

func build(rows []subjectRow) *set {
	s := newSet()
	for _, row := range rows {
		switch row.Type {
		case SubjectUser:
			s.users[row.ID] = row.At
		case SubjectAnonymous:
			s.anons[row.ID] = row.At
		}
	}
	return s
}

// Tombstone records sub as deleted now, in the table and then in memory,
// and returns the bound it recorded (deleted_at, this process's clock, as
// ingest stamps received_at): from now on the consumer drops the events of
// sub received at or before it, and stores those received after.
func (r *Registry) Tombstone(ctx context.Context, sub Subject) (time.Time, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	at := boundNow()
	q := fmt.Sprintf("INSERT INTO %s (subject_type, subject_id, deleted_at, updated_at) VALUES (?, ?, fromUnixTimestamp64Milli(?, 'UTC'), now64(6))", r.tables.table("tombstones"))
	if err := r.db.Exec(ctx, q, sub.Type, sub.ID, at.UnixMilli()); err != nil {
		return time.Time{}, fmt.Errorf("recording tombstone: %w", err)
	}
	r.tomb.Store(r.tomb.Load().with(sub, at, true))
	return at, nil
}

// boundNow is the bound of a tombstone or correction made now, in
// DateTime64(3): rounded up, never down, so every event received before
// the call is at or before it (an event in the same millisecond after it
// counts as before: ties go to the request).
func boundNow() time.Time {
	now := time.Now().UTC()
	at := now.Truncate(time.Millisecond)
	if at.Before(now) {
		at = at.Add(time.Millisecond)
	}
	return at
}

// SetOptOut records sub as opted out (or back in), in the table and then
// in memory, so ingest honours it from the next request.
func (r *Registry) SetOptOut(ctx context.Context, sub Subject, optedOut bool) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	q := fmt.Sprintf("INSERT INTO %s (subject_type, subject_id, opted_out, updated_at) VALUES (?, ?, ?, now64(6))", r.tables.table("opt_outs"))
	if err := r.db.Exec(ctx, q, sub.Type, sub.ID, optedOut); err != nil {
		return fmt.Errorf("recording opt-out: %w", err)
	}
	r.opt.Store(r.opt.Load().with(sub, time.Time{}, optedOut))
	return nil
}
