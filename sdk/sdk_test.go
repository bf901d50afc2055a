package sdk_test

import (
	"bytes"
	"compress/gzip"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/sora3web/telemetry/sdk"
)

// budget is the gzipped size budget of the bundle (README.md).
const budget = 5 * 1024

func get(t *testing.T, h http.Handler, method string, headers map[string]string) *httptest.ResponseRecorder {
	t.Helper()
	r := httptest.NewRequest(method, "/v1/sdk.js", nil)
	for k, v := range headers {
		r.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func gunzip(t *testing.T, b []byte) []byte {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("body is not gzip: %v", err)
	}
	out, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestHandlerServesTheBundle(t *testing.T) {
	h := sdk.Handler()
	onDisk, err := os.ReadFile(filepath.Join("dist", "sdk.js"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(onDisk, sdk.Bundle) {
		t.Fatal("embedded bundle differs from dist/sdk.js")
	}
	if !bytes.Contains(sdk.Bundle, []byte("var telemetry=")) {
		t.Fatalf("bundle does not define window.telemetry: %.80s", sdk.Bundle)
	}

	w := get(t, h, http.MethodGet, nil)
	if w.Code != 200 || !bytes.Equal(w.Body.Bytes(), sdk.Bundle) {
		t.Fatalf("GET: %d, %d bytes", w.Code, w.Body.Len())
	}
	want := map[string]string{
		"Content-Type":     "application/javascript; charset=utf-8",
		"Cache-Control":    "public, max-age=300",
		"Vary":             "Accept-Encoding",
		"Content-Encoding": "",
	}
	for k, v := range want {
		if got := w.Header().Get(k); got != v {
			t.Errorf("%s: %q, want %q", k, got, v)
		}
	}
	etag := w.Header().Get("ETag")
	if len(etag) < 10 || etag[0] != '"' || etag[len(etag)-1] != '"' {
		t.Fatalf("ETag %q is not a strong entity tag", etag)
	}

	gz := get(t, h, http.MethodGet, map[string]string{"Accept-Encoding": "br, gzip;q=0.8"})
	if gz.Header().Get("Content-Encoding") != "gzip" || gz.Header().Get("ETag") != etag {
		t.Fatalf("gzip: headers %v", gz.Header())
	}
	if !bytes.Equal(gunzip(t, gz.Body.Bytes()), sdk.Bundle) {
		t.Fatal("gzipped body differs from the bundle")
	}
	if gz.Body.Len() >= len(sdk.Bundle) {
		t.Errorf("gzip (%d bytes) not smaller than the bundle (%d)", gz.Body.Len(), len(sdk.Bundle))
	}

	for _, ae := range []string{"gzip;q=0", "identity", "br", "*;q=0", "gzip;q=0, *"} {
		if w := get(t, h, http.MethodGet, map[string]string{"Accept-Encoding": ae}); w.Header().Get("Content-Encoding") != "" {
			t.Errorf("Accept-Encoding %q: got gzip", ae)
		}
	}
	if w := get(t, h, http.MethodGet, map[string]string{"Accept-Encoding": "*"}); w.Header().Get("Content-Encoding") != "gzip" {
		t.Error(`Accept-Encoding "*": not gzip`)
	}

	for _, inm := range []string{etag, "W/" + etag, `"other", ` + etag, "*"} {
		w := get(t, h, http.MethodGet, map[string]string{"If-None-Match": inm})
		if w.Code != http.StatusNotModified || w.Body.Len() != 0 || w.Header().Get("ETag") != etag {
			t.Errorf("If-None-Match %s: %d, %d bytes", inm, w.Code, w.Body.Len())
		}
	}
	if w := get(t, h, http.MethodGet, map[string]string{"If-None-Match": `"stale"`}); w.Code != 200 {
		t.Errorf("stale If-None-Match: %d", w.Code)
	}

	head := get(t, h, http.MethodHead, nil)
	if head.Code != 200 || head.Body.Len() != 0 || head.Header().Get("Content-Length") != w.Header().Get("Content-Length") {
		t.Errorf("HEAD: %d, %d bytes, Content-Length %q", head.Code, head.Body.Len(), head.Header().Get("Content-Length"))
	}
	if w := get(t, h, http.MethodPost, nil); w.Code != http.StatusMethodNotAllowed {
		t.Errorf("POST: %d", w.Code)
	}
}

func TestBundleWithinSizeBudget(t *testing.T) {
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	zw.Write(sdk.Bundle)
	zw.Close()
	if buf.Len() > budget {
		t.Fatalf("dist/sdk.js is %d bytes gzipped, over the %d-byte budget", buf.Len(), budget)
	}
	t.Logf("dist/sdk.js: %d bytes, %d gzipped (budget %d)", len(sdk.Bundle), buf.Len(), budget)
}

// TestCommittedBundleIsFresh rebuilds the bundle from src/ (type-check and
// esbuild) and fails when the committed dist/sdk.js differs: run
// `make sdk-build` and commit dist/sdk.js.
func TestCommittedBundleIsFresh(t *testing.T) {
	nodeModules(t)
	dir := sdkDir(t)
	out := t.TempDir()
	if b, err := run(dir, 2*time.Minute, nil, "node_modules/.bin/tsc", "-p", "tsconfig.json"); err != nil {
		t.Fatalf("tsc: %v\n%s", err, b)
	}
	if b, err := run(dir, 2*time.Minute, nil, "node", "build.mjs", "--outdir", out); err != nil {
		t.Fatalf("node build.mjs: %v\n%s", err, b)
	}
	fresh, err := os.ReadFile(filepath.Join(out, "sdk.js"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(fresh, sdk.Bundle) {
		t.Fatalf("the committed sdk/dist/sdk.js (%d bytes) is stale: a fresh build of src/ is %d bytes; run `make sdk-build` and commit sdk/dist/sdk.js", len(sdk.Bundle), len(fresh))
	}
}
