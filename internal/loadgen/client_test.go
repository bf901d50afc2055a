package loadgen

import (
	"crypto/tls"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestConnSpeaksHTTP1 sends requests through conn to net/http servers that
// answer in the ways a server may: kept alive, closing after each answer,
// chunked, over TLS, or dropping the connection without an answer.
func TestConnSpeaksHTTP1(t *testing.T) {
	type seen struct {
		mu      sync.Mutex
		remotes map[string]bool
		n       int
	}
	cases := []struct {
		name string
		// answer writes the response to the n-th request (from 1).
		answer    func(w http.ResponseWriter, n int)
		tls       bool
		wantConns int // distinct client connections the server saw
		wantErrAt int // the request (from 1) that fails, 0 for none
	}{
		{name: "keep-alive", answer: func(w http.ResponseWriter, _ int) { io.WriteString(w, `{"accepted":1}`) }, wantConns: 1},
		{name: "server closes after each answer", answer: func(w http.ResponseWriter, _ int) {
			w.Header().Set("Connection", "close")
			io.WriteString(w, `{"accepted":1}`)
		}, wantConns: 3},
		{name: "chunked answer (flushed before the end)", answer: func(w http.ResponseWriter, _ int) {
			io.WriteString(w, `{"accepted":`)
			w.(http.Flusher).Flush()
			io.WriteString(w, `1}`)
		}, wantConns: 1},
		{name: "tls", answer: func(w http.ResponseWriter, _ int) { io.WriteString(w, `{"accepted":1}`) }, tls: true, wantConns: 1},
		{name: "connection dropped without an answer", answer: func(w http.ResponseWriter, n int) {
			if n == 2 {
				c, _, _ := w.(http.Hijacker).Hijack()
				c.Close()
				return
			}
			io.WriteString(w, `{"accepted":1}`)
		}, wantConns: 2, wantErrAt: 2},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := &seen{remotes: map[string]bool{}}
			h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				body, _ := io.ReadAll(r.Body)
				s.mu.Lock()
				s.n++
				n := s.n
				s.remotes[r.RemoteAddr] = true
				s.mu.Unlock()
				if r.Method != http.MethodPost || r.URL.RequestURI() != "/v1/beacon?writeKey=k" || r.Host == "" ||
					r.Header.Get("User-Agent") != "ua/1" || r.Header.Get("Content-Type") != "text/plain" ||
					r.ContentLength != int64(len(body)) || string(body) != strings.Repeat("x", 100_000) {
					t.Errorf("request %d: %s %s host %q headers %v, %d bytes of body", n, r.Method, r.URL, r.Host, r.Header, len(body))
				}
				tc.answer(w, n)
			})
			var srv *httptest.Server
			var tlsConf *tls.Config
			if tc.tls {
				srv = httptest.NewTLSServer(h)
				tlsConf = srv.Client().Transport.(*http.Transport).TLSClientConfig
			} else {
				srv = httptest.NewServer(h)
			}
			defer srv.Close()
			c, err := newConn(srv.URL, 5*time.Second, tlsConf)
			if err != nil {
				t.Fatal(err)
			}
			defer c.close()
			body := []byte(strings.Repeat("x", 100_000))
			for i := 1; i <= 3; i++ {
				status, answer, err := c.post("/v1/beacon?writeKey=k", [][2]string{{"Content-Type", "text/plain"}, {"User-Agent", "ua/1"}}, body)
				if i == tc.wantErrAt {
					if err == nil {
						t.Fatalf("request %d: no error from a dropped connection", i)
					}
					continue
				}
				if err != nil || status != 200 || string(answer) != `{"accepted":1}` {
					t.Fatalf("request %d: %d %q %v", i, status, answer, err)
				}
			}
			if len(s.remotes) != tc.wantConns {
				t.Errorf("the server saw %d connections, want %d", len(s.remotes), tc.wantConns)
			}
		})
	}
}

func TestNewConnRefusesOtherSchemes(t *testing.T) {
	for _, u := range []string{"ftp://example.com", "127.0.0.1:8080", "http://"} {
		if _, err := newConn(u, time.Second, nil); err == nil {
			t.Errorf("newConn(%q): no error", u)
		}
	}
}
