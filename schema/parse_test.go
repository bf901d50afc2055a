package schema

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	fastjson "github.com/segmentio/encoding/json"
)

// enrichedSeeds are the enriched examples of testdata, as written there
// (with spaces: the generic decoder's) and compact (ingest's layout).
func enrichedSeeds(t testing.TB) [][]byte {
	paths, err := filepath.Glob("testdata/enriched/*.json")
	if err != nil || len(paths) == 0 {
		t.Fatalf("no testdata/enriched: %v", err)
	}
	var out [][]byte
	for _, path := range paths {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		var c bytes.Buffer
		if err := json.Compact(&c, b); err != nil {
			t.Fatal(err)
		}
		out = append(out, b, c.Bytes())
	}
	return out
}

// parseLayoutCases are inputs on both sides of the layout parser's rules.
var parseLayoutCases = []struct {
	name   string
	json   string
	layout bool // read by the layout parser
}{
	{"minimal", `{"event_id":"x","type":"t","plan":"free","consent":{"analytics":true},"context":{"screen":{}},"properties":{},"source":"s","device":{"class":"desktop"}}`, true},
	{"escapes", `{"event_id":"a\"b\\c\/d\n\t\u00e9\u003c\ud83e\udd8a","consent":{"analytics":null}}`, true},
	{"raw utf-8", `{"event_id":"naïve 🦊"}`, true},
	{"numbers", `{"schema_version":-9223372036854775808,"seq":9223372036854775807,"properties":{"duration_s":-1.5e-9,"latency_ms":0}}`, true},
	{"times", `{"occurred_at":"2025-06-14T09:44:14.557Z","sent_at":"2025-06-14T09:44:14+02:00"}`, true},
	{"int too large", `{"seq":9223372036854775808}`, false},
	{"int with fraction", `{"seq":1.0}`, false},
	{"leading zero", `{"seq":01}`, false},
	{"float without digits", `{"properties":{"duration_s":1.}}`, false},
	{"out of order", `{"type":"t","event_id":"x"}`, false},
	{"twice", `{"event_id":"x","event_id":"y"}`, false},
	{"unknown field", `{"event_id":"x","extra":1}`, false},
	{"other case", `{"Event_ID":"x"}`, false},
	{"space", `{"event_id": "x"}`, false},
	{"null string", `{"event_id":null}`, false},
	{"lone surrogate", `{"event_id":"\ud83e"}`, false},
	{"bad escape", `{"event_id":"\x"}`, false},
	{"invalid utf-8", "{\"event_id\":\"\xff\"}", false},
	{"control byte", "{\"event_id\":\"a\x01\"}", false},
	{"trailing bytes", `{"event_id":"x"}x`, false},
	{"trailing comma", `{"event_id":"x",}`, false},
	{"not an object", `[]`, false},
	{"truncated", `{"event_id":"x"`, false},
}

// TestParseEnrichedIsTheGenericDecoder: whichever parser reads an input,
// ParseEnriched makes of it what fastjson.Parse makes, error or value,
// and the layout parser reads what it is meant to read.
func TestParseEnrichedIsTheGenericDecoder(t *testing.T) {
	for _, c := range parseLayoutCases {
		t.Run(c.name, func(t *testing.T) {
			var e Enriched
			if got := ParseLayout([]byte(c.json), &e); got != c.layout {
				t.Errorf("ParseLayout = %v, want %v", got, c.layout)
			}
			sameAsGeneric(t, []byte(c.json))
		})
	}
	for _, b := range enrichedSeeds(t) {
		sameAsGeneric(t, b)
	}
}

// sameAsGeneric fails unless ParseEnriched and fastjson.Parse agree on b,
// and the layout parser reads nothing the generic decoder refuses.
func sameAsGeneric(t *testing.T, b []byte) {
	t.Helper()
	var want, got, layout Enriched
	rest, wantErr := fastjson.Parse(b, &want, fastjson.ZeroCopy)
	if wantErr == nil && len(rest) != 0 {
		wantErr = os.ErrInvalid // any error: ParseEnriched refuses trailing bytes
	}
	gotErr := ParseEnriched(b, &got)
	if (gotErr == nil) != (wantErr == nil) {
		t.Fatalf("%q: ParseEnriched error %v, fastjson.Parse error %v", b, gotErr, wantErr)
	}
	if gotErr == nil && !reflect.DeepEqual(got, want) {
		t.Fatalf("%q:\nParseEnriched %+v\nfastjson.Parse %+v", b, got, want)
	}
	if ParseLayout(b, &layout) && wantErr != nil {
		t.Fatalf("%q: read by the layout parser, refused by fastjson.Parse: %v", b, wantErr)
	}
}

// FuzzParseEnriched holds ParseEnriched to fastjson.Parse on any input.
func FuzzParseEnriched(f *testing.F) {
	for _, c := range parseLayoutCases {
		f.Add([]byte(c.json))
	}
	for _, b := range enrichedSeeds(f) {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) { sameAsGeneric(t, b) })
}

// BenchmarkParseEnriched compares the two parsers on a compact event of
// testdata (ingest's layout).
func BenchmarkParseEnriched(b *testing.B) {
	seeds := enrichedSeeds(b)
	event := seeds[1]
	var e Enriched
	b.Run("layout", func(b *testing.B) {
		b.SetBytes(int64(len(event)))
		for range b.N {
			if err := ParseEnriched(event, &e); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("generic", func(b *testing.B) {
		b.SetBytes(int64(len(event)))
		for range b.N {
			e = Enriched{}
			if _, err := fastjson.Parse(event, &e, fastjson.ZeroCopy); err != nil {
				b.Fatal(err)
			}
		}
	})
}
