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
