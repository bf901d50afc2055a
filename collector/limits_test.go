package collector

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sora3web/telemetry/bus"
)

func TestRateLimitsPerKeyAndPerIPAnswer429WithRetryAfter(t *testing.T) {
	cases := []struct {
		name      string
		perKey    RateLimit
		perIP     RateLimit
		remotes   []string
		wantOK    int
		wantLimit int
	}{
		{"per ip", RateLimit{}, RateLimit{Rate: 1, Burst: 3}, []string{"203.0.113.1:1"}, 3, 2},
		{"per ip, other clients unaffected", RateLimit{}, RateLimit{Rate: 1, Burst: 3}, []string{"203.0.113.1:1", "203.0.113.2:1"}, 6, 4},
		{"per key across clients", RateLimit{Rate: 1, Burst: 4}, RateLimit{}, []string{"203.0.113.1:1", "203.0.113.2:1"}, 4, 6},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := testConfig()
			cfg.RateLimitPerKey, cfg.RateLimitPerIP = c.perKey, c.perIP
			s := newTestServer(t, cfg, &fakePublisher{})
			ok, limited := 0, 0
			for _, remote := range c.remotes {
				for i := 0; i < 5; i++ {
					w, _ := do(t, s.Handler(), req{path: "/v1/events", ctype: "application/json", body: mustJSON(t, event()), headers: auth(), remote: remote})
					switch w.Code {
					case 200:
						ok++
					case 429:
						limited++
						if w.Header().Get("Retry-After") == "" || !strings.Contains(w.Body.String(), "rate limit") {
							t.Fatalf("429 without Retry-After or reason: %v %s", w.Header(), w.Body)
						}
					default:
						t.Fatalf("status %d", w.Code)
					}
				}
			}
			if ok != c.wantOK || limited != c.wantLimit {
				t.Fatalf("ok %d limited %d, want %d and %d", ok, limited, c.wantOK, c.wantLimit)
			}
		})
	}
}

// blockingPublisher holds every Publish until release is closed.
type blockingPublisher struct {
	entered chan struct{}
	release chan struct{}
}

func (b *blockingPublisher) Publish(ctx context.Context, _ []bus.Message) error {
	b.entered <- struct{}{}
	select {
	case <-b.release:
	case <-ctx.Done():
	}
	return nil
}
func (b *blockingPublisher) Ready() error { return nil }

func TestOverloadShedsWith503InsteadOfQueueing(t *testing.T) {
	cfg := testConfig()
	cfg.MaxInFlight = 2
	pub := &blockingPublisher{entered: make(chan struct{}, 10), release: make(chan struct{})}
	s := newTestServer(t, cfg, pub)
	var wg sync.WaitGroup
	for i := 0; i < 2; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			do(t, s.Handler(), req{path: "/v1/events", ctype: "application/json", body: mustJSON(t, event()), headers: auth()})
		}()
	}
	<-pub.entered
	<-pub.entered
	w, _ := do(t, s.Handler(), req{path: "/v1/events", ctype: "application/json", body: mustJSON(t, event()), headers: auth()})
	if w.Code != 503 || w.Header().Get("Retry-After") != "1" || !strings.Contains(w.Body.String(), "overloaded") {
		t.Fatalf("third request while two are in flight: %d %v %s", w.Code, w.Header(), w.Body)
	}
	close(pub.release)
	wg.Wait()
	go func() {
		for range pub.entered {
		}
	}()
	if w, _ := do(t, s.Handler(), req{path: "/v1/events", ctype: "application/json", body: mustJSON(t, event()), headers: auth()}); w.Code != 200 {
		t.Fatalf("after the load passed: %d", w.Code)
	}
}

// TestInFlightBytesBoundShedsLargeBodiesNotSmallOnes: with room for two
// requests by count, a body that would take the bytes in flight over
// max_inflight_bytes is shed with 503 while a small one is admitted, and
// a body of unknown length is charged as max_request_bytes.
func TestInFlightBytesBoundShedsLargeBodiesNotSmallOnes(t *testing.T) {
	cfg := testConfig()
	cfg.MaxInFlight = 3
	small := mustJSON(t, event())
	cfg.MaxRequestBytes = 64 << 10
	cfg.MaxInFlightBytes = int64(cfg.MaxRequestBytes) + int64(len(small)) - 1 // room for two small bodies, not one small and one unknown
	pub := &blockingPublisher{entered: make(chan struct{}, 10), release: make(chan struct{})}
	s := newTestServer(t, cfg, pub)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // holds len(small) bytes
		defer wg.Done()
		do(t, s.Handler(), req{path: "/v1/events", ctype: "application/json", body: small, headers: auth()})
	}()
	<-pub.entered
	unknownLength := func() *httptest.ResponseRecorder {
		r := httptest.NewRequest(http.MethodPost, "/v1/events", bytes.NewReader(small))
		r.ContentLength = -1 // as a chunked body
		r.Header.Set("Content-Type", "application/json")
		r.Header.Set("Authorization", auth()["Authorization"])
		w := httptest.NewRecorder()
		s.Handler().ServeHTTP(w, r)
		return w
	}
	// A body of unknown length is charged max_request_bytes: with the
	// first request's bytes that is over the bound.
	if w := unknownLength(); w.Code != 503 || !strings.Contains(w.Body.String(), "overloaded") {
		t.Fatalf("a body of unknown length beside one in flight: %d %s", w.Code, w.Body)
	}
	wg.Add(1)
	go func() { // a second small one fits
		defer wg.Done()
		if w, _ := do(t, s.Handler(), req{path: "/v1/events", ctype: "application/json", body: small, headers: auth()}); w.Code != 200 {
			t.Errorf("a small request within the bytes bound: %d %s", w.Code, w.Body)
		}
	}()
	<-pub.entered
	close(pub.release)
	wg.Wait()
	go func() {
		for range pub.entered {
		}
	}()
	if w := unknownLength(); w.Code != 200 {
		t.Fatalf("a body of unknown length with nothing in flight: %d %s", w.Code, w.Body)
	}
}

func TestServesTLSFromConfiguredCertificate(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := selfSigned(t, dir)
	cfg := testConfig()
	cfg.Listen = "127.0.0.1:0"
	cfg.TLSCertFile, cfg.TLSKeyFile = certFile, keyFile
	s, err := New(cfg, &fakePublisher{}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer s.Shutdown(context.Background())
	pem, _ := os.ReadFile(certFile)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}, Timeout: 5 * time.Second}
	resp, err := c.Get("https://" + s.Addr() + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.TLS == nil {
		t.Fatalf("status %d tls %v", resp.StatusCode, resp.TLS != nil)
	}
	// plain HTTP to the TLS port is refused
	if resp, err := http.Get("http://" + s.Addr() + "/healthz"); err == nil {
		resp.Body.Close()
		if resp.StatusCode == 200 {
			t.Fatal("plain HTTP served on the TLS listener")
		}
	}
}

func selfSigned(t *testing.T, dir string) (string, string) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "127.0.0.1"},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(key)
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600)
	return certFile, keyFile
}
