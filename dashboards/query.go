package dashboards

import (
	"context"
	"fmt"
	"math"
	"reflect"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/google/uuid"
)

// DB runs SQL on ClickHouse. clickhouse-go's driver.Conn (what
// chconn.Open returns, over the native or HTTP protocol) satisfies it.
type DB interface {
	// Query runs a query and returns its rows.
	Query(ctx context.Context, query string, args ...any) (driver.Rows, error)
}

// Column describes one result column.
type Column struct {
	// Name is the column's name (its alias in the query).
	Name string `json:"name"`
	// Type is the ClickHouse type, e.g. DateTime('UTC') or Nullable(Float64).
	Type string `json:"type"`
}

// Result is a query's answer with its values normalised: integers and
// floats as float64 (NaN and infinities as nil), strings, UUIDs as strings,
// dates and times as time.Time in UTC, NULL as nil, arrays as []any.
type Result struct {
	// Columns are the result's columns, in order.
	Columns []Column `json:"columns"`
	// Rows are the values, one slice per row.
	Rows [][]any `json:"rows"`
}

// Run runs sql on db and reads at most maxRows rows (0: no limit; more
// is an error).
func Run(ctx context.Context, db DB, sql string, maxRows int) (*Result, error) {
	rows, err := db.Query(ctx, sql)
	if err != nil {
		return nil, fmt.Errorf("running query: %w", err)
	}
	defer rows.Close()
	res := &Result{Columns: []Column{}, Rows: [][]any{}}
	types := rows.ColumnTypes()
	for _, ct := range types {
		res.Columns = append(res.Columns, Column{Name: ct.Name(), Type: ct.DatabaseTypeName()})
	}
	for rows.Next() {
		if maxRows > 0 && len(res.Rows) == maxRows {
			return nil, fmt.Errorf("query returned more than %d rows", maxRows)
		}
		dest := make([]any, len(types))
		for i, ct := range types {
			dest[i] = reflect.New(ct.ScanType()).Interface()
		}
		if err := rows.Scan(dest...); err != nil {
			return nil, fmt.Errorf("scanning row %d: %w", len(res.Rows), err)
		}
		row := make([]any, len(dest))
		for i, d := range dest {
			row[i] = Normalize(reflect.ValueOf(d).Elem().Interface())
		}
		res.Rows = append(res.Rows, row)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("reading rows: %w", err)
	}
	return res, nil
}

// Normalize maps a scanned value to the forms Result documents.
func Normalize(v any) any {
	switch x := v.(type) {
	case nil:
		return nil
	case string:
		return x
	case bool:
		return x
	case time.Time:
		return x.UTC()
	case uuid.UUID:
		return x.String()
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return nil
		}
		return x
	case float32:
		return Normalize(float64(x))
	case fmt.Stringer:
		if rv := reflect.ValueOf(v); rv.Kind() == reflect.Pointer && rv.IsNil() {
			return nil
		}
	}
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Pointer:
		if rv.IsNil() {
			return nil
		}
		return Normalize(rv.Elem().Interface())
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return float64(rv.Int())
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return float64(rv.Uint())
	case reflect.Float32, reflect.Float64:
		return Normalize(rv.Float())
	case reflect.String:
		return rv.String()
	case reflect.Slice, reflect.Array:
		out := make([]any, rv.Len())
		for i := range out {
			out[i] = Normalize(rv.Index(i).Interface())
		}
		return out
	}
	if s, ok := v.(fmt.Stringer); ok {
		return s.String()
	}
	return fmt.Sprint(v)
}
