package privacy

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/sora3web/telemetry/schema"
)

// set is an immutable set of subjects; a change builds a new one.
type set struct {
	users, anons map[string]struct{}
}

func newSet() *set { return &set{users: map[string]struct{}{}, anons: map[string]struct{}{}} }

func (s *set) has(userID, anonymousID string) bool {
	if userID != "" {
		if _, ok := s.users[userID]; ok {
			return true
		}
	}
	if anonymousID != "" {
		if _, ok := s.anons[anonymousID]; ok {
			return true
		}
	}
	return false
}

func (s *set) len() int { return len(s.users) + len(s.anons) }

// with returns a copy of s with sub added (in true) or removed.
func (s *set) with(sub Subject, in bool) *set {
	out := &set{users: make(map[string]struct{}, len(s.users)+1), anons: make(map[string]struct{}, len(s.anons)+1)}
	for k := range s.users {
		out.users[k] = struct{}{}
	}
	for k := range s.anons {
		out.anons[k] = struct{}{}
	}
	m := out.users
	if sub.Type == SubjectAnonymous {
		m = out.anons
	}
	if in {
		m[sub.ID] = struct{}{}
	} else {
		delete(m, sub.ID)
	}
	return out
}

// Registry holds the tombstone and opt-out sets in memory. Reads are
// lock-free (an atomic pointer to an immutable set), so the ingest hot path
// and the consumer pay one or two map lookups per event. It implements
// collector.OptOuts (OptedOut) and consumer.Filter (Drop).
type Registry struct {
	db     DB
	tables Tables

	tomb, opt atomic.Pointer[set]
	// mu serialises reloads with local changes, so a reload that read the
	// tables before a change cannot overwrite it.
	mu sync.Mutex

	// dropped counts events the consumer was told to drop.
	dropped atomic.Int64
}

// NewRegistry returns an empty registry reading tables over db.
func NewRegistry(db DB, tables Tables) (*Registry, error) {
	if err := tables.validate(); err != nil {
		return nil, err
	}
	r := &Registry{db: db, tables: tables}
	r.tomb.Store(newSet())
	r.opt.Store(newSet())
	return r, nil
}

// OptedOut reports whether either identifier is in the opt-out registry
// (collector.OptOuts).
func (r *Registry) OptedOut(userID, anonymousID string) bool {
	return r.opt.Load().has(userID, anonymousID)
}

// Tombstoned reports whether either identifier was deleted.
func (r *Registry) Tombstoned(userID, anonymousID string) bool {
	return r.tomb.Load().has(userID, anonymousID)
}

// Drop reports whether the consumer must not store e: its user_id or
// anonymous_id was deleted (consumer.Filter).
func (r *Registry) Drop(e *schema.Enriched) bool {
	if r.tomb.Load().has(e.UserID, e.AnonymousID) {
		r.dropped.Add(1)
		return true
	}
	return false
}

// Dropped is the number of events Drop refused so far.
func (r *Registry) Dropped() int64 { return r.dropped.Load() }

// Sizes returns the number of tombstoned and opted-out subjects in memory.
func (r *Registry) Sizes() (tombstones, optOuts int) {
	return r.tomb.Load().len(), r.opt.Load().len()
}

type subjectRow struct {
	Type string `ch:"subject_type"`
	ID   string `ch:"subject_id"`
}

// Reload replaces both sets with the tables' contents.
func (r *Registry) Reload(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	var tombs, opts []subjectRow
	if err := r.db.Select(ctx, &tombs, fmt.Sprintf("SELECT DISTINCT subject_type, subject_id FROM %s", r.tables.table("tombstones"))); err != nil {
		return fmt.Errorf("loading tombstones: %w", err)
	}
	if err := r.db.Select(ctx, &opts, fmt.Sprintf("SELECT subject_type, subject_id FROM %s GROUP BY subject_type, subject_id HAVING argMax(opted_out, updated_at)", r.tables.table("opt_outs"))); err != nil {
		return fmt.Errorf("loading opt-outs: %w", err)
	}
	r.tomb.Store(build(tombs))
	r.opt.Store(build(opts))
	return nil
}

func build(rows []subjectRow) *set {
	s := newSet()
	for _, row := range rows {
		switch row.Type {
		case SubjectUser:
			s.users[row.ID] = struct{}{}
		case SubjectAnonymous:
			s.anons[row.ID] = struct{}{}
		}
	}
	return s
}

// Tombstone records sub as deleted, in the table and then in memory, so
// the consumer drops its events from now on.
func (r *Registry) Tombstone(ctx context.Context, sub Subject) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	q := fmt.Sprintf("INSERT INTO %s (subject_type, subject_id, deleted_at, updated_at) VALUES (?, ?, now64(3), now64(6))", r.tables.table("tombstones"))
	if err := r.db.Exec(ctx, q, sub.Type, sub.ID); err != nil {
		return fmt.Errorf("recording tombstone: %w", err)
	}
	r.tomb.Store(r.tomb.Load().with(sub, true))
	return nil
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
	r.opt.Store(r.opt.Load().with(sub, optedOut))
	return nil
}
