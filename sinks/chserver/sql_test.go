package chserver

import "testing"

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
