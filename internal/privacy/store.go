package privacy

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"reflect"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// DB is what the service needs of a ClickHouse connection; clickhouse-go's
// driver.Conn satisfies it.
type DB interface {
	// Exec runs a statement with ? arguments bound.
	Exec(ctx context.Context, query string, args ...any) error
	// Select runs a query and scans every row into dest, a pointer to a slice.
	Select(ctx context.Context, dest any, query string, args ...any) error
	// Query runs a query and streams its rows.
	Query(ctx context.Context, query string, args ...any) (driver.Rows, error)
}

// SubjectTables are the tables holding identifiers, in the order exports
// and deletions visit them: the events, their errors copies, what
// Segment's alias and group calls link (migration 0007_identity), and the
// corrections made for the subject (migration 0009_prompt_corpus).
// rollups_daily and prompt_corpus hold none.
var SubjectTables = []string{"events", "errors", "identity_links", "group_members", "corrections"}

// timeColumn is the column a table's rows are bounded by: when ingest
// received the event, or when the correction was made.
func timeColumn(table string) string {
	if table == "corrections" {
		return "corrected_at"
	}
	return "received_at"
}

// exportOrder is the order of a table's rows in an export.
func exportOrder(table string) string {
	if table == "corrections" {
		return "corrected_at"
	}
	return "timestamp, event_id"
}

// TableCount is a number of rows of one table.
type TableCount struct {
	// Table is the table's name without database.
	Table string `json:"table"`
	// Rows is the count.
	Rows uint64 `json:"rows"`
}

// subjectWhere is the condition, with its arguments, of the rows of table
// that hold sub: its identifier column, and in identity_links also
// previous_id, the earlier identifier an alias linked to a user_id.
func subjectWhere(table string, sub Subject) (string, []any) {
	if table == "identity_links" {
		return "(" + sub.Type + " = ? OR previous_id = ?)", []any{sub.ID, sub.ID}
	}
	return sub.Type + " = ?", []any{sub.ID}
}

// held is the condition, with its arguments, of the rows of table that
// hold sub and that ClickHouse received at or before bound (the zero time:
// whenever). A deletion removes what was held when it was asked for, and
// no event the subject sends after it. events, identity_links and
// group_members rows carry received_at; an errors row is its event's copy
// (errors_mv), so it is held unless its event was received after bound.
func held(t Tables, table string, sub Subject, bound time.Time) (string, []any) {
	where, args := subjectWhere(table, sub)
	if bound.IsZero() {
		return where, args
	}
	switch table {
	case "errors":
		return where + fmt.Sprintf(" AND event_id NOT IN (SELECT event_id FROM %s WHERE %s = ? AND received_at > fromUnixTimestamp64Milli(?, 'UTC'))",
			t.table("events"), sub.Type), append(args, sub.ID, bound.UnixMilli())
	default:
		return where + " AND " + timeColumn(table) + " <= fromUnixTimestamp64Milli(?, 'UTC')", append(args, bound.UnixMilli())
	}
}

// count returns the rows of table that hold sub, received at or before
// bound (zero: all).
func count(ctx context.Context, db DB, t Tables, table string, sub Subject, bound time.Time) (uint64, error) {
	var n []struct {
		N uint64 `ch:"n"`
	}
	where, args := held(t, table, sub, bound)
	q := fmt.Sprintf("SELECT count() AS n FROM %s WHERE %s", t.table(table), where)
	if err := db.Select(ctx, &n, q, args...); err != nil {
		return 0, fmt.Errorf("counting %s rows: %w", table, err)
	}
	if len(n) == 0 {
		return 0, nil
	}
	return n[0].N, nil
}

// counts returns the rows per subject table that hold sub.
func counts(ctx context.Context, db DB, t Tables, sub Subject) ([]TableCount, error) {
	out := make([]TableCount, 0, len(SubjectTables))
	for _, table := range SubjectTables {
		n, err := count(ctx, db, t, table, sub, time.Time{})
		if err != nil {
			return nil, err
		}
		out = append(out, TableCount{Table: table, Rows: n})
	}
	return out, nil
}

// deleteRows removes from every subject table the rows of sub received at
// or before bound (the tombstone's deleted_at), with a synchronous
// mutation (ALTER TABLE ... DELETE ... SETTINGS mutations_sync = 2: the
// events table has a projection, which the engine refuses for a
// lightweight DELETE FROM), and returns the rows removed per table. The
// errors rows go first: their condition reads the events table.
func deleteRows(ctx context.Context, db DB, t Tables, sub Subject, bound time.Time) ([]TableCount, error) {
	out := make([]TableCount, len(SubjectTables))
	for i := len(SubjectTables) - 1; i >= 0; i-- {
		table := SubjectTables[i]
		before, err := count(ctx, db, t, table, sub, bound)
		if err != nil {
			return out, err
		}
		if before > 0 {
			where, args := held(t, table, sub, bound)
			q := fmt.Sprintf("ALTER TABLE %s DELETE WHERE %s SETTINGS mutations_sync = 2", t.mutable(table), where)
			if err := db.Exec(ctx, q, args...); err != nil {
				return out, fmt.Errorf("deleting from %s: %w", table, err)
			}
		}
		after, err := count(ctx, db, t, table, sub, bound)
		if err != nil {
			return out, err
		}
		removed := uint64(0)
		if before > after {
			removed = before - after
		}
		out[i] = TableCount{Table: table, Rows: removed}
	}
	return out, nil
}

// exportRows streams every row of table holding sub to emit, one JSON
// object per row with the table's columns in order.
func exportRows(ctx context.Context, db DB, t Tables, table string, sub Subject, emit func(row json.RawMessage) error) (int, error) {
	where, args := subjectWhere(table, sub)
	q := fmt.Sprintf("SELECT * FROM %s WHERE %s ORDER BY %s", t.table(table), where, exportOrder(table))
	rows, err := db.Query(ctx, q, args...)
	if err != nil {
		return 0, fmt.Errorf("exporting %s: %w", table, err)
	}
	defer rows.Close()
	cols := rows.ColumnTypes()
	vals := make([]any, len(cols))
	for i, c := range cols {
		vals[i] = reflect.New(c.ScanType()).Interface()
	}
	n := 0
	var buf []byte
	for rows.Next() {
		if err := rows.Scan(vals...); err != nil {
			return n, fmt.Errorf("exporting %s: %w", table, err)
		}
		buf = append(buf[:0], '{')
		for i, c := range cols {
			if i > 0 {
				buf = append(buf, ',')
			}
			k, _ := json.Marshal(c.Name())
			v, err := json.Marshal(reflect.ValueOf(vals[i]).Elem().Interface())
			if err != nil {
				return n, fmt.Errorf("exporting %s.%s: %w", table, c.Name(), err)
			}
			buf = append(append(append(buf, k...), ':'), v...)
		}
		buf = append(buf, '}')
		if err := emit(buf); err != nil {
			return n, err
		}
		n++
	}
	if err := rows.Err(); err != nil {
		return n, fmt.Errorf("exporting %s: %w", table, err)
	}
	return n, nil
}

// writeExport writes a whole export as one JSON document.
func writeExport(ctx context.Context, db DB, t Tables, sub Subject, w io.Writer) (int, error) {
	total := 0
	if _, err := fmt.Fprintf(w, `{"subject_type":%q,"tables":{`, sub.Type); err != nil {
		return 0, err
	}
	for i, table := range SubjectTables {
		if i > 0 {
			io.WriteString(w, ",")
		}
		fmt.Fprintf(w, "%q:[", table)
		first := true
		n, err := exportRows(ctx, db, t, table, sub, func(row json.RawMessage) error {
			if !first {
				io.WriteString(w, ",")
			}
			first = false
			_, err := w.Write(row)
			return err
		})
		total += n
		if err != nil {
			return total, err
		}
		io.WriteString(w, "]")
	}
	_, err := io.WriteString(w, "}}\n")
	return total, err
}
