// Package migrations owns the ClickHouse schema of the pipeline: the
// versioned SQL files embedded in the binary (NNNN_name.sql, Go templates
// rendered for a database, an optional cluster and the retention config),
// the TTL clauses rendered from the retention config, and applying both to a
// server, recorded in schema_migrations and schema_retention. It must not
// know about Kafka or the consumer; it talks to ClickHouse only through the
// DB interface.
package migrations

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"text/template"
)

//go:embed *.sql
var files embed.FS

// Options select how the migrations are rendered.
type Options struct {
	// Database holds every table. Required.
	Database string
	// Cluster, when set, renders ReplicatedMergeTree tables named <name>_local
	// plus Distributed tables <name> over them, every statement ON CLUSTER.
	Cluster string
	// Retention renders the TTL clauses.
	Retention Retention
}

// Validate reports invalid options.
func (o Options) Validate() error {
	var errs []error
	if !identRE.MatchString(o.Database) {
		errs = append(errs, fmt.Errorf("database %q: must match %s", o.Database, identRE))
	}
	if o.Cluster != "" && !identRE.MatchString(o.Cluster) {
		errs = append(errs, fmt.Errorf("cluster %q: must match %s", o.Cluster, identRE))
	}
	errs = append(errs, o.Retention.Validate())
	return errors.Join(errs...)
}

// identRE bounds database and cluster names to plain identifiers: they are
// spliced into SQL.
var identRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// Migration is one rendered migration file.
type Migration struct {
	// Version is the file's numeric prefix.
	Version uint32
	// Name is the file name without prefix and extension.
	Name string
	// Checksum is the SHA-256 of the file as embedded (the template, not the
	// rendering: changing the database, cluster or retention does not make
	// an applied migration look edited).
	Checksum string
	// Statements are the rendered SQL statements, in order.
	Statements []string
}

// ErrBadMigration means an embedded file is malformed.
var ErrBadMigration = errors.New("malformed migration")

var fileRE = regexp.MustCompile(`^(\d{4})_([a-z0-9_]+)\.sql$`)

// Render renders every embedded migration for o, in version order.
func Render(o Options) ([]Migration, error) {
	if err := o.Validate(); err != nil {
		return nil, fmt.Errorf("migration options: %w", err)
	}
	entries, err := fs.ReadDir(files, ".")
	if err != nil {
		return nil, fmt.Errorf("reading embedded migrations: %w", err)
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].Name() < entries[j].Name() })
	var out []Migration
	for _, e := range entries {
		m := fileRE.FindStringSubmatch(e.Name())
		if m == nil {
			return nil, fmt.Errorf("%w: %s: name must be NNNN_name.sql", ErrBadMigration, e.Name())
		}
		v, _ := strconv.ParseUint(m[1], 10, 32)
		if len(out) > 0 && out[len(out)-1].Version == uint32(v) {
			return nil, fmt.Errorf("%w: %s: version %d used twice", ErrBadMigration, e.Name(), v)
		}
		raw, err := files.ReadFile(e.Name())
		if err != nil {
			return nil, fmt.Errorf("reading %s: %w", e.Name(), err)
		}
		stmts, err := render(e.Name(), string(raw), o)
		if err != nil {
			return nil, err
		}
		sum := sha256.Sum256(raw)
		out = append(out, Migration{Version: uint32(v), Name: m[2], Checksum: hex.EncodeToString(sum[:]), Statements: stmts})
	}
	return out, nil
}

// render executes one template and splits it into statements.
func render(name, text string, o Options) ([]string, error) {
	t, err := template.New(name).Funcs(funcs(o)).Parse(text)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrBadMigration, name, err)
	}
	var buf bytes.Buffer
	if err := t.Execute(&buf, o); err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrBadMigration, name, err)
	}
	return splitStatements(buf.String()), nil
}

// splitStatements splits SQL on semicolons that end a line, dropping
// comment-only and empty statements.
func splitStatements(sql string) []string {
	var out []string
	for _, part := range strings.Split(sql, ";\n") {
		var lines []string
		for _, l := range strings.Split(part, "\n") {
			if t := strings.TrimSpace(l); t != "" && !strings.HasPrefix(t, "--") {
				lines = append(lines, strings.TrimRight(l, " \t"))
			}
		}
		if s := strings.TrimSuffix(strings.Join(lines, "\n"), ";"); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// funcs are the template helpers; they are the only place the cluster and
// single-node layouts differ.
func funcs(o Options) template.FuncMap {
	return template.FuncMap{
		// table names a data table: db.name, or db.name_local on a cluster.
		"table": func(name string) string { return o.localTable(name) },
		// tables names every table a column change of name must reach: the
		// data table, and on a cluster its Distributed table too.
		"tables": func(name string) []string {
			if o.Cluster == "" {
				return []string{o.localTable(name)}
			}
			return []string{o.localTable(name), o.Database + "." + name}
		},
		// on is the ON CLUSTER clause, or nothing.
		"on": func() string { return o.onCluster() },
		// engine is the MergeTree family engine, replicated on a cluster.
		"engine": func(family, name string) string {
			if o.Cluster == "" {
				return family
			}
			return fmt.Sprintf("Replicated%s('/clickhouse/tables/{shard}/%s/%s_local', '{replica}')", family, o.Database, name)
		},
		// distributed creates the Distributed table over name_local on a
		// cluster, and nothing on a single node.
		"distributed": func(name, shardKey string) string {
			if o.Cluster == "" {
				return ""
			}
			return fmt.Sprintf("CREATE TABLE IF NOT EXISTS %s.%s%s AS %s\nENGINE = Distributed(%s, %s, %s_local, %s);",
				o.Database, name, o.onCluster(), o.localTable(name), o.Cluster, o.Database, name, shardKey)
		},
	}
}

func (o Options) localTable(name string) string {
	if o.Cluster == "" {
		return o.Database + "." + name
	}
	return o.Database + "." + name + "_local"
}

func (o Options) onCluster() string {
	if o.Cluster == "" {
		return ""
	}
	return " ON CLUSTER " + o.Cluster
}

// Bootstrap returns the statements that create the database and the
// bookkeeping tables; they are idempotent and run before any migration.
func Bootstrap(o Options) []string {
	engine := func(name string) string {
		if o.Cluster == "" {
			return "ReplacingMergeTree(applied_at)"
		}
		return fmt.Sprintf("ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/%s/%s', '{replica}', applied_at)", o.Database, name)
	}
	return []string{
		fmt.Sprintf("CREATE DATABASE IF NOT EXISTS %s%s", o.Database, o.onCluster()),
		fmt.Sprintf("CREATE TABLE IF NOT EXISTS %s.schema_migrations%s\n(\n    version    UInt32,\n    name       String,\n    checksum   String,\n    applied_at DateTime64(3, 'UTC')\n)\nENGINE = %s\nORDER BY version",
			o.Database, o.onCluster(), engine("schema_migrations")),
		fmt.Sprintf("CREATE TABLE IF NOT EXISTS %s.schema_retention%s\n(\n    target     String,\n    statement  String,\n    applied_at DateTime64(3, 'UTC')\n)\nENGINE = %s\nORDER BY target",
			o.Database, o.onCluster(), engine("schema_retention")),
	}
}
