// Package sdk serves the browser SDK of the telemetry pipeline: the
// minified bundle dist/sdk.js (built from the TypeScript sources in src/
// with `npm run build`, committed so a clean clone builds) embedded in the
// binary, which exposes window.telemetry to the web client.
//
// The collector mounts Handler at GET /v1/sdk.js. The JavaScript sources,
// their unit tests (node --test) and browser tests (headless Chromium
// driven by playwright-core) live beside this file; see README.md.
package sdk

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"net/http"
	"strconv"
	"strings"
)

// Bundle is the minified SDK (dist/sdk.js) as served.
//
//go:embed dist/sdk.js
var Bundle []byte

// CacheControl is the Cache-Control of the bundle: browsers and CDNs may
// reuse it for five minutes, then revalidate with the ETag.
const CacheControl = "public, max-age=300"

// bundle is the precomputed representation of Bundle.
type bundle struct {
	raw, gz []byte
	etag    string
}

// newBundle compresses js once and derives its strong ETag from its
// SHA-256.
func newBundle(js []byte) *bundle {
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	_, _ = zw.Write(js)
	_ = zw.Close()
	sum := sha256.Sum256(js)
	return &bundle{raw: js, gz: buf.Bytes(), etag: `"` + hex.EncodeToString(sum[:16]) + `"`}
}

// Handler serves the bundle (GET and HEAD) as
// application/javascript; charset=utf-8 with a strong ETag (answering
// If-None-Match with 304), Cache-Control: public, max-age=300,
// Vary: Accept-Encoding, and gzip when the request accepts it.
func Handler() http.Handler { return newBundle(Bundle) }

// ServeHTTP implements http.Handler.
func (b *bundle) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/javascript; charset=utf-8")
	h.Set("Cache-Control", CacheControl)
	h.Set("ETag", b.etag)
	h.Set("X-Content-Type-Options", "nosniff")
	// Any origin may load the script; CORS lets pages use SRI (crossorigin).
	h.Set("Access-Control-Allow-Origin", "*")
	h.Add("Vary", "Accept-Encoding")
	if etagMatch(r.Header.Get("If-None-Match"), b.etag) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	body := b.raw
	if acceptsGzip(r.Header.Get("Accept-Encoding")) {
		body = b.gz
		h.Set("Content-Encoding", "gzip")
	}
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write(body)
	}
}

// etagMatch reports whether an If-None-Match header matches etag (weak
// comparison, as RFC 9110 requires for If-None-Match).
func etagMatch(header, etag string) bool {
	for _, t := range strings.Split(header, ",") {
		t = strings.TrimSpace(t)
		if t == "*" || strings.TrimPrefix(t, "W/") == etag {
			return true
		}
	}
	return false
}

// acceptsGzip reports whether an Accept-Encoding header allows gzip: gzip
// (or *) listed without q=0.
func acceptsGzip(header string) bool {
	gz, star := -1.0, -1.0
	for _, part := range strings.Split(header, ",") {
		name, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		q := 1.0
		for _, p := range strings.Split(params, ";") {
			if k, v, ok := strings.Cut(strings.TrimSpace(p), "="); ok && strings.EqualFold(strings.TrimSpace(k), "q") {
				if f, err := strconv.ParseFloat(strings.TrimSpace(v), 64); err == nil {
					q = f
				}
			}
		}
		switch strings.ToLower(strings.TrimSpace(name)) {
		case "gzip", "x-gzip":
			gz = q
		case "*":
			star = q
		}
	}
	if gz >= 0 {
		return gz > 0
	}
	return star > 0
}
