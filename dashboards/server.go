package dashboards

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"html/template"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
)

// ErrUnauthorized is a request without the staff token or session cookie.
var ErrUnauthorized = errors.New("staff token required")

// sessionCookie holds the signed-in browser's proof of the staff token.
const sessionCookie = "telemetry_staff"

// Server serves the dashboards on their own listener, behind the staff
// token: the built-in dashboard, the error explorer and the pipeline page.
type Server struct {
	cfg  Config
	h    http.Handler
	srv  *http.Server
	ln   net.Listener
	done chan struct{}
	mu   sync.Mutex
	// token and cookie are SHA-256 digests: compared in constant time.
	token, cookie [32]byte
}

// NewServer prepares the dashboards' server over db; it does no I/O.
func NewServer(cfg Config, db DB) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	s := &Server{cfg: cfg, token: sha256.Sum256([]byte(cfg.Token)), cookie: cookieValue(cfg.Token)}
	s.h = s.Wrap(Handler(cfg, db))
	return s, nil
}

// cookieValue derives the session cookie from the token: the cookie never
// carries the token itself.
func cookieValue(token string) [32]byte {
	return sha256.Sum256([]byte("telemetry dashboard session\x00" + token))
}

// Start listens on cfg.Listen and serves until Shutdown.
func (s *Server) Start(ctx context.Context) error {
	ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", s.cfg.Listen)
	if err != nil {
		return fmt.Errorf("listening on dashboard.listen %s: %w", s.cfg.Listen, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ln = ln
	s.srv = &http.Server{Handler: s.h, ReadHeaderTimeout: 5 * time.Second, MaxHeaderBytes: 16 << 10}
	s.done = make(chan struct{})
	go func() {
		defer close(s.done)
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.cfg.Log.Error("dashboard server stopped", "err", err)
		}
	}()
	return nil
}

// Addr is the listener's address after Start ("" before).
func (s *Server) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln == nil {
		return ""
	}
	return s.ln.Addr().String()
}

// Shutdown stops accepting, waits for requests in flight and for the
// serving goroutine. It is safe when Start was never called.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	srv, done := s.srv, s.done
	s.mu.Unlock()
	if srv == nil {
		return nil
	}
	err := srv.Shutdown(ctx)
	<-done
	return err
}

// Wrap puts h behind the staff token: a request carrying
// "Authorization: Bearer <token>" or the session cookie set by
// /dashboard/login goes through; any other gets 401 (the sign-in form for
// pages, JSON for the API). /dashboard/login itself is open.
func (s *Server) Wrap(h http.Handler) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /dashboard/login", s.loginForm)
	mux.HandleFunc("POST /dashboard/login", s.login)
	mux.Handle("/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !s.authorized(r) {
			s.cfg.Log.Warn("dashboard request refused", "path", r.URL.Path, "err", ErrUnauthorized)
			if strings.HasPrefix(r.URL.Path, "/dashboard/api/") || r.Header.Get("Authorization") != "" {
				writeError(w, http.StatusUnauthorized, ErrUnauthorized)
				return
			}
			s.renderLogin(w, http.StatusUnauthorized, "", r.URL.RequestURI())
			return
		}
		h.ServeHTTP(w, r)
	}))
	// No page of the dashboards, sign-in included, may be framed by
	// another site or leak its URL (which holds the filters) as a referrer.
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Frame-Options", "DENY")
		w.Header().Set("Content-Security-Policy", "frame-ancestors 'none'")
		w.Header().Set("Referrer-Policy", "no-referrer")
		mux.ServeHTTP(w, r)
	})
}

// authorized reports whether r carries the staff token or a session
// cookie derived from it; both comparisons run in constant time.
func (s *Server) authorized(r *http.Request) bool {
	if scheme, tok, ok := strings.Cut(r.Header.Get("Authorization"), " "); ok && strings.EqualFold(scheme, "Bearer") {
		got := sha256.Sum256([]byte(strings.TrimSpace(tok)))
		return subtle.ConstantTimeCompare(got[:], s.token[:]) == 1
	}
	c, err := r.Cookie(sessionCookie)
	if err != nil {
		return false
	}
	got, err := hex.DecodeString(c.Value)
	return err == nil && subtle.ConstantTimeCompare(got, s.cookie[:]) == 1
}

var loginTmpl = template.Must(template.New("login").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Telemetry: staff sign-in</title><link rel="icon" href="data:,">
<style>body{font:14px system-ui,sans-serif;margin:10vh auto;max-width:360px;color:#1d2330}input,button{font:inherit;width:100%;margin:6px 0;padding:6px}.err{color:#b42318}</style></head>
<body><h1>Telemetry dashboards</h1><p>Staff only. Sign in with the staff token (config <code>dashboard.token</code>).</p>
{{if .Err}}<p class="err">{{.Err}}</p>{{end}}
<form method="post" action="/dashboard/login"><input type="hidden" name="next" value="{{.Next}}">
<label>Staff token <input type="password" name="token" autocomplete="current-password" autofocus required></label>
<button type="submit">Sign in</button></form></body></html>
`))

func (s *Server) renderLogin(w http.ResponseWriter, status int, msg, next string) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = loginTmpl.Execute(w, struct{ Err, Next string }{msg, safeNext(next)})
}

// safeNext keeps a redirect target on the dashboards.
func safeNext(next string) string {
	if !strings.HasPrefix(next, "/dashboard/") || strings.HasPrefix(next, "/dashboard/login") || strings.ContainsAny(next, "\\\r\n") {
		return "/dashboard/"
	}
	return next
}

func (s *Server) loginForm(w http.ResponseWriter, r *http.Request) {
	s.renderLogin(w, http.StatusOK, "", r.URL.Query().Get("next"))
}

func (s *Server) login(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 4096)
	if err := r.ParseForm(); err != nil {
		s.renderLogin(w, http.StatusBadRequest, "token: unreadable form", "")
		return
	}
	got := sha256.Sum256([]byte(strings.TrimSpace(r.PostForm.Get("token"))))
	if subtle.ConstantTimeCompare(got[:], s.token[:]) != 1 {
		s.cfg.Log.Warn("dashboard sign-in refused", "err", ErrUnauthorized)
		s.renderLogin(w, http.StatusUnauthorized, "That is not the staff token.", r.PostForm.Get("next"))
		return
	}
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: hex.EncodeToString(s.cookie[:]), Path: "/dashboard/",
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil, MaxAge: 12 * 3600})
	s.cfg.Log.Info("dashboard sign-in", "audit", true)
	http.Redirect(w, r, safeNext(r.PostForm.Get("next")), http.StatusSeeOther)
}
