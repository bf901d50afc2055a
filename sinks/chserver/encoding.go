package chserver

import (
	"bytes"
	"compress/gzip"
	"compress/zlib"
	"fmt"
	"io"
	"strings"

	"github.com/ClickHouse/ch-go/compress"
	"github.com/andybalholm/brotli"
	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
)

// httpEncodings are the Content-Encoding values accepted on requests and
// produced on responses (with enable_http_compression=1), in preference
// order for Accept-Encoding.
var httpEncodings = []string{"zstd", "gzip", "br", "deflate", "lz4"}

// decodeBody wraps body according to Content-Encoding.
func decodeBody(body io.Reader, encoding string) (io.Reader, func(), error) {
	switch strings.ToLower(strings.TrimSpace(encoding)) {
	case "", "identity":
		return body, func() {}, nil
	case "gzip", "x-gzip":
		r, err := gzip.NewReader(body)
		if err != nil {
			return nil, nil, err
		}
		return r, func() { r.Close() }, nil
	case "deflate":
		r, err := zlib.NewReader(body)
		if err != nil {
			return nil, nil, err
		}
		return r, func() { r.Close() }, nil
	case "zstd":
		r, err := zstd.NewReader(body)
		if err != nil {
			return nil, nil, err
		}
		return r, r.Close, nil
	case "br":
		return brotli.NewReader(body), func() {}, nil
	case "lz4":
		return lz4.NewReader(body), func() {}, nil
	default:
		return nil, nil, fmt.Errorf("unknown Content-Encoding %q (supported: %s)", encoding, strings.Join(httpEncodings, ", "))
	}
}

// chooseEncoding picks the response encoding from Accept-Encoding, or "".
func chooseEncoding(accept string) string {
	offered := map[string]bool{}
	for _, part := range strings.Split(accept, ",") {
		name, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		if strings.Contains(strings.ReplaceAll(params, " ", ""), "q=0") && !strings.Contains(params, "q=0.") {
			continue
		}
		offered[strings.ToLower(strings.TrimSpace(name))] = true
	}
	for _, e := range httpEncodings {
		if offered[e] {
			return e
		}
	}
	if offered["x-gzip"] {
		return "gzip"
	}
	return ""
}

// encodeBody compresses data with a Content-Encoding.
func encodeBody(data []byte, encoding string) ([]byte, error) {
	var buf bytes.Buffer
	var w io.WriteCloser
	switch encoding {
	case "gzip":
		w = gzip.NewWriter(&buf)
	case "deflate":
		w = zlib.NewWriter(&buf)
	case "zstd":
		zw, err := zstd.NewWriter(&buf)
		if err != nil {
			return nil, err
		}
		w = zw
	case "br":
		w = brotli.NewWriter(&buf)
	case "lz4":
		w = lz4.NewWriter(&buf)
	default:
		return data, nil
	}
	if _, err := w.Write(data); err != nil {
		return nil, err
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// nativeFrameSize is the uncompressed size of each compress=1 frame.
const nativeFrameSize = 1 << 20

// nativeCompress frames data in ClickHouse's own compression format (the
// compress=1 response format): checksummed LZ4 or ZSTD blocks.
func nativeCompress(data []byte, method string) ([]byte, error) {
	m := compress.LZ4
	switch strings.ToUpper(method) {
	case "", "LZ4":
	case "ZSTD":
		m = compress.ZSTD
	case "NONE":
		m = compress.None
	default:
		return nil, fmt.Errorf("unsupported network_compression_method %q (LZ4, ZSTD, NONE)", method)
	}
	w := compress.NewWriter(compress.LevelZero, m)
	var out []byte
	for len(data) > 0 {
		n := min(len(data), nativeFrameSize)
		if err := w.Compress(data[:n]); err != nil {
			return nil, err
		}
		out = append(out, w.Data...)
		data = data[n:]
	}
	return out, nil
}
