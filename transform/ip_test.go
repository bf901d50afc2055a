package transform

import (
	"net/netip"
	"testing"
)

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
