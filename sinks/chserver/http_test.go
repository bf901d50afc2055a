package chserver_test

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/ch-go/compress"
	"github.com/klauspost/compress/zstd"

	"github.com/sora3web/telemetry/internal/testenv"
)

// call sends one request to the test server and returns status, headers
// and the (raw) body.
func call(t *testing.T, method, query string, params url.Values, body []byte, header http.Header) (int, http.Header, []byte) {
	t.Helper()
	if params == nil {
		params = url.Values{}
	}
	if query != "" {
		params.Set("query", query)
	}
	u := "http://" + testenv.ClickHouse(t) + "/?" + params.Encode()
	req, err := http.NewRequest(method, u, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := http.DefaultTransport.RoundTrip(req) // no transparent gzip
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, b
}

func mustOK(t *testing.T, method, query string, params url.Values, body []byte) []byte {
	t.Helper()
	st, _, b := call(t, method, query, params, body, nil)
	if st != 200 {
		t.Fatalf("%s: status %d: %s", query, st, b)
	}
	return b
}

func TestPingAndRoot(t *testing.T) {
	addr := testenv.ClickHouse(t)
	for _, path := range []string{"/ping", "/"} {
		resp, err := http.Get("http://" + addr + path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(b) != "Ok.\n" {
			t.Errorf("GET %s = %d %q", path, resp.StatusCode, b)
		}
	}
	resp, err := http.Get("http://" + addr + "/nope")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 404 {
		t.Errorf("GET /nope = %d", resp.StatusCode)
	}
}

func TestQueryPlacesAndFormats(t *testing.T) {
	for _, tc := range []struct {
		name, method, query string
		params              url.Values
		body                string
		want, format        string
	}{
		{"get param", "GET", "SELECT 1 + 1", nil, "", "2\n", "TabSeparated"},
		{"post body", "POST", "", nil, "SELECT 'a\tb'", "a\\tb\n", "TabSeparated"},
		{"param plus body", "POST", "SELECT 1", nil, ", 2", "1\t2\n", "TabSeparated"},
		{"default_format", "GET", "SELECT 1 AS x", url.Values{"default_format": {"JSONEachRow"}}, "", "{\"x\":1}\n", "JSONEachRow"},
		{"format clause wins", "GET", "SELECT 1 AS x FORMAT CSVWithNames", url.Values{"default_format": {"JSONEachRow"}}, "", "\"x\"\n1\n", "CSVWithNames"},
		{"database", "GET", "SELECT currentDatabase()", url.Values{"database": {"system"}}, "", "system\n", "TabSeparated"},
		{"params", "GET", "SELECT {a:UInt8} * 2, {s:String}", url.Values{"param_a": {"21"}, "param_s": {"x'; DROP"}}, "", "42\tx\\'; DROP\n", "TabSeparated"},
		{"setting applied", "GET", "SELECT getSetting('max_result_rows')", url.Values{"max_result_rows": {"12345"}}, "", "12345\n", "TabSeparated"},
		{"setting not leaked", "GET", "SELECT getSetting('max_result_rows')", nil, "", "0\n", "TabSeparated"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st, h, b := call(t, tc.method, tc.query, tc.params, []byte(tc.body), nil)
			if st != 200 || string(b) != tc.want {
				t.Fatalf("got %d %q, want 200 %q", st, b, tc.want)
			}
			if h.Get("X-ClickHouse-Format") != tc.format {
				t.Errorf("X-ClickHouse-Format = %q, want %q", h.Get("X-ClickHouse-Format"), tc.format)
			}
			for _, k := range []string{"X-ClickHouse-Query-Id", "X-ClickHouse-Server-Display-Name", "X-ClickHouse-Timezone", "X-ClickHouse-Summary"} {
				if h.Get(k) == "" {
					t.Errorf("missing header %s", k)
				}
			}
		})
	}
}

func TestErrors(t *testing.T) {
	for _, tc := range []struct {
		name   string
		query  string
		params url.Values
		header http.Header
		status int
		code   string
		body   string
	}{
		{"unknown table", "SELECT * FROM no_such_table", nil, nil, 404, "60", "Code: 60. DB::Exception: "},
		{"syntax", "SELEC 1", nil, nil, 400, "62", "(SYNTAX_ERROR)"},
		{"unknown setting param", "SELECT 1", url.Values{"no_such_setting": {"1"}}, nil, 404, "115", "(UNKNOWN_SETTING)"},
		{"bad param value", "SELECT {a:UInt8}", url.Values{"param_a": {"x"}}, nil, 0, "", "DB::Exception"},
		{"wrong password param", "SELECT 1", url.Values{"user": {"default"}, "password": {"bad"}}, nil, 401, "516", "(AUTHENTICATION_FAILED)"},
		{"wrong password header", "SELECT 1", nil, http.Header{"X-Clickhouse-User": {"default"}, "X-Clickhouse-Key": {"bad"}}, 401, "516", "Authentication failed"},
		{"wrong user basic", "SELECT 1", nil, http.Header{"Authorization": {"Basic " + "bm9ib2R5Og=="}}, 401, "516", "nobody: Authentication failed"},
		{"empty", "", nil, nil, 400, "62", "Empty query"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			method := "POST"
			st, h, b := call(t, method, tc.query, tc.params, nil, tc.header)
			if tc.status != 0 && st != tc.status || st == 200 {
				t.Errorf("status %d, want %d", st, tc.status)
			}
			if tc.code != "" && h.Get("X-ClickHouse-Exception-Code") != tc.code {
				t.Errorf("X-ClickHouse-Exception-Code = %q, want %q", h.Get("X-ClickHouse-Exception-Code"), tc.code)
			}
			if !strings.Contains(string(b), tc.body) || !strings.HasPrefix(string(b), "Code: ") {
				t.Errorf("body %q lacks %q", b, tc.body)
			}
		})
	}
	// Correct credentials in each form work.
	for name, h := range map[string]http.Header{
		"headers": {"X-Clickhouse-User": {"default"}, "X-Clickhouse-Key": {""}},
		"basic":   {"Authorization": {"Basic ZGVmYXVsdDo="}},
	} {
		if st, _, b := call(t, "GET", "SELECT 1", nil, nil, h); st != 200 {
			t.Errorf("%s auth: %d %s", name, st, b)
		}
	}
}

func TestInsertFormatsRoundTrip(t *testing.T) {
	mustOK(t, "POST", "CREATE TABLE fmt (id UInt32, s String, f Float64) ENGINE = MergeTree ORDER BY id", nil, nil)
	for _, tc := range []struct {
		format string
		data   string
	}{
		{"TSV", "1\ta\\tb\t1.5\n"},
		{"CSV", "2,\"c,d\",2.5\n"},
		{"JSONEachRow", `{"id":3,"s":"e\"f","f":3.5}` + "\n"},
		{"RowBinary", "\x04\x00\x00\x00\x02g\x00" + string(binary.LittleEndian.AppendUint64(nil, 0x4012000000000000))},
		{"Values", "(5, 'h', 5.5)"},
	} {
		st, h, b := call(t, "POST", "INSERT INTO fmt FORMAT "+tc.format, nil, []byte(tc.data), nil)
		if st != 200 {
			t.Fatalf("insert %s: %d %s", tc.format, st, b)
		}
		if !strings.Contains(h.Get("X-ClickHouse-Summary"), `"written_rows":"1"`) {
			t.Errorf("insert %s summary %s", tc.format, h.Get("X-ClickHouse-Summary"))
		}
	}
	// Statement and data both in the body.
	mustOK(t, "POST", "", nil, []byte("INSERT INTO fmt FORMAT TSV\n6\tbody\t6.5\n"))
	got := mustOK(t, "GET", "SELECT * FROM fmt ORDER BY id FORMAT TSV", nil, nil)
	want := "1\ta\\tb\t1.5\n2\tc,d\t2.5\n3\te\"f\t3.5\n4\tg\\0\t4.5\n5\th\t5.5\n6\tbody\t6.5\n"
	if string(got) != want {
		t.Fatalf("table:\n%q\nwant\n%q", got, want)
	}
	// RowBinary out and back in is byte-identical.
	rb := mustOK(t, "GET", "SELECT * FROM fmt ORDER BY id", url.Values{"default_format": {"RowBinary"}}, nil)
	mustOK(t, "POST", "CREATE TABLE fmt2 AS fmt", nil, nil)
	mustOK(t, "POST", "INSERT INTO fmt2 FORMAT RowBinary", nil, rb)
	if rb2 := mustOK(t, "GET", "SELECT * FROM fmt2 ORDER BY id FORMAT RowBinary", nil, nil); !bytes.Equal(rb, rb2) {
		t.Fatalf("RowBinary round trip differs")
	}
}

// An insert larger than max_query_size (256 KiB) goes through a spool file.
func TestLargeNativeInsert(t *testing.T) {
	mustOK(t, "POST", "CREATE TABLE big (n UInt64, s String) ENGINE = MergeTree ORDER BY n", nil, nil)
	native := mustOK(t, "GET", "SELECT number AS n, toString(number) AS s FROM numbers(300000) FORMAT Native", nil, nil)
	if len(native) < 4<<20 {
		t.Fatalf("Native payload only %d bytes", len(native))
	}
	mustOK(t, "POST", "INSERT INTO big (n, s) FORMAT Native", nil, native)
	if got := mustOK(t, "GET", "SELECT count(), sum(n), countIf(s = toString(n)) FROM big", nil, nil); string(got) != "300000\t44999850000\t300000\n" {
		t.Fatalf("got %q", got)
	}
	// Statement and large binary data together in the body.
	mustOK(t, "POST", "", nil, append([]byte("INSERT INTO big FORMAT Native\n"), native...))
	if got := mustOK(t, "GET", "SELECT count(), uniqExact(n) FROM big", nil, nil); string(got) != "600000\t300000\n" {
		t.Fatalf("after body-only insert got %q", got)
	}
}

func TestInsertDeduplicationToken(t *testing.T) {
	mustOK(t, "POST", "CREATE TABLE dedup (n UInt32) ENGINE = MergeTree ORDER BY n SETTINGS non_replicated_deduplication_window = 100", nil, nil)
	for i, token := range []string{"batch-1", "batch-1", "batch-2"} {
		p := url.Values{"insert_deduplication_token": {token}}
		mustOK(t, "POST", "INSERT INTO dedup FORMAT TSV", p, []byte(fmt.Sprintf("%d\n", i)))
	}
	if got := mustOK(t, "GET", "SELECT count() FROM dedup", nil, nil); string(got) != "2\n" {
		t.Fatalf("rows after duplicate token: %q, want 2", got)
	}
}

func TestCompression(t *testing.T) {
	mustOK(t, "POST", "CREATE TABLE comp (s String) ENGINE = MergeTree ORDER BY s", nil, nil)
	gz := func(b []byte) []byte {
		var buf bytes.Buffer
		w := gzip.NewWriter(&buf)
		w.Write(b)
		w.Close()
		return buf.Bytes()
	}
	zs := func(b []byte) []byte {
		w, _ := zstd.NewWriter(nil)
		return w.EncodeAll(b, nil)
	}
	// Request bodies in each Content-Encoding.
	for enc, f := range map[string]func([]byte) []byte{"gzip": gz, "zstd": zs} {
		st, _, b := call(t, "POST", "INSERT INTO comp FORMAT TSV", nil, f([]byte(enc+"\n")), http.Header{"Content-Encoding": {enc}})
		if st != 200 {
			t.Fatalf("%s insert: %d %s", enc, st, b)
		}
	}
	// ClickHouse's own framing (decompress=1).
	w := compress.NewWriter(compress.LevelZero, compress.ZSTD)
	w.Compress([]byte("native\n"))
	if st, _, b := call(t, "POST", "INSERT INTO comp FORMAT TSV", url.Values{"decompress": {"1"}}, w.Data, nil); st != 200 {
		t.Fatalf("decompress=1 insert: %d %s", st, b)
	}
	want := "gzip\nnative\nzstd\n"
	q := "SELECT s FROM comp ORDER BY s"
	if got := mustOK(t, "GET", q, nil, nil); string(got) != want {
		t.Fatalf("got %q", got)
	}
	// Responses: Accept-Encoding is honoured only with enable_http_compression=1.
	on := url.Values{"enable_http_compression": {"1"}}
	for _, enc := range []string{"gzip", "zstd"} {
		_, h, b := call(t, "GET", q, nil, nil, http.Header{"Accept-Encoding": {enc}})
		if h.Get("Content-Encoding") != "" || string(b) != want {
			t.Errorf("%s without enable_http_compression: %q %q", enc, h.Get("Content-Encoding"), b)
		}
		_, h, b = call(t, "GET", q, on, nil, http.Header{"Accept-Encoding": {enc}})
		if h.Get("Content-Encoding") != enc {
			t.Fatalf("Content-Encoding = %q, want %s", h.Get("Content-Encoding"), enc)
		}
		var plain []byte
		if enc == "gzip" {
			r, err := gzip.NewReader(bytes.NewReader(b))
			if err != nil {
				t.Fatal(err)
			}
			plain, _ = io.ReadAll(r)
		} else {
			r, _ := zstd.NewReader(nil)
			plain, _ = r.DecodeAll(b, nil)
		}
		if string(plain) != want {
			t.Errorf("%s body decodes to %q", enc, plain)
		}
	}
	// compress=1 frames the response.
	_, _, b := call(t, "GET", q, url.Values{"compress": {"1"}}, nil, nil)
	plain, err := io.ReadAll(io.LimitReader(compress.NewReader(bytes.NewReader(b)), int64(len(want))))
	if err != nil || string(plain) != want {
		t.Fatalf("compress=1: %q %v", plain, err)
	}
}

func TestSessionlessAndReadonlyGET(t *testing.T) {
	// SET and USE do not leak into later requests.
	mustOK(t, "POST", "SET max_result_rows = 77", nil, nil)
	mustOK(t, "POST", "USE system", nil, nil)
	if got := mustOK(t, "GET", "SELECT getSetting('max_result_rows'), currentDatabase()", nil, nil); string(got) != "0\tdefault\n" {
		t.Fatalf("session state leaked: %q", got)
	}
	// GET is read-only, as in ClickHouse.
	st, h, b := call(t, "GET", "CREATE TABLE via_get (a UInt8) ENGINE = Memory", nil, nil, nil)
	if st == 200 || h.Get("X-ClickHouse-Exception-Code") != "164" {
		t.Fatalf("GET CREATE: %d %s", st, b)
	}
	st, _, b = call(t, "GET", "INSERT INTO fmt FORMAT TSV", nil, nil, nil)
	if st == 200 || !strings.Contains(string(b), "READONLY") {
		t.Fatalf("GET INSERT: %d %s", st, b)
	}
}

// TestEveryEngineSettingAndSessions: any setting the engine knows is
// applied for the request (not only a fixed list); a session_id keeps the
// settings its SET statements chose, for its own requests only, until
// session_timeout; session_check finds no expired session; readonly=1
// refuses writes without touching the shared engine session.
func TestEveryEngineSettingAndSessions(t *testing.T) {
	// A setting no fixed list had: clickhouse-connect sends it on connect.
	got := mustOK(t, "POST", "SELECT getSetting('cast_string_to_dynamic_use_inference'), getSetting('max_result_rows')",
		url.Values{"cast_string_to_dynamic_use_inference": {"1"}, "max_result_rows": {"5"}}, nil)
	if string(got) != "true\t5\n" {
		t.Fatalf("settings applied: %q", got)
	}
	if got := mustOK(t, "POST", "SELECT getSetting('max_result_rows')", nil, nil); string(got) != "0\n" {
		t.Fatalf("a request's setting leaked: %q", got)
	}

	session := url.Values{"session_id": {"s-1"}, "session_timeout": {"1"}}
	mustOK(t, "POST", "SET max_result_rows = 77, output_format_json_quote_64bit_integers = 'false'", session, nil)
	if got := mustOK(t, "POST", "SELECT getSetting('max_result_rows')", session, nil); string(got) != "77\n" {
		t.Fatalf("the session's SET is not kept: %q", got)
	}
	withURL := url.Values{"session_id": {"s-1"}, "max_result_rows": {"8"}}
	if got := mustOK(t, "POST", "SELECT getSetting('max_result_rows')", withURL, nil); string(got) != "8\n" {
		t.Fatalf("the request's own setting does not win over the session's: %q", got)
	}
	if got := mustOK(t, "POST", "SELECT getSetting('max_result_rows')", url.Values{"session_id": {"s-2"}}, nil); string(got) != "0\n" {
		t.Fatalf("another session sees s-1's settings: %q", got)
	}
	st, h, b := call(t, "POST", "SET no_such_setting = 1", session, nil, nil)
	if st == 200 || h.Get("X-ClickHouse-Exception-Code") != "115" {
		t.Fatalf("SET of an unknown setting: %d %s", st, b)
	}
	time.Sleep(1100 * time.Millisecond) // past session_timeout=1
	st, h, b = call(t, "POST", "SELECT 1", url.Values{"session_id": {"s-1"}, "session_check": {"1"}}, nil, nil)
	if st == 200 || h.Get("X-ClickHouse-Exception-Code") != "372" {
		t.Fatalf("an expired session was found: %d %s", st, b)
	}
	st, h, b = call(t, "POST", "SELECT 1", url.Values{"session_id": {"s-3"}, "session_timeout": {"7200"}}, nil, nil)
	if st == 200 || h.Get("X-ClickHouse-Exception-Code") != "36" {
		t.Fatalf("session_timeout over the maximum: %d %s", st, b)
	}

	st, h, b = call(t, "POST", "CREATE TABLE via_readonly (a UInt8) ENGINE = Memory", url.Values{"readonly": {"1"}}, nil, nil)
	if st == 200 || h.Get("X-ClickHouse-Exception-Code") != "164" {
		t.Fatalf("readonly=1 CREATE: %d %s", st, b)
	}
	if got := mustOK(t, "POST", "SELECT getSetting('readonly')", nil, nil); string(got) != "0\n" {
		t.Fatalf("readonly reached the shared engine session: %q", got)
	}
}
