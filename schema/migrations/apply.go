package migrations

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
)

// DB is what the Migrator needs of a ClickHouse connection;
// clickhouse-go's driver.Conn satisfies it.
type DB interface {
	// Exec runs a statement with ? arguments bound.
	Exec(ctx context.Context, query string, args ...any) error
	// Select runs a query and scans every row into dest, a pointer to a slice.
	Select(ctx context.Context, dest any, query string, args ...any) error
}

// Sentinel errors of Plan and Apply.
var (
	// ErrChecksumMismatch means an applied migration's file was edited.
	ErrChecksumMismatch = errors.New("applied migration changed")
	// ErrUnknownMigration means the database has a migration this binary lacks.
	ErrUnknownMigration = errors.New("applied migration unknown to this binary")
)

// Plan is what Apply would do.
type Plan struct {
	// Bootstrap creates the database and bookkeeping tables (idempotent,
	// always run).
	Bootstrap []string
	// Migrations are the pending migrations, in order.
	Migrations []Migration
	// Retention are the TTL statements whose SQL differs from the one last
	// applied to their target.
	Retention []Statement
}

// Empty reports whether nothing is pending.
func (p Plan) Empty() bool { return len(p.Migrations) == 0 && len(p.Retention) == 0 }

// WriteSQL prints the plan as a SQL script.
func (p Plan) WriteSQL(w io.Writer) error {
	var b strings.Builder
	b.WriteString("-- bootstrap\n")
	for _, s := range p.Bootstrap {
		b.WriteString(s + ";\n\n")
	}
	for _, m := range p.Migrations {
		fmt.Fprintf(&b, "-- migration %04d_%s (sha256 %s)\n", m.Version, m.Name, m.Checksum)
		for _, s := range m.Statements {
			b.WriteString(s + ";\n\n")
		}
	}
	for _, r := range p.Retention {
		fmt.Fprintf(&b, "-- retention %s\n%s;\n\n", r.Target, r.SQL)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// Migrator applies the migrations and retention of Options to a database.
type Migrator struct {
	db   DB
	opts Options
}

// New returns a Migrator; it validates o.
func New(db DB, o Options) (*Migrator, error) {
	if err := o.Validate(); err != nil {
		return nil, fmt.Errorf("migration options: %w", err)
	}
	return &Migrator{db: db, opts: o}, nil
}

type appliedRow struct {
	Version  uint32 `ch:"version"`
	Checksum string `ch:"checksum"`
}

type retentionRow struct {
	Target    string `ch:"target"`
	Statement string `ch:"statement"`
}

// Plan compares the embedded migrations and the retention config with what
// the database recorded. A database without bookkeeping tables has
// everything pending. It changes nothing.
func (m *Migrator) Plan(ctx context.Context) (Plan, error) {
	all, err := Render(m.opts)
	if err != nil {
		return Plan{}, err
	}
	p := Plan{Bootstrap: Bootstrap(m.opts)}
	var exists []struct {
		N uint64 `ch:"n"`
	}
	if err := m.db.Select(ctx, &exists, "SELECT count() AS n FROM system.tables WHERE database = ? AND name IN ('schema_migrations', 'schema_retention')", m.opts.Database); err != nil {
		return Plan{}, fmt.Errorf("reading migration state: %w", err)
	}
	applied := map[uint32]string{}
	lastRetention := map[string]string{}
	if len(exists) == 1 && exists[0].N == 2 {
		var rows []appliedRow
		if err := m.db.Select(ctx, &rows, fmt.Sprintf("SELECT version, checksum FROM %s.schema_migrations FINAL", m.opts.Database)); err != nil {
			return Plan{}, fmt.Errorf("reading schema_migrations: %w", err)
		}
		for _, r := range rows {
			applied[r.Version] = r.Checksum
		}
		var rets []retentionRow
		if err := m.db.Select(ctx, &rets, fmt.Sprintf("SELECT target, argMax(statement, applied_at) AS statement FROM %s.schema_retention GROUP BY target", m.opts.Database)); err != nil {
			return Plan{}, fmt.Errorf("reading schema_retention: %w", err)
		}
		for _, r := range rets {
			lastRetention[r.Target] = r.Statement
		}
	}
	known := map[uint32]bool{}
	for _, mig := range all {
		known[mig.Version] = true
		sum, ok := applied[mig.Version]
		switch {
		case !ok:
			p.Migrations = append(p.Migrations, mig)
		case sum != mig.Checksum:
			return Plan{}, fmt.Errorf("%w: %04d_%s: recorded sha256 %s, file %s", ErrChecksumMismatch, mig.Version, mig.Name, sum, mig.Checksum)
		}
	}
	for v := range applied {
		if !known[v] {
			return Plan{}, fmt.Errorf("%w: version %d", ErrUnknownMigration, v)
		}
	}
	for _, s := range RetentionStatements(m.opts) {
		if lastRetention[s.Target] != s.SQL {
			p.Retention = append(p.Retention, s)
		}
	}
	return p, nil
}

// Apply runs the bootstrap, then every pending migration (recording each
// in schema_migrations after all its statements succeeded), then every
// changed retention statement (recorded in schema_retention). Statements
// are idempotent (IF NOT EXISTS), so a migration interrupted half-way is
// completed by the next Apply. It returns what it applied.
func (m *Migrator) Apply(ctx context.Context) (Plan, error) {
	for _, s := range Bootstrap(m.opts) {
		if err := m.db.Exec(ctx, s); err != nil {
			return Plan{}, fmt.Errorf("bootstrap: %w", err)
		}
	}
	p, err := m.Plan(ctx)
	if err != nil {
		return Plan{}, err
	}
	for _, mig := range p.Migrations {
		for i, s := range mig.Statements {
			if err := m.db.Exec(ctx, s); err != nil {
				return Plan{}, fmt.Errorf("migration %04d_%s statement %d: %w", mig.Version, mig.Name, i+1, err)
			}
		}
		if err := m.db.Exec(ctx, fmt.Sprintf("INSERT INTO %s.schema_migrations (version, name, checksum, applied_at) VALUES (?, ?, ?, now64(3))", m.opts.Database),
			mig.Version, mig.Name, mig.Checksum); err != nil {
			return Plan{}, fmt.Errorf("recording migration %04d_%s: %w", mig.Version, mig.Name, err)
		}
	}
	for _, s := range p.Retention {
		if err := m.db.Exec(ctx, s.SQL); err != nil {
			return Plan{}, fmt.Errorf("retention %s: %w", s.Target, err)
		}
		if err := m.db.Exec(ctx, fmt.Sprintf("INSERT INTO %s.schema_retention (target, statement, applied_at) VALUES (?, ?, now64(3))", m.opts.Database),
			s.Target, s.SQL); err != nil {
			return Plan{}, fmt.Errorf("recording retention %s: %w", s.Target, err)
		}
	}
	return p, nil
}
