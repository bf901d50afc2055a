package chserver_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/google/uuid"

	"github.com/sora3web/telemetry/internal/testenv"
)

// wire records what went over the wire, to prove compression was used.
type wire struct {
	mu                    sync.Mutex
	reqEnc, respEnc       map[string]int
	nativeReq, nativeResp int
}

func (w *wire) RoundTrip(base http.RoundTripper) http.RoundTripper {
	return roundTripFunc(func(r *http.Request) (*http.Response, error) {
		resp, err := base.RoundTrip(r)
		w.mu.Lock()
		defer w.mu.Unlock()
		if w.reqEnc == nil {
			w.reqEnc, w.respEnc = map[string]int{}, map[string]int{}
		}
		w.reqEnc[r.Header.Get("Content-Encoding")]++
		q := r.URL.Query()
		if q.Get("decompress") == "1" {
			w.nativeReq++
		}
		if q.Get("compress") == "1" {
			w.nativeResp++
		}
		if resp != nil {
			w.respEnc[resp.Header.Get("Content-Encoding")]++
		}
		return resp, err
	})
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// connect opens clickhouse-go over HTTP against the test server.
func connect(t *testing.T, password string, method clickhouse.CompressionMethod) driver.Conn {
	t.Helper()
	return connectWire(t, password, method, nil)
}

func connectWire(t *testing.T, password string, method clickhouse.CompressionMethod, w *wire) driver.Conn {
	t.Helper()
	return open(t, func(opts *clickhouse.Options) {
		opts.Auth.Password = password
		setCompression(opts, method, w)
	})
}

// open connects clickhouse-go over HTTP to the test server as the default
// user, with options changed by with, and closes it at the test's end.
func open(t *testing.T, with func(*clickhouse.Options)) driver.Conn {
	t.Helper()
	opts := &clickhouse.Options{
		Addr:        []string{testenv.ClickHouse(t)},
		Protocol:    clickhouse.HTTP,
		Auth:        clickhouse.Auth{Database: "default", Username: "default"},
		DialTimeout: 10 * time.Second,
		ReadTimeout: 2 * time.Minute,
	}
	with(opts)
	conn, err := clickhouse.Open(opts)
	if err != nil {
		t.Fatalf("clickhouse.Open: %v", err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// setCompression sets the client's compression method and, when w is not
// nil, records the wire through it.
func setCompression(opts *clickhouse.Options, method clickhouse.CompressionMethod, w *wire) {
	if method != clickhouse.CompressionNone {
		opts.Compression = &clickhouse.Compression{Method: method}
		// Responses are HTTP-compressed only when asked for, as in ClickHouse.
		opts.Settings = clickhouse.Settings{"enable_http_compression": 1}
	}
	if w != nil {
		opts.TransportFunc = func(t *http.Transport) (http.RoundTripper, error) { return w.RoundTrip(t), nil }
	}
}

type row struct {
	ID    uint64
	Name  string
	Kind  string
	U8    uint8
	U16   uint16
	U32   uint32
	I64   int64
	F64   float64
	TS    time.Time
	Note  *string
	Tags  []string
	Attrs map[string]string
	UID   uuid.UUID
	Flag  bool
}

func makeRow(i int) row {
	r := row{
		ID:    uint64(i),
		Name:  fmt.Sprintf("name-%d\t\"quoted\"\n\x00zero", i),
		Kind:  []string{"page_view", "identify", "client_error"}[i%3],
		U8:    uint8(i),
		U16:   uint16(i * 7),
		U32:   uint32(i * 1000003),
		I64:   int64(i) * -123456789,
		F64:   float64(i) / 7,
		TS:    time.UnixMilli(1_700_000_000_000 + int64(i)*1001).UTC(),
		Tags:  []string{fmt.Sprint("t", i%5), "x"}[:i%3],
		Attrs: map[string]string{"k": fmt.Sprint(i)},
		UID:   uuid.NewSHA1(uuid.NameSpaceOID, []byte(fmt.Sprint(i))),
		Flag:  i%2 == 0,
	}
	if i%4 != 0 {
		n := fmt.Sprint("note ", i)
		r.Note = &n
	}
	if r.Tags == nil {
		r.Tags = []string{}
	}
	return r
}

func TestClickHouseGoBatchAndTypes(t *testing.T) {
	ctx := context.Background()
	conn := connect(t, "", clickhouse.CompressionNone)
	v, err := conn.ServerVersion()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("server %s %s tz=%s", v.DisplayName, v.Version, v.Timezone)
	if err := conn.Exec(ctx, `CREATE TABLE go_types (
		id UInt64, name String, kind LowCardinality(String),
		u8 UInt8, u16 UInt16, u32 UInt32, i64 Int64, f64 Float64,
		ts DateTime64(3, 'UTC'), note Nullable(String), tags Array(String),
		attrs Map(String, String), uid UUID, flag Bool
	) ENGINE = MergeTree ORDER BY id`); err != nil {
		t.Fatal(err)
	}
	const n = 200_000
	batch, err := conn.PrepareBatch(ctx, "INSERT INTO go_types")
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < n; i++ {
		r := makeRow(i)
		if err := batch.Append(r.ID, r.Name, r.Kind, r.U8, r.U16, r.U32, r.I64, r.F64, r.TS, r.Note, r.Tags, r.Attrs, r.UID, r.Flag); err != nil {
			t.Fatal(err)
		}
	}
	if err := batch.Send(); err != nil {
		t.Fatalf("batch send: %v", err)
	}
	var count uint64
	if err := conn.QueryRow(ctx, "SELECT count() FROM go_types").Scan(&count); err != nil {
		t.Fatal(err)
	}
	if count != n {
		t.Fatalf("count = %d, want %d", count, n)
	}
	rows, err := conn.Query(ctx, "SELECT * FROM go_types WHERE id % 9973 = 0 OR id IN (1, 2, 3, 199999) ORDER BY id")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	seen := 0
	for rows.Next() {
		var g row
		if err := rows.Scan(&g.ID, &g.Name, &g.Kind, &g.U8, &g.U16, &g.U32, &g.I64, &g.F64, &g.TS, &g.Note, &g.Tags, &g.Attrs, &g.UID, &g.Flag); err != nil {
			t.Fatal(err)
		}
		compareRow(t, g, makeRow(int(g.ID)))
		seen++
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if want := n/9973 + 1 + 4; seen != want {
		t.Fatalf("sampled %d rows, want %d", seen, want)
	}
}

func compareRow(t *testing.T, got, want row) {
	t.Helper()
	eq := func(field string, g, w any) {
		if fmt.Sprint(g) != fmt.Sprint(w) {
			t.Errorf("row %d %s: got %v, want %v", want.ID, field, g, w)
		}
	}
	eq("name", got.Name, want.Name)
	eq("kind", got.Kind, want.Kind)
	eq("u8", got.U8, want.U8)
	eq("u16", got.U16, want.U16)
	eq("u32", got.U32, want.U32)
	eq("i64", got.I64, want.I64)
	eq("f64", got.F64, want.F64)
	if !got.TS.Equal(want.TS) {
		t.Errorf("row %d ts: got %v, want %v", want.ID, got.TS, want.TS)
	}
	if (got.Note == nil) != (want.Note == nil) || got.Note != nil && *got.Note != *want.Note {
		t.Errorf("row %d note: got %v, want %v", want.ID, got.Note, want.Note)
	}
	eq("tags", got.Tags, want.Tags)
	eq("attrs", got.Attrs, want.Attrs)
	eq("uid", got.UID, want.UID)
	eq("flag", got.Flag, want.Flag)
}

func TestClickHouseGoParameters(t *testing.T) {
	ctx := context.Background()
	conn := connect(t, "", clickhouse.CompressionNone)
	// Server-side parameters ({name:Type}) sent as param_* by the driver.
	ctx = clickhouse.Context(ctx, clickhouse.WithParameters(clickhouse.Parameters{
		"s": "it's a 'quoted' value'); DROP TABLE go_types; --", "n": "41",
	}))
	var s string
	var n uint64
	if err := conn.QueryRow(ctx, "SELECT {s:String}, {n:UInt64} + 1").Scan(&s, &n); err != nil {
		t.Fatal(err)
	}
	if s != "it's a 'quoted' value'); DROP TABLE go_types; --" || n != 42 {
		t.Fatalf("got %q %d", s, n)
	}
	// Client-side binding with clickhouse.Named.
	var got string
	if err := conn.QueryRow(context.Background(), "SELECT @v || '!'", clickhouse.Named("v", "o'clock")).Scan(&got); err != nil {
		t.Fatal(err)
	}
	if got != "o'clock!" {
		t.Fatalf("Named: got %q", got)
	}
}

func TestClickHouseGoErrors(t *testing.T) {
	ctx := context.Background()
	conn := connect(t, "", clickhouse.CompressionNone)
	err := conn.Exec(ctx, "SELECT * FROM missing_table_xyz")
	var ex *clickhouse.Exception
	if !errors.As(err, &ex) || ex.Code != 60 {
		t.Fatalf("missing table: got %v, want Exception code 60", err)
	}
	var httpErr *clickhouse.HTTPError
	if !errors.As(err, &httpErr) || httpErr.StatusCode != 404 {
		t.Fatalf("missing table: want HTTPError 404, got %v", err)
	}

	bad, err := clickhouse.Open(&clickhouse.Options{
		Addr:     []string{testenv.ClickHouse(t)},
		Protocol: clickhouse.HTTP,
		Auth:     clickhouse.Auth{Username: "default", Password: "wrong"},
	})
	if err == nil {
		defer bad.Close()
		err = bad.Ping(ctx)
	}
	if !errors.As(err, &ex) || ex.Code != 516 {
		t.Fatalf("wrong password: got %v, want Exception code 516", err)
	}
}

func TestClickHouseGoConcurrentQueries(t *testing.T) {
	conn := connect(t, "", clickhouse.CompressionNone)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 10; i++ {
				var sum uint64
				k := uint64(g*100 + i)
				if err := conn.QueryRow(context.Background(), fmt.Sprintf("SELECT sum(number) FROM numbers(%d)", k)).Scan(&sum); err != nil {
					errs <- err
					return
				}
				if want := k * (k - 1) / 2; k > 0 && sum != want {
					errs <- fmt.Errorf("sum(numbers(%d)) = %d, want %d", k, sum, want)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestClickHouseGoCompression(t *testing.T) {
	ctx := context.Background()
	setup := connect(t, "", clickhouse.CompressionNone)
	if err := setup.Exec(ctx, "CREATE TABLE go_comp (method String, n UInt32, s String) ENGINE = MergeTree ORDER BY (method, n)"); err != nil {
		t.Fatal(err)
	}
	for _, m := range []clickhouse.CompressionMethod{clickhouse.CompressionGZIP, clickhouse.CompressionZSTD, clickhouse.CompressionLZ4, clickhouse.CompressionDeflate, clickhouse.CompressionBrotli} {
		t.Run(m.String(), func(t *testing.T) {
			w := &wire{}
			conn := connectWire(t, "", m, w)
			batch, err := conn.PrepareBatch(ctx, "INSERT INTO go_comp")
			if err != nil {
				t.Fatal(err)
			}
			for i := 0; i < 5000; i++ {
				if err := batch.Append(m.String(), uint32(i), fmt.Sprint("value ", i)); err != nil {
					t.Fatal(err)
				}
			}
			if err := batch.Send(); err != nil {
				t.Fatalf("send: %v", err)
			}
			rows, err := conn.Query(ctx, "SELECT n, s FROM go_comp WHERE method = ? ORDER BY n", m.String())
			if err != nil {
				t.Fatal(err)
			}
			defer rows.Close()
			i := 0
			for rows.Next() {
				var n uint32
				var s string
				if err := rows.Scan(&n, &s); err != nil {
					t.Fatal(err)
				}
				if n != uint32(i) || s != fmt.Sprint("value ", i) {
					t.Fatalf("row %d: %d %q", i, n, s)
				}
				i++
			}
			if err := rows.Err(); err != nil {
				t.Fatal(err)
			}
			if i != 5000 {
				t.Fatalf("read %d rows, want 5000", i)
			}
			w.mu.Lock()
			switch m {
			case clickhouse.CompressionZSTD, clickhouse.CompressionLZ4:
				if w.nativeReq == 0 || w.nativeResp == 0 {
					t.Errorf("compress=1/decompress=1 not used: %+v", w)
				}
			default:
				if w.reqEnc[m.String()] == 0 || w.respEnc[m.String()] == 0 {
					t.Errorf("Content-Encoding %s not used both ways: req %v resp %v", m, w.reqEnc, w.respEnc)
				}
			}
			w.mu.Unlock()
			// An error over a compressed connection still carries its code.
			if err := conn.Exec(ctx, "SELECT * FROM missing_table_xyz"); clickhouseCode(err) != 60 {
				t.Fatalf("error over %s: %v", m, err)
			}
		})
	}
}

func clickhouseCode(err error) int32 {
	var ex *clickhouse.Exception
	if errors.As(err, &ex) {
		return ex.Code
	}
	return 0
}

// TestClickHouseGoSessionTemporaryTable: with session_id in its settings,
// clickhouse-go creates a temporary table, batch-inserts into it and reads
// the rows back; a connection with another session_id gets
// clickhouse.Exception code 60 for it.
func TestClickHouseGoSessionTemporaryTable(t *testing.T) {
	ctx := context.Background()
	inSession := func(id string) driver.Conn {
		return open(t, func(opts *clickhouse.Options) { opts.Settings = clickhouse.Settings{"session_id": id} })
	}
	conn := inSession("go-tmp-a")
	if err := conn.Exec(ctx, "CREATE TEMPORARY TABLE go_tmp (id UInt32, name String)"); err != nil {
		t.Fatal(err)
	}
	batch, err := conn.PrepareBatch(ctx, "INSERT INTO go_tmp")
	if err != nil {
		t.Fatal(err)
	}
	for i, name := range []string{"x", "y", "z"} {
		if err := batch.Append(uint32(i+1), name); err != nil {
			t.Fatal(err)
		}
	}
	if err := batch.Send(); err != nil {
		t.Fatal(err)
	}
	rows, err := conn.Query(ctx, "SELECT id, name FROM go_tmp ORDER BY id")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for rows.Next() {
		var id uint32
		var name string
		if err := rows.Scan(&id, &name); err != nil {
			t.Fatal(err)
		}
		got = append(got, fmt.Sprintf("%d=%s", id, name))
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if strings.Join(got, " ") != "1=x 2=y 3=z" {
		t.Fatalf("read back %v, want 1=x 2=y 3=z", got)
	}
	if code := clickhouseCode(inSession("go-tmp-b").Exec(ctx, "SELECT * FROM go_tmp")); code != 60 {
		t.Fatalf("another session reads the temporary table: code %d, want 60", code)
	}
}
