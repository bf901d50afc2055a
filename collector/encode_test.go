package collector

import (
	"bytes"
	"math"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"

	fastjson "github.com/segmentio/encoding/json"

	"github.com/sora3web/telemetry/schema"
)

// encodeStrings are values that exercise every branch of string escaping:
// HTML characters, quotes, control bytes, DEL, U+2028/9, multi-byte and
// invalid UTF-8, and lengths on both sides of the 8-byte fast path.
var encodeStrings = []string{
	"", "a", "1234567", "12345678", "https://app.example.com/create", "<b>&amp;</b>", `q"uote`, `back\slash`,
	"tab\tnl\nret\rbs\bff\f", "ctrl\x00\x01\x1f", "del\x7f", "line\u2028para\u2029", "naïve café 🦊",
	"bad\xffutf8", "\xc3", "trunc\xe2\x80", "\xed\xa0\x80 surrogate", "long " + string(make([]byte, 40)),
}

// randomFill sets every field of v (a pointer) to a random value, failing
// on a kind it does not know, so a field added to the types is covered.
func randomFill(t *testing.T, r *rand.Rand, v reflect.Value) {
	t.Helper()
	switch v.Type() {
	case reflect.TypeFor[time.Time]():
		var tm time.Time
		if r.IntN(8) != 0 {
			zones := []*time.Location{time.UTC, time.FixedZone("", 3600), time.FixedZone("", -1800), time.FixedZone("X", 20700)}
			tm = time.Unix(r.Int64N(5e9)-1e9, r.Int64N(1e9)*int64(r.IntN(2))).In(zones[r.IntN(len(zones))])
			if r.IntN(20) == 0 {
				tm = tm.AddDate(9000, 0, 0) // a year past 9999
			}
		}
		v.Set(reflect.ValueOf(tm))
		return
	}
	switch v.Kind() {
	case reflect.Struct:
		for i := range v.NumField() {
			randomFill(t, r, v.Field(i))
		}
	case reflect.String:
		v.SetString(encodeStrings[r.IntN(len(encodeStrings))])
	case reflect.Int, reflect.Int64:
		v.SetInt([]int64{0, 0, 1, -1, 42, 4096, math.MaxInt64, math.MinInt64}[r.IntN(8)])
	case reflect.Float64:
		v.SetFloat([]float64{0, 0, 1, 8, 20, 1.5, -2.25, 1e-7, 1.5e-9, 1e21, 123456789.125, 1e20, math.SmallestNonzeroFloat64, -0.000001}[r.IntN(14)])
	case reflect.Bool:
		v.SetBool(r.IntN(2) == 0)
	case reflect.Pointer:
		if r.IntN(3) == 0 {
			v.SetZero()
			return
		}
		p := reflect.New(v.Type().Elem())
		randomFill(t, r, p.Elem())
		v.Set(p)
	default:
		t.Fatalf("randomFill: no generator for %s (%s): extend it and appendEnriched", v.Type(), v.Kind())
	}
}

// TestAppendEnrichedMatchesMarshal holds the hand-written encoder to the
// bytes fastjson.Marshal writes, for random events covering every field.
func TestAppendEnrichedMatchesMarshal(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 11))
	buf := []byte("prefix")
	for i := range 20000 {
		var e schema.Enriched
		randomFill(t, r, reflect.ValueOf(&e).Elem())
		want, err := fastjson.Marshal(&e)
		if err != nil {
			t.Fatal(err)
		}
		got, err := appendEnriched(buf[:6], &e)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got[6:], want) || string(got[:6]) != "prefix" {
			t.Fatalf("case %d:\n got %s\nwant %s", i, got[6:], want)
		}
		buf = got
	}
}

// TestLayoutParserReadsAppendEnriched: what ingest publishes is read by
// the consumer's layout parser (schema.ParseLayout), not the generic
// decoder, into what fastjson.Parse makes of it, for random events
// covering every field. A field added to the types and the encoder and
// not to the parser fails here.
func TestLayoutParserReadsAppendEnriched(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 5))
	for i := range 20000 {
		var e schema.Enriched
		randomFill(t, r, reflect.ValueOf(&e).Elem())
		b, err := appendEnriched(nil, &e)
		if err != nil {
			t.Fatal(err)
		}
		var got, want schema.Enriched
		read := schema.ParseLayout(b, &got)
		if _, err := fastjson.Parse(b, &want, fastjson.ZeroCopy); err != nil {
			if read {
				t.Fatalf("case %d: read by the layout parser, refused by fastjson.Parse (%v): %s", i, err, b)
			}
			continue // a year past 9999 is encoded and never decoded
		}
		if !read {
			t.Fatalf("case %d: not read by the layout parser: %s", i, b)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("case %d: %s\nlayout parser %+v\nfastjson.Parse %+v", i, b, got, want)
		}
	}
}

// TestAppendEnrichedReportsUnencodableLikeMarshal: a non-finite duration
// fails with the error fastjson.Marshal gives, leaving dst unchanged.
func TestAppendEnrichedReportsUnencodableLikeMarshal(t *testing.T) {
	for _, f := range []float64{math.NaN(), math.Inf(1), math.Inf(-1)} {
		e := schema.Enriched{Event: schema.Event{Properties: schema.Properties{DurationS: f}}}
		_, want := fastjson.Marshal(&e)
		got, err := appendEnriched([]byte("x"), &e)
		if err == nil || want == nil || err.Error() != want.Error() || string(got) != "x" {
			t.Errorf("%v: got (%q, %v), want error %v", f, got, err, want)
		}
	}
}

// FuzzAppendEnriched puts arbitrary strings and numbers into an event and
// compares the encoder with fastjson.Marshal.
func FuzzAppendEnriched(f *testing.F) {
	for _, s := range encodeStrings {
		f.Add(s, s, int64(1), 1.5)
	}
	f.Fuzz(func(t *testing.T, s1, s2 string, n int64, d float64) {
		if math.IsNaN(d) || math.IsInf(d, 0) {
			return
		}
		tr := true
		e := schema.Enriched{
			Event: schema.Event{EventID: s1, Type: s2, UserID: s1, Plan: s2, SchemaVersion: int(n), Consent: schema.Consent{Analytics: &tr},
				OccurredAt: time.Unix(n%1e10, n%1e9).UTC(),
				Context:    schema.Context{PageURL: s2, UserAgent: s1, Screen: schema.Screen{Width: int(n)}},
				Properties: schema.Properties{Prompt: s1, ErrorStack: s2, DurationS: d, LatencyMS: n}},
			Source: s2, IP: s1, Device: schema.Device{Class: s2, OS: s1},
		}
		want, err := fastjson.Marshal(&e)
		if err != nil {
			t.Skip(err)
		}
		got, err := appendEnriched(nil, &e)
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("got %s (%v)\nwant %s", got, err, want)
		}
	})
}
