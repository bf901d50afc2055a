package dashboards

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

// TestSignInRedirectsOnlyWithinTheDashboards: the sign-in form's next
// target never leads off the dashboards (an open redirect would lend the
// staff page's trust to any site).
func TestSignInRedirectsOnlyWithinTheDashboards(t *testing.T) {
	const token = "staff-token-for-the-redirect-test-0123456789"
	s, err := NewServer(Config{Enabled: true, Listen: "127.0.0.1:0", Token: token}, nil)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s.h)
	defer srv.Close()
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for next, want := range map[string]string{
		"/dashboard/errors?session_id=x":  "/dashboard/errors?session_id=x",
		"":                                "/dashboard/",
		"//evil.example/":                 "/dashboard/",
		"https://evil.example/dashboard/": "/dashboard/",
		"/dashboard/\\evil.example":       "/dashboard/",
		"/dashboard/login":                "/dashboard/",
		"/elsewhere":                      "/dashboard/",
	} {
		resp, err := c.PostForm(srv.URL+"/dashboard/login", url.Values{"token": {token}, "next": {next}})
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != want {
			t.Errorf("next %q: %d to %q, want 303 to %q", next, resp.StatusCode, resp.Header.Get("Location"), want)
		}
		if resp.Header.Get("X-Frame-Options") != "DENY" || resp.Header.Get("Referrer-Policy") != "no-referrer" {
			t.Errorf("sign-in answer without X-Frame-Options DENY and Referrer-Policy no-referrer: %v", resp.Header)
		}
		if ck := resp.Header.Get("Set-Cookie"); !strings.Contains(ck, "HttpOnly") || !strings.Contains(ck, "SameSite=Strict") || strings.Contains(ck, token) {
			t.Errorf("cookie %q: want HttpOnly, SameSite=Strict and no token", ck)
		}
	}
}

func TestConfigValidateNamesTheField(t *testing.T) {
	for _, tc := range []struct {
		cfg  Config
		dev  bool
		want string
	}{
		{Config{Enabled: true, Listen: "nowhere", Token: DevToken}, true, "dashboard.listen"},
		{Config{Enabled: true, Listen: "127.0.0.1:1"}, true, "dashboard.token: required"},
		{Config{Enabled: true, Listen: "127.0.0.1:1", Token: DevToken}, false, "dashboard.token: the development token"},
		{Config{Enabled: true, Listen: "127.0.0.1:1", Token: "short"}, false, "at least 32"},
	} {
		err := tc.cfg.Validate()
		if err == nil {
			err = tc.cfg.CheckToken(tc.dev)
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want %q", tc.cfg, err, tc.want)
		}
	}
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatal(err)
	}
	if err := (Config{}).Validate(); err != nil {
		t.Fatalf("disabled: %v", err)
	}
}
