package privacy

import (
	"errors"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

// checkSubject is what every decoded subject must satisfy.
func checkSubject(t *testing.T, s Subject, err error) {
	t.Helper()
	if err != nil {
		if !errors.Is(err, ErrBadSubject) {
			t.Fatalf("error not wrapping ErrBadSubject: %v", err)
		}
		if s != (Subject{}) {
			t.Fatalf("a subject with an error: %+v", s)
		}
		return
	}
	if s.Type != SubjectUser && s.Type != SubjectAnonymous {
		t.Fatalf("subject type %q", s.Type)
	}
	if s.ID == "" || len(s.ID) > maxSubjectLen || !utf8.ValidString(s.ID) || strings.IndexFunc(s.ID, unicode.IsControl) >= 0 {
		t.Fatalf("accepted subject id %q", s.ID)
	}
	if h := s.Hash(); len(h) != 16 || strings.Contains(h, s.ID) && len(s.ID) > 3 {
		t.Fatalf("hash %q of %q", h, s.ID)
	}
}

// FuzzDecodeBody: the POST body decoder of the admin API never panics and
// accepts only one well-formed subject (no control characters: nothing it
// lets through can split a header or forge a log line). Seeds:
// testdata/fuzz/FuzzDecodeBody.
func FuzzDecodeBody(f *testing.F) {
	f.Add("application/json", []byte(`{"user_id":"u1"}`))
	f.Add("", []byte(`{"anonymous_id":"a\r\nX-Injected: 1"}`))
	f.Add("application/json; charset=utf-8", []byte(`{"user_id":"u","anonymous_id":"a"}`))
	f.Fuzz(func(t *testing.T, contentType string, body []byte) {
		s, err := DecodeBody(contentType, strings.NewReader(string(body)))
		checkSubject(t, s, err)
	})
}

// FuzzDecodeQuery: the GET query decoder of the admin API, likewise.
// Seeds: testdata/fuzz/FuzzDecodeQuery.
func FuzzDecodeQuery(f *testing.F) {
	f.Add("user_id=u1")
	f.Add("anonymous_id=a%0d%0aSet-Cookie:%20x")
	f.Add("user_id=a&user_id=b&x=%zz")
	f.Fuzz(func(t *testing.T, rawQuery string) {
		s, err := DecodeQuery(rawQuery)
		checkSubject(t, s, err)
	})
}
