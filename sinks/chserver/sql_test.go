package chserver

import (
	"errors"
	"testing"
)

func TestSplitInsert(t *testing.T) {
	for _, tc := range []struct {
		sql                    string
		ok                     bool
		head, settings, format string
		data                   string
	}{
		{"INSERT INTO t FORMAT JSONEachRow\n{\"a\":1}", true, "INSERT INTO t", "", "JSONEachRow", `{"a":1}`},
		{"insert into db.t (a, `b c`) format TSV\n\t1\t2\n", true, "insert into db.t (a, `b c`)", "", "TSV", "\t1\t2\n"},
		{"INSERT INTO t FORMAT CSV 1,2", true, "INSERT INTO t", "", "CSV", "1,2"},
		{"INSERT INTO t SETTINGS async_insert=1 FORMAT Native\n\x00\x01", true, "INSERT INTO t", "SETTINGS async_insert=1", "Native", "\x00\x01"},
		{"INSERT INTO t VALUES (1, 'FORMAT x')", true, "INSERT INTO t", "", "Values", " (1, 'FORMAT x')"},
		{"/* c */ INSERT INTO `format` (x) FORMAT RowBinary\r\nZ", true, "/* c */ INSERT INTO `format` (x)", "", "RowBinary", "Z"},
		{"INSERT INTO t SELECT * FROM s FORMAT TSV", false, "", "", "", ""},
		{"INSERT INTO t FROM INFILE 'x' FORMAT TSV", false, "", "", "", ""},
		{"SELECT 1 FORMAT TSV", false, "", "", "", ""},
	} {
		sp, ok := splitInsert(tc.sql)
		if ok != tc.ok {
			t.Errorf("%q: ok=%v", tc.sql, ok)
			continue
		}
		if !ok {
			continue
		}
		if sp.Head != tc.head || sp.Settings != tc.settings || sp.Format != tc.format || tc.sql[sp.DataOffset:] != tc.data {
			t.Errorf("%q: got %+v data %q", tc.sql, sp, tc.sql[sp.DataOffset:])
		}
	}
}

func TestOutputFormat(t *testing.T) {
	for sql, want := range map[string]string{
		"SELECT 1 FORMAT JSONEachRow":                       "JSONEachRow",
		"SELECT 'FORMAT CSV' AS f":                          "",
		"SELECT * FROM (SELECT 1 FORMAT CSV) FORMAT Native": "Native",
		"SELECT 1 -- FORMAT CSV":                            "",
		"INSERT INTO t FORMAT CSV":                          "",
		"SELECT 1":                                          "",
	} {
		if got := outputFormat(sql); got != want {
			t.Errorf("outputFormat(%q) = %q, want %q", sql, got, want)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	for _, c := range []Config{
		{},
		{Listen: "127.0.0.1:8123"},
		{Listen: "nonsense", DataDir: "/tmp/x"},
		{Listen: "127.0.0.1:8123", DataDir: "/tmp/x", User: "a:b"},
	} {
		if err := c.Validate(); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("Validate(%+v) = %v, want ErrInvalidConfig", c, err)
		}
	}
	if err := (Config{Listen: "127.0.0.1:8123", DataDir: "/tmp/x"}).Validate(); err != nil {
		t.Errorf("valid config: %v", err)
	}
	if _, err := New(Config{Listen: "127.0.0.1:0", DataDir: t.TempDir()}, nil); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("New with nil engine: %v", err)
	}
}

func TestStatusForCode(t *testing.T) {
	for code, want := range map[int]int{60: 404, 62: 400, 516: 401, 27: 400, 115: 404, 80: 413, 241: 500, 48: 501} {
		if got := StatusForCode(code, ""); got != want {
			t.Errorf("StatusForCode(%d) = %d, want %d", code, got, want)
		}
	}
}
