package transform

import "testing"

func TestScrubberRemovesSecretsAndPersonalData(t *testing.T) {
	s, err := NewScrubber(DefaultScrubConfig())
	if err != nil {
		t.Fatal(err)
	}
	text := []struct{ name, in, want string }{
		{"email in message", "Invalid login for jane.doe+test@example.co.uk, try again", "Invalid login for [email], try again"},
		{"bearer token", "fetch failed: 401 with Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
			"fetch failed: 401 with Authorization: Bearer [token]"},
		{"stripe key", "StripeError: No such customer; key sk_live_51H8xYzAbCdEfGhIjKlMn used", "StripeError: No such customer; key [secret] used"},
		{"aws key", "AccessDenied for AKIAIOSFODNN7EXAMPLE", "AccessDenied for [secret]"},
		{"github token", "push with ghp_16C7e42F292c6912E7710c838347Ae178B4a failed", "push with [secret] failed"},
		{"card number", "payment failed for card 4111 1111 1111 1111 (visa)", "payment failed for card [card] (visa)"},
		{"card with dashes", "card 5500-0000-0000-0004 declined", "card [card] declined"},
		{"ipv4", "connect ECONNREFUSED 10.12.0.7:443", "connect ECONNREFUSED [ip]:443"},
		{"ipv6", "upstream 2001:db8:85a3::8a2e:370:7334 timed out", "upstream [ip] timed out"},
		{"query secret in text", "GET https://api.example.com/v1/render?id=42&token=abc123secret&lang=en 500", "GET https://api.example.com/v1/render?id=42&token=[redacted]&lang=en 500"},
		// must not change
		{"plain error", "TypeError: Cannot read properties of undefined (reading 'duration')", "TypeError: Cannot read properties of undefined (reading 'duration')"},
		{"stack with line:col", "at Player.seek (https://app.example.com/assets/player-3f2a.js:1:18234)", "at Player.seek (https://app.example.com/assets/player-3f2a.js:1:18234)"},
		{"browser version", "Chrome/131.0.0.0 Safari/537.36 crashed", "Chrome/131.0.0.0 Safari/537.36 crashed"},
		{"time of day", "timed out at 12:00:05 after 600s", "timed out at 12:00:05 after 600s"},
		{"generation id digits", "generation 1234567890123 failed at 2160p", "generation 1234567890123 failed at 2160p"},
		{"non-luhn long number", "order 4111111111111112 not found", "order 4111111111111112 not found"},
		{"resolution and ratio", "out of memory at 3840x2160, 16:9, 20s", "out of memory at 3840x2160, 16:9, 20s"},
		{"semver", "app 3.4.1 on build 2026.11.28.1", "app 3.4.1 on build 2026.11.28.1"},
	}
	for _, c := range text {
		t.Run(c.name, func(t *testing.T) {
			if got := s.Text(c.in); got != c.want {
				t.Fatalf("Text(%q)\n got %q\nwant %q", c.in, got, c.want)
			}
		})
	}
	urls := []struct{ name, in, want string }{
		{"token param", "https://app.example.com/reset?token=9f8e7d6c5b&step=2", "https://app.example.com/reset?step=2&token=[redacted]"},
		{"email param", "https://app.example.com/invite?email=bob%40example.com", "https://app.example.com/invite?email=[redacted]"},
		{"userinfo", "https://bob:hunter2@app.example.com/", "https://app.example.com/"},
		{"clean url untouched", "https://app.example.com/create?quality=uhd&ratio=16:9", "https://app.example.com/create?quality=uhd&ratio=16:9"},
		{"no query", "https://app.example.com/gallery", "https://app.example.com/gallery"},
	}
	for _, c := range urls {
		t.Run(c.name, func(t *testing.T) {
			if got := s.URL(c.in); got != c.want {
				t.Fatalf("URL(%q)\n got %q\nwant %q", c.in, got, c.want)
			}
		})
	}
}

func TestScrubberTakesConfiguredPatterns(t *testing.T) {
	c := DefaultScrubConfig()
	c.Patterns = []string{`ACME-\d{6}`}
	s, err := NewScrubber(c)
	if err != nil {
		t.Fatal(err)
	}
	if got := s.Text("ticket ACME-123456 reopened"); got != "ticket [redacted] reopened" {
		t.Fatal(got)
	}
	c.Patterns = []string{`(unclosed`}
	if _, err := NewScrubber(c); err == nil {
		t.Fatal("a bad pattern must be refused")
	}
}

func TestPromptScrubberRemovesWhatPointsToAPerson(t *testing.T) {
	s, err := NewScrubber(DefaultScrubConfig())
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct{ name, in, want string }{
		{"email", "a birthday video for jane.doe@example.com", "a birthday video for [email]"},
		{"international phone", "call +1 415 555 0100 at the end", "call [phone] at the end"},
		{"local phone with parens", "text (415) 555-0100 please", "text [phone] please"},
		{"uk phone", "ring 07700 900123 now", "ring [phone] now"},
		{"url", "style of https://example.com/u/jane?x=1 in neon", "style of [url] in neon"},
		{"www url", "like www.janes-portfolio.net/reel", "like [url]"},
		{"luhn card", "card 4111 1111 1111 1111 on screen", "card [card] on screen"},
		{"card-like without luhn", "numbers 4111111111111112 floating", "numbers [number] floating"},
		{"order number", "order 20261130 arriving", "order [number] arriving"},
		{"card-like in groups", "digits 1234 5678 9012 3456 on a wall", "digits [number] on a wall"},
		{"iso date", "my birthday party on 1990-04-17 with cake", "my birthday party on [date] with cake"},
		{"day first date", "wedding 17/04/2021 in a garden", "wedding [date] in a garden"},
		{"uuid", "user 0190f3a1-6c2b-7e4d-9a8f-1b3c5d7e9f02 waving", "user [id] waving"},
		{"long hex", "hash deadbeefcafebabe1234 glowing", "hash [id] glowing"},
		{"mixed id", "employee AB12CD34EF with a badge", "employee [id] with a badge"},
		{"handle", "in the style of @jane_doe.art and @bob", "in the style of [handle] and [handle]"},
		{"whitespace folded", "  a   fox\n\tin snow ", "a fox in snow"},
		// must not change
		{"video words", "a 4K 3840x2160 16:9 clip, 8s at 60fps, 1080p, year 2026, mp4", "a 4K 3840x2160 16:9 clip, 8s at 60fps, 1080p, year 2026, mp4"},
		{"plain prompt", "a red fox running through fresh snow, golden hour", "a red fox running through fresh snow, golden hour"},
		{"short numbers", "3 cats and 12 dogs in 1999", "3 cats and 12 dogs in 1999"},
		{"time", "sunset at 18:30", "sunset at 18:30"},
		{"empty", "", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := s.Prompt(c.in); got != c.want {
				t.Fatalf("Prompt(%q)\n got %q\nwant %q", c.in, got, c.want)
			}
		})
	}
}
