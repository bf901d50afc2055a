package audit

import (
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/segmentio/encoding/json"

	"github.com/sora3web/telemetry/bus"
)

// benchRecord is a record as ingest makes one for a request of 50 events.
func benchRecord() Record {
	return Record{ID: uuid.NewString(), Source: "web", Window: MinuteOf(time.Now()),
		Counts: []Count{{Stage: Accepted, Reason: Published, N: 50}}}
}

// BenchmarkDecodeRows measures what the consumer does with each ingest
// audit record it reads: Decode and Rows.
// Run: go test ./internal/audit -run '^$' -bench '^BenchmarkDecodeRows$' -benchmem
func BenchmarkDecodeRows(b *testing.B) {
	m, err := benchRecord().Message()
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		r, err := Decode(m)
		if err != nil {
			b.Fatal(err)
		}
		if len(r.Rows()) != 1 {
			b.Fatal("want one row")
		}
	}
}

// TestDecodeCanonicalAgreesWithUnmarshal: every message, in the form
// Message writes or another a client of the bus may write (spaces, fields
// in another order, escapes, unknown fields), decodes to what
// json.Unmarshal makes of it, or fails where Unmarshal fails; the forms
// Message writes take decodeCanonical's path (so that path is tested, not
// only the fallback).
func TestDecodeCanonicalAgreesWithUnmarshal(t *testing.T) {
	const id = "0f8fad5b-d9cb-469f-a165-70867728950e"
	window := time.Date(2026, 12, 5, 19, 1, 0, 0, time.UTC)
	written := func(r Record) string {
		m, err := r.Message()
		if err != nil {
			t.Fatal(err)
		}
		return string(m.Value)
	}
	one := []Count{{Stage: Accepted, Reason: Published, N: 50}}
	cases := []struct {
		name      string
		value     string
		canonical bool // Message's form: decodeCanonical decodes it
	}{
		{"as ingest writes one", written(Record{ID: id, Source: "web", Window: window, Counts: one}), true},
		{"several counts, one without a reason", written(Record{ID: id, Source: "web", Window: window, Counts: []Count{
			{Stage: Accepted, Reason: Spooled, N: 3}, {Stage: Dropped, Reason: "under_13", N: 1}, {Stage: Refused, N: 18446744073709551615}}}), true},
		{"a source in UTF-8", written(Record{ID: id, Source: "página-ü", Window: window, Counts: one}), true},
		{"a window with nanoseconds", written(Record{ID: id, Source: "web", Window: window.Add(123456789), Counts: one}), true},
		{"a source with a quote and a backslash (escaped)", written(Record{ID: id, Source: `a"b\c`, Window: window, Counts: one}), false},
		{"a source with HTML characters (escaped)", written(Record{ID: id, Source: "<a&b>", Window: window, Counts: one}), false},
		{"no counts", written(Record{ID: id, Source: "web", Window: window}), false},
		{"spaces", `{ "audit_id": "` + id + `", "source": "web", "window": "2026-12-05T19:01:00Z", "counts": [ {"stage": "accepted", "n": 5} ] }`, false},
		{"fields in another order", `{"source":"web","audit_id":"` + id + `","counts":[{"n":5,"stage":"accepted"}],"window":"2026-12-05T19:01:00Z"}`, false},
		{"an unknown field", `{"audit_id":"` + id + `","source":"web","window":"2026-12-05T19:01:00Z","counts":[{"stage":"accepted","n":5}],"v":2}`, false},
		{"an empty reason", `{"audit_id":"` + id + `","source":"web","window":"2026-12-05T19:01:00Z","counts":[{"stage":"accepted","reason":"","n":5}]}`, false},
		{"a window with an offset", `{"audit_id":"` + id + `","source":"web","window":"2026-12-05T20:01:00+01:00","counts":[{"stage":"accepted","n":5}]}`, true},
		{"a count with a leading zero (not JSON)", `{"audit_id":"` + id + `","source":"web","window":"2026-12-05T19:01:00Z","counts":[{"stage":"accepted","n":05}]}`, false},
		{"a count past uint64", `{"audit_id":"` + id + `","source":"web","window":"2026-12-05T19:01:00Z","counts":[{"stage":"accepted","n":18446744073709551616}]}`, false},
		{"a window that is not RFC 3339", `{"audit_id":"` + id + `","source":"web","window":"2026-12-05 19:01:00","counts":[{"stage":"accepted","n":5}]}`, false},
		{"a source with invalid UTF-8", "{\"audit_id\":\"" + id + "\",\"source\":\"w\xffb\",\"window\":\"2026-12-05T19:01:00Z\",\"counts\":[{\"stage\":\"accepted\",\"n\":5}]}", false},
		{"truncated", `{"audit_id":"` + id + `","source":"web","window":"2026-12-05T19:01:00Z","counts":[{"stage":"accepted","n":5}`, false},
		{"trailing bytes", `{"audit_id":"` + id + `","source":"web","window":"2026-12-05T19:01:00Z","counts":[{"stage":"accepted","n":5}]}x`, false},
		{"not a UUID", `{"audit_id":"r1","source":"web","window":"2026-12-05T19:01:00Z","counts":[{"stage":"accepted","n":5}]}`, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if _, ok := decodeCanonical([]byte(tc.value)); ok != tc.canonical {
				t.Errorf("decodeCanonical took it: %v, want %v", ok, tc.canonical)
			}
			var want Record
			wantErr := json.Unmarshal([]byte(tc.value), &want)
			got, err := Decode(bus.Message{Value: []byte(tc.value)})
			switch {
			case wantErr != nil && err == nil:
				t.Fatalf("Decode took %q, which json.Unmarshal refuses: %v", tc.value, wantErr)
			case wantErr != nil:
				if !errors.Is(err, ErrBadRecord) {
					t.Fatalf("Decode's error %v is not ErrBadRecord", err)
				}
			case err != nil:
				if _, uerr := uuid.Parse(want.ID); uerr == nil && !want.Window.IsZero() {
					t.Fatalf("Decode refused %q: %v", tc.value, err)
				}
			default:
				if got.ID != want.ID || got.Source != want.Source || !got.Window.Equal(want.Window) || got.Window.Location().String() != want.Window.Location().String() || !reflect.DeepEqual(got.Counts, want.Counts) {
					t.Fatalf("Decode made %+v, json.Unmarshal %+v", got, want)
				}
			}
		})
	}
}
