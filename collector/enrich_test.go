package collector

import (
	"fmt"
	"net/netip"
	"testing"
)

func TestUAParserClassifiesCurrentBrowsers(t *testing.T) {
	p, err := NewUAParser(100)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		ua, class, os, browser, browserMajor string
	}{
		{uaChromeWin, "desktop", "Windows", "Chrome", "131"},
		{uaEdgeWin, "desktop", "Windows", "Edge", "131"},
		{uaFirefoxMac, "desktop", "Mac OS X", "Firefox", "133"},
		{uaSafariIOS, "mobile", "iOS", "Mobile Safari", "18"},
		{uaChromeAndr, "mobile", "Android", "Chrome Mobile", "131"},
		{uaSamsungAndr, "mobile", "Android", "Samsung Internet", "26"},
		{uaSafariIPad, "tablet", "iOS", "Mobile Safari", "17"},
		{uaAndrTablet, "tablet", "Android", "Chrome", "131"},
		{uaGooglebot, "bot", "", "Googlebot", "2"},
		{"curl/8.5.0", "bot", "", "curl", "8"},
		{"", "other", "", "", ""},
	}
	for _, c := range cases {
		t.Run(c.browser+"/"+c.class, func(t *testing.T) {
			d := p.Parse(c.ua)
			if d.Class != c.class || d.OS != c.os || d.Browser != c.browser || (c.browserMajor != "" && !hasMajor(d.BrowserVersion, c.browserMajor)) {
				t.Fatalf("Parse(%q) = %+v, want class=%s os=%s browser=%s %s", c.ua, d, c.class, c.os, c.browser, c.browserMajor)
			}
			if d.IsBot != (c.class == "bot") {
				t.Fatalf("IsBot = %v for class %s", d.IsBot, c.class)
			}
		})
	}
}

func hasMajor(version, major string) bool {
	return version == major || len(version) > len(major) && version[:len(major)+1] == major+"."
}

func TestUACacheIsBoundedAndCounts(t *testing.T) {
	p, err := NewUAParser(10)
	if err != nil {
		t.Fatal(err)
	}
	var hits, misses int
	p.onLookup = func(result string) {
		if result == uaHit {
			hits++
		} else {
			misses++
		}
	}
	for i := 0; i < 100; i++ {
		p.Parse(fmt.Sprintf("Mozilla/5.0 (X11; Linux x86_64) Chrome/%d.0 Safari/537.36", i))
	}
	p.Parse("Mozilla/5.0 (X11; Linux x86_64) Chrome/99.0 Safari/537.36")
	if n := len(p.cache.cur) + len(p.cache.old); n > 10 {
		t.Fatalf("cache holds %d entries, bound is 10", n)
	}
	if misses != 100 || hits != 1 {
		t.Fatalf("hits %d misses %d", hits, misses)
	}
}

func TestAnonymizeIP(t *testing.T) {
	cases := map[string]string{
		"203.0.113.77":              "203.0.113.0",
		"::ffff:198.51.100.200":     "198.51.100.0",
		"2001:db8:1234:5678:9::1":   "2001:db8:1234::",
		"fe80::1ff:fe23:4567:890a":  "fe80::",
		"127.0.0.1":                 "127.0.0.0",
		"2001:0db8:0000:0000::0001": "2001:db8::",
	}
	for in, want := range cases {
		if got := AnonymizeIP(netip.MustParseAddr(in).Unmap()); got != want {
			t.Errorf("AnonymizeIP(%s) = %s, want %s", in, got, want)
		}
	}
	if AnonymizeIP(netip.Addr{}) != "" {
		t.Error("invalid address must give empty string")
	}
}

func TestUAParseBudgetDefersAFloodOfUnseenAgents(t *testing.T) {
	p, err := NewUAParser(1000)
	if err != nil {
		t.Fatal(err)
	}
	p.SetBudget(5)
	parsed, deferred := 0, 0
	for i := 0; i < 50; i++ {
		d, ok := p.Lookup(fmt.Sprintf("Mozilla/5.0 (Windows NT 10.0; Win64; x64) Chrome/131.0.%d.0 Safari/537.36", i))
		if ok {
			parsed++
			if d.Pending || d.Browser != "Chrome" {
				t.Fatalf("parsed device %+v", d)
			}
		} else {
			deferred++
			if !d.Pending {
				t.Fatalf("deferred device not pending: %+v", d)
			}
		}
	}
	if parsed != 5 || deferred != 45 {
		t.Fatalf("parsed %d deferred %d, want 5 and 45 within one second", parsed, deferred)
	}
	// a cached agent never waits for the budget
	if d, ok := p.Lookup("Mozilla/5.0 (Windows NT 10.0; Win64; x64) Chrome/131.0.0.0 Safari/537.36"); !ok || d.Pending {
		t.Fatal("cached agent deferred")
	}
	// Parse (off the request path) ignores the budget
	if d := p.Parse("Mozilla/5.0 (Windows NT 10.0; Win64; x64) Chrome/131.0.49.0 Safari/537.36"); d.Pending || d.Browser != "Chrome" {
		t.Fatalf("Parse: %+v", d)
	}
}
