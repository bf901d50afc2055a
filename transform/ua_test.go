package transform

import (
	"fmt"
	"testing"
)

// Real user agents of current browsers.
const (
	uaChromeWin   = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"
	uaSafariIOS   = "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1"
	uaFirefoxMac  = "Mozilla/5.0 (Macintosh; Intel Mac OS X 14.7; rv:133.0) Gecko/20100101 Firefox/133.0"
	uaSafariIPad  = "Mozilla/5.0 (iPad; CPU OS 17_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.6 Mobile/15E148 Safari/604.1"
	uaChromeAndr  = "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.6778.81 Mobile Safari/537.36"
	uaAndrTablet  = "Mozilla/5.0 (Linux; Android 13; SM-X710) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.6778.81 Safari/537.36"
	uaEdgeWin     = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Edg/131.0.2903.70"
	uaGooglebot   = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
	uaSamsungAndr = "Mozilla/5.0 (Linux; Android 14; SAMSUNG SM-S921B) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/26.0 Chrome/122.0.0.0 Mobile Safari/537.36"
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
	p.SetObserver(func(result string) {
		if result == LookupHit {
			hits++
		} else {
			misses++
		}
	})
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
