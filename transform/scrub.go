package transform

import (
	"fmt"
	"net/netip"
	"net/url"
	"regexp"
	"strings"
)

// ScrubConfig configures what is removed from free text (error messages,
// stacks) and URLs before an event is published.
type ScrubConfig struct {
	// SecretParams are query-string parameter names whose values are
	// replaced in URLs and in free text, compared case-insensitively.
	// Default: token, access_token, refresh_token, id_token, api_key,
	// apikey, key, secret, client_secret, password, passwd, auth, sig,
	// signature, code, session, sessionid, email.
	SecretParams []string `mapstructure:"secret_params"`
	// Patterns are extra regular expressions (RE2) whose matches are
	// replaced by "[redacted]" in free text and URLs. Default: none.
	Patterns []string `mapstructure:"patterns"`
}

// DefaultScrubConfig returns the documented defaults.
func DefaultScrubConfig() ScrubConfig {
	return ScrubConfig{
		SecretParams: []string{"token", "access_token", "refresh_token", "id_token", "api_key", "apikey", "key", "secret",
			"client_secret", "password", "passwd", "auth", "sig", "signature", "code", "session", "sessionid", "email"},
		Patterns: []string{},
	}
}

// Validate names the first invalid pattern.
func (c ScrubConfig) Validate() error {
	for i, p := range c.Patterns {
		if _, err := regexp.Compile(p); err != nil {
			return fmt.Errorf("ingest.scrub.patterns[%d]: %w", i, err)
		}
	}
	return nil
}

// Scrubber removes personal data and secrets from text. It is safe for
// concurrent use.
type Scrubber struct {
	rules   []scrubRule
	params  map[string]bool
	paramRE *regexp.Regexp
}

type scrubRule struct {
	// pre, when set, is a cheap test on the lower-cased text that must hold
	// for re to match; most texts hold no secret, so most regexes never run.
	pre  func(lower string) bool
	re   *regexp.Regexp
	repl func(string) string
}

func containsAny(subs ...string) func(string) bool {
	return func(t string) bool {
		for _, s := range subs {
			if strings.Contains(t, s) {
				return true
			}
		}
		return false
	}
}

// manyDigits reports whether t holds a run of at least 13 digits, with
// single spaces or dashes allowed between them (a card number's shape).
func manyDigits(t string) bool {
	n := 0
	for i := 0; i < len(t); i++ {
		switch c := t[i]; {
		case '0' <= c && c <= '9':
			if n++; n >= 13 {
				return true
			}
		case (c == ' ' || c == '-') && i > 0 && '0' <= t[i-1] && t[i-1] <= '9':
		default:
			n = 0
		}
	}
	return false
}

var (
	emailRE  = regexp.MustCompile(`[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}`)
	bearerRE = regexp.MustCompile(`(?i)\b(bearer|basic|token)\s+[A-Za-z0-9\-._~+/]{8,}=*`)
	// keys with well-known shapes: Stripe-style, AWS access keys, GitHub and
	// Slack tokens, JWTs, and long key=value secrets in text.
	apiKeyRE = regexp.MustCompile(`\b(?:(?:sk|pk|rk)_(?:live|test)_[A-Za-z0-9]{10,}|AKIA[0-9A-Z]{16}|gh[pousr]_[A-Za-z0-9]{30,}|xox[abprs]-[A-Za-z0-9\-]{10,}|eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,})\b`)
	cardRE   = regexp.MustCompile(`\b(?:\d[ \-]?){12,18}\d\b`)

	// What Prompt removes beyond Text, for text kept apart from its author
	// (the anonymised prompt corpus): any URL or bare domain path, any
	// phone-shaped number, any run of 6 or more digits (card-like whether
	// or not it passes Luhn, account and order numbers), id-like tokens
	// (UUIDs, long hex, letters and digits mixed in 8 or more characters)
	// and @handles.
	urlRE    = regexp.MustCompile(`(?i)\b(?:[a-z][a-z0-9+.\-]*://|www\.)[^\s<>"']+`)
	phoneRE  = regexp.MustCompile(`(?:\+\d{1,3}[ .\-]?)?(?:\(\d{1,4}\)[ .\-]?)?\d{2,6}(?:[ .\-]\d{2,6}){1,4}`)
	digitsRE = regexp.MustCompile(`\d{6,}`)
	dateRE   = regexp.MustCompile(`\b(?:\d{4}[-/.]\d{1,2}[-/.]\d{1,2}|\d{1,2}[-/.]\d{1,2}[-/.]\d{2,4})\b`)
	idRE     = regexp.MustCompile(`(?i)\b(?:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|[0-9a-f]{16,}|[a-z0-9_\-]*(?:[a-z][a-z_\-]*[0-9]|[0-9][0-9_\-]*[a-z])[a-z0-9_\-]*)\b`)
	handleRE = regexp.MustCompile(`(?:^|[^\w@])(@[A-Za-z0-9_](?:[A-Za-z0-9_.]*[A-Za-z0-9_])?)`)
)

// NewScrubber compiles c.
func NewScrubber(c ScrubConfig) (*Scrubber, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	s := &Scrubber{params: map[string]bool{}}
	var names []string
	for _, p := range c.SecretParams {
		s.params[strings.ToLower(p)] = true
		names = append(names, regexp.QuoteMeta(p))
	}
	if len(names) > 0 {
		s.paramRE = regexp.MustCompile(`(?i)([?&;](?:` + strings.Join(names, "|") + `)=)[^&\s#"')]+`)
	}
	s.rules = []scrubRule{
		{containsAny("bearer", "basic", "token"), bearerRE, func(m string) string { return strings.Fields(m)[0] + " [token]" }},
		{containsAny("sk_", "pk_", "rk_", "akia", "gh", "xox", "eyj"), apiKeyRE, constant("[secret]")},
		{containsAny("@"), emailRE, constant("[email]")},
		{manyDigits, cardRE, func(m string) string {
			if luhn(m) {
				return "[card]"
			}
			return m
		}},
	}
	for _, p := range c.Patterns {
		s.rules = append(s.rules, scrubRule{nil, regexp.MustCompile(p), constant("[redacted]")})
	}
	return s, nil
}

func constant(s string) func(string) string { return func(string) string { return s } }

// Text scrubs free text: messages and stack traces.
func (s *Scrubber) Text(t string) string {
	if t == "" {
		return t
	}
	if s.paramRE != nil && strings.ContainsAny(t, "?&;") {
		t = s.paramRE.ReplaceAllString(t, "${1}[redacted]")
	}
	lower := strings.ToLower(t)
	for _, r := range s.rules {
		if r.pre == nil || r.pre(lower) {
			t = r.re.ReplaceAllStringFunc(t, r.repl)
			lower = strings.ToLower(t)
		}
	}
	return scrubIPs(t)
}

// Prompt scrubs a prompt for the anonymised prompt corpus: what Text
// removes (secrets, e-mail addresses, Luhn-valid card numbers, IPs, the
// configured patterns), then every URL ("[url]"), date ("[date]": a
// birthday identifies), phone number ("[phone]"), run of 6 or more digits
// or of 13 or more in groups ("[number]"), id-like token
// ("[id]": a UUID, 16 or more hex digits, or a word of 8 or more
// characters that mixes letters and digits) and @handle ("[handle]").
// Whitespace runs become one space. What describes a video stays: 4K,
// 1080p, 3840x2160, 16:9, 8s, a year, "mp4".
func (s *Scrubber) Prompt(t string) string {
	t = s.Text(t)
	if t == "" {
		return t
	}
	t = urlRE.ReplaceAllString(t, "[url]")
	t = handleRE.ReplaceAllStringFunc(t, func(m string) string {
		i := strings.IndexByte(m, '@')
		return m[:i] + "[handle]"
	})
	t = idRE.ReplaceAllStringFunc(t, func(m string) string {
		if len(m) < 8 || videoTerm(m) || digitCount(m) == len(m) {
			return m // numbers are the next rules'
		}
		return "[id]"
	})
	t = replaceStandalone(t, dateRE, constant("[date]"))
	t = replaceStandalone(t, phoneRE, func(m string) string {
		switch n := digitCount(m); {
		case n < 7:
			return m
		case n >= 13: // a card or account number written in groups
			return "[number]"
		}
		return "[phone]"
	})
	t = replaceStandalone(t, digitsRE, constant("[number]"))
	return strings.Join(strings.Fields(t), " ")
}

// replaceStandalone replaces the matches of re in t that no letter or
// digit touches on either side (the 2160 of 3840x2160 is part of a word).
func replaceStandalone(t string, re *regexp.Regexp, repl func(string) string) string {
	var b strings.Builder
	last := 0
	for _, m := range re.FindAllStringIndex(t, -1) {
		if m[0] > 0 && isWordByte(t[m[0]-1]) || m[1] < len(t) && isWordByte(t[m[1]]) {
			continue
		}
		b.WriteString(t[last:m[0]])
		b.WriteString(repl(t[m[0]:m[1]]))
		last = m[1]
	}
	if last == 0 {
		return t
	}
	b.WriteString(t[last:])
	return b.String()
}

func isWordByte(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || c == '_'
}

// videoTerm reports whether a letters-and-digits word describes a video
// rather than naming something: a size such as 3840x2160 or a rate such
// as 60fps.
func videoTerm(w string) bool {
	lw := strings.ToLower(w)
	if a, b, ok := strings.Cut(lw, "x"); ok && digitCount(a) == len(a) && digitCount(b) == len(b) && a != "" && b != "" {
		return true
	}
	for _, unit := range []string{"fps", "kbps", "mbps"} {
		if n, ok := strings.CutSuffix(lw, unit); ok && digitCount(n) == len(n) {
			return true
		}
	}
	return false
}

func digitCount(s string) int {
	n := 0
	for i := 0; i < len(s); i++ {
		if '0' <= s[i] && s[i] <= '9' {
			n++
		}
	}
	return n
}

// URL scrubs a URL: secret query parameters, e-mail addresses and the
// patterns; a URL without a query string or '@' is returned as it is.
func (s *Scrubber) URL(raw string) string {
	if raw == "" || !strings.ContainsAny(raw, "?@#") {
		return raw
	}
	u, err := url.Parse(raw)
	if err != nil {
		return s.Text(raw)
	}
	if u.User != nil {
		u.User = nil
	}
	if u.RawQuery != "" {
		q := u.Query()
		changed := false
		for k := range q {
			if s.params[strings.ToLower(k)] {
				q[k] = []string{"[redacted]"}
				changed = true
			}
		}
		if changed {
			u.RawQuery = q.Encode()
		}
	}
	return s.Text(u.String())
}

// scrubIPs replaces valid IPv4 and IPv6 addresses, but not version
// numbers such as Chrome/131.0.0.0 (preceded by '/', a letter or a digit)
// nor times such as 12:00:05 (not an address). It scans once: each maximal
// run of hex digits, '.' and ':' is a candidate, parsed only when it stands
// alone.
func scrubIPs(t string) string {
	if strings.Count(t, ".") < 3 && strings.Count(t, ":") < 2 {
		return t
	}
	var b strings.Builder
	last := 0
	for i := 0; i < len(t); {
		if !isAddrChar(t[i]) {
			i++
			continue
		}
		j := i
		for j < len(t) && isAddrChar(t[j]) {
			j++
		}
		tok, end := t[i:j], j
		for len(tok) > 0 && tok[len(tok)-1] == '.' { // a sentence's full stop
			tok, end = tok[:len(tok)-1], end-1
		}
		if k := strings.LastIndexByte(tok, ':'); k > 0 && strings.Count(tok, ":") == 1 && strings.Contains(tok[:k], ".") {
			tok, end = tok[:k], i+k // IPv4 with a port
		}
		alone := (i == 0 || !isAddrNeighbour(t[i-1])) && (j == len(t) || !isAddrNeighbour(t[j]))
		if alone && (strings.Count(tok, ".") == 3 || strings.Count(tok, ":") >= 2) {
			if _, err := netip.ParseAddr(tok); err == nil {
				b.WriteString(t[last:i])
				b.WriteString("[ip]")
				last = end
			}
		}
		i = j
	}
	if last == 0 {
		return t
	}
	b.WriteString(t[last:])
	return b.String()
}

func isAddrChar(c byte) bool {
	return c == '.' || c == ':' || '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func isAddrNeighbour(c byte) bool {
	return c == '/' || c == '_' || c == '-' ||
		'0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z'
}

// luhn reports whether the digits of s pass the Luhn check.
func luhn(s string) bool {
	sum, n, double := 0, 0, false
	for i := len(s) - 1; i >= 0; i-- {
		c := s[i]
		if c < '0' || c > '9' {
			continue
		}
		d := int(c - '0')
		if double {
			if d *= 2; d > 9 {
				d -= 9
			}
		}
		sum += d
		n++
		double = !double
	}
	return n >= 13 && sum%10 == 0
}
