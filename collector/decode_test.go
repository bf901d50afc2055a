package collector

import (
	"bytes"
	"io"
	"testing"
	"testing/iotest"
)

// TestReadAllReadsWhateverTheSizeHintSays: the hint only sizes the first
// allocation; a body shorter or longer than announced is read whole, and
// errors other than EOF come through.
func TestReadAllReadsWhateverTheSizeHintSays(t *testing.T) {
	body := bytes.Repeat([]byte("0123456789"), 1000)
	for _, hint := range []int{0, 1, 512, len(body) - 1, len(body), len(body) + 1, 3 * len(body)} {
		for name, r := range map[string]io.Reader{
			"whole":    bytes.NewReader(body),
			"one byte": iotest.OneByteReader(bytes.NewReader(body)),
			"data+EOF": iotest.DataErrReader(bytes.NewReader(body)),
		} {
			got, err := readAll(r, hint)
			if err != nil || !bytes.Equal(got, body) {
				t.Errorf("hint %d, %s: got %d bytes, %v", hint, name, len(got), err)
			}
		}
		if _, err := readAll(iotest.TimeoutReader(bytes.NewReader(body)), hint); err != iotest.ErrTimeout {
			t.Errorf("hint %d: error %v, want %v", hint, err, iotest.ErrTimeout)
		}
	}
	if got, _ := readAll(bytes.NewReader(body), len(body)); cap(got) != len(body)+1 {
		t.Errorf("a body of the announced size grew the buffer to %d", cap(got))
	}
}

// strReference is how scanner.str found the end of a string before it
// jumped from quote to quote: byte by byte, a backslash skipping the next
// byte.
func strReference(b []byte, i int) (end int, ok bool) {
	for j := i + 1; j < len(b); j++ {
		switch b[j] {
		case '\\':
			j++
		case '"':
			return j + 1, true
		}
	}
	return len(b), false
}

// FuzzScannerStr holds scanner.str to the byte-by-byte reference.
func FuzzScannerStr(f *testing.F) {
	for _, s := range []string{`"abc"`, `"a\"b"`, `"a\\"b"`, `"a\\\"b"`, `"\\\\"`, `"\`, `"abc`, `""`, `"\x\\"`, `"é\"ü"x"`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) == 0 || b[0] != '"' {
			return
		}
		sc := scanner{b: b}
		raw, err := sc.str()
		end, ok := strReference(b, 0)
		if (err == nil) != ok || sc.i != end || (ok && !bytes.Equal(raw, b[1:end-1])) {
			t.Fatalf("%q: got end %d, %v; reference end %d, %v", b, sc.i, err, end, ok)
		}
	})
}
