// Package gen makes realistic telemetry events for load runs, benchmarks
// and seeded test data: plans, qualities, resolutions and aspect ratios in
// plausible proportions, real user-agent strings, generation lifecycles
// with failures and downloads, page views and client errors. It is
// deterministic for a given seed. It must not do I/O.
package gen

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"time"

	"github.com/sora3web/telemetry/schema"
)

// UserAgents are real user-agent strings of current browsers, weighted by
// rough market share through repetition in Generator.
var UserAgents = []string{
	"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
	"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.0.0 Safari/537.36",
	"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
	"Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
	"Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.6778.81 Mobile Safari/537.36",
	"Mozilla/5.0 (Macintosh; Intel Mac OS X 14.7; rv:133.0) Gecko/20100101 Firefox/133.0",
	"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Edg/131.0.2903.70",
	"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15",
	"Mozilla/5.0 (iPad; CPU OS 17_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.6 Mobile/15E148 Safari/604.1",
	"Mozilla/5.0 (Linux; Android 14; SAMSUNG SM-S921B) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/26.0 Chrome/122.0.0.0 Mobile Safari/537.36",
	"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
	"Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0",
	"Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
}

var uaWeights = []int{22, 10, 8, 16, 12, 4, 8, 6, 4, 5, 2, 2, 1}

var prompts = []string{
	"a red fox running through fresh snow at dawn, cinematic, 35mm",
	"drone shot over a neon city in the rain, night, reflections",
	"a ceramic teapot morphing into a hummingbird, studio lighting",
	"time-lapse of clouds over the Dolomites, golden hour",
	"an astronaut walking a dog on the moon, playful, pastel colours",
	"macro shot of ink drops blooming in water, slow motion",
	"a cozy cabin interior with a crackling fire, snow outside the window",
	"surfer riding a giant wave, underwater view, 4k detail",
	"paper origami cranes flying over Kyoto temples, spring",
	"product shot of a sneaker rotating on a pedestal, soft shadows",
}

var models = []string{"v3", "v3-turbo", "v2.5"}

// errorCodes and their messages, as the web client reports them.
var errorCodes = []struct{ code, message string }{
	{"GPU_OOM", "generation failed: out of GPU memory at the requested resolution"},
	{"TIMEOUT", "generation timed out after 600s"},
	{"CONTENT_POLICY", "prompt rejected by the content policy"},
	{"QUEUE_FULL", "the render queue is full, try again later"},
	{"NETWORK", "Failed to fetch"},
}

var clientErrors = []struct{ code, message, stack string }{
	{"TypeError", "Cannot read properties of undefined (reading 'duration')",
		"TypeError: Cannot read properties of undefined (reading 'duration')\n    at Player.seek (https://app.example.com/assets/player-3f2a.js:1:18234)\n    at HTMLVideoElement.<anonymous> (https://app.example.com/assets/app-9c1d.js:2:4411)"},
	{"ChunkLoadError", "Loading chunk 412 failed.",
		"ChunkLoadError: Loading chunk 412 failed.\n    at __webpack_require__.f.j (https://app.example.com/assets/runtime-1b2c.js:1:3011)"},
	{"QuotaExceededError", "Failed to execute 'setItem' on 'Storage': Setting the value exceeded the quota.",
		"QuotaExceededError: Failed to execute 'setItem' on 'Storage'\n    at saveDraft (https://app.example.com/assets/editor-77aa.js:1:9921)"},
}

// Generator produces events. It is not safe for concurrent use; give each
// goroutine its own.
type Generator struct {
	r     *rand.Rand
	users int
	// Now gives the occurrence time of generated events. Default time.Now.
	Now func() time.Time
	// UniqueUA makes every event carry a never-seen user agent (adversarial
	// load against the UA parser).
	UniqueUA bool
	seq      uint64
}

// New makes a generator over a population of users, deterministic for seed.
func New(seed uint64, users int) *Generator {
	return &Generator{r: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), users: max(users, 1), Now: time.Now}
}

func pick[T any](r *rand.Rand, xs []T) T { return xs[r.IntN(len(xs))] }

func weighted(r *rand.Rand, weights []int) int {
	total := 0
	for _, w := range weights {
		total += w
	}
	n := r.IntN(total)
	for i, w := range weights {
		if n < w {
			return i
		}
		n -= w
	}
	return len(weights) - 1
}

// uuid4 makes a random version-4 UUID from the generator's source.
func (g *Generator) uuid4() string {
	a, b := g.r.Uint64(), g.r.Uint64()
	a = (a &^ (0xf << 12)) | (4 << 12)
	b = (b &^ (0x3 << 62)) | (0x2 << 62)
	return fmt.Sprintf("%08x-%04x-%04x-%04x-%012x", a>>32, (a>>16)&0xffff, a&0xffff, b>>48, b&0xffffffffffff)
}

// User is one simulated user and the envelope fields their events share.
type User struct {
	UserID, AnonymousID, SessionID, Plan, UserAgent string
}

// User picks a user from the population: 20% are signed-in pro users.
func (g *Generator) User() User {
	n := g.r.IntN(g.users)
	u := User{AnonymousID: fmt.Sprintf("anon-%06d", n), Plan: "free", SessionID: fmt.Sprintf("sess-%06d-%d", n, g.r.IntN(4))}
	if n%5 == 0 {
		u.Plan = "pro"
	}
	if n%3 != 2 {
		u.UserID = fmt.Sprintf("user-%06d", n)
	}
	if g.UniqueUA {
		g.seq++
		u.UserAgent = fmt.Sprintf("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.%d.%d Safari/537.36", g.seq/1000, g.seq%1000)
	} else {
		u.UserAgent = UserAgents[weighted(g.r, uaWeights)]
	}
	return u
}

var (
	qualityW    = []int{35, 30, 25, 10}      // standard fast pro uhd
	resolutionW = []int{8, 5, 30, 35, 8, 14} // 480p 540p 720p 1080p 1440p 2160p
	aspectW     = []int{45, 30, 12, 4, 3, 6}
	dims        = map[string][2]int{"480p": {854, 480}, "540p": {960, 540}, "720p": {1280, 720}, "1080p": {1920, 1080}, "1440p": {2560, 1440}, "2160p": {3840, 2160}}
)

// Event makes one event of a realistic mix: mostly generation lifecycle
// events, page views and a few errors.
func (g *Generator) Event() schema.Event {
	u := g.User()
	types := []string{schema.TypeGenerationRequested, schema.TypeGenerationCompleted, schema.TypeGenerationFailed,
		schema.TypeVideoDownloaded, schema.TypePageView, schema.TypeSessionStart, schema.TypeSettingsChanged, schema.TypeClientError}
	typ := types[weighted(g.r, []int{25, 21, 3, 12, 25, 8, 3, 3})]
	return g.EventOf(typ, u)
}

// EventOf makes one event of the given type for user u.
func (g *Generator) EventOf(typ string, u User) schema.Event {
	now := g.Now().UTC()
	consent := g.r.IntN(20) != 0 // 5% opt out
	ev := schema.Event{
		SchemaVersion: schema.Version,
		EventID:       g.uuid4(),
		Type:          typ,
		OccurredAt:    now.Add(-time.Duration(g.r.IntN(2000)) * time.Millisecond),
		SentAt:        now,
		AnonymousID:   u.AnonymousID,
		UserID:        u.UserID,
		SessionID:     u.SessionID,
		Plan:          u.Plan,
		Consent:       schema.Consent{Analytics: &consent},
		Context: schema.Context{
			PageURL:    "https://app.example.com/create",
			Referrer:   pick(g.r, []string{"", "https://www.google.com/", "https://twitter.com/", "https://www.youtube.com/"}),
			Locale:     pick(g.r, []string{"en-US", "en-GB", "de-DE", "ja-JP", "pt-BR", "fr-FR"}),
			Screen:     pick(g.r, []schema.Screen{{Width: 1920, Height: 1080}, {Width: 2560, Height: 1440}, {Width: 390, Height: 844}, {Width: 1440, Height: 900}}),
			AppVersion: pick(g.r, []string{"3.4.1", "3.4.0", "3.3.9"}),
			UserAgent:  u.UserAgent,
		},
	}
	p := &ev.Properties
	gen := func() {
		p.Quality = schema.Qualities[weighted(g.r, qualityW)]
		if u.Plan == "free" && (p.Quality == "pro" || p.Quality == "uhd") {
			p.Quality = "fast"
		}
		p.Resolution = schema.Resolutions[weighted(g.r, resolutionW)]
		if p.Quality == "uhd" {
			p.Resolution = "2160p"
		}
		p.AspectRatio = schema.AspectRatios[weighted(g.r, aspectW)]
		d := dims[p.Resolution]
		p.Width, p.Height = d[0], d[1]
		if p.AspectRatio == "9:16" || p.AspectRatio == "3:4" {
			p.Width, p.Height = p.Height, p.Width
		}
		p.DurationS = float64(pick(g.r, []int{4, 5, 5, 8, 8, 10, 12, 15, 20}))
		p.Model = pick(g.r, models)
		p.GenerationID = g.uuid4()
	}
	switch typ {
	case schema.TypeGenerationRequested:
		gen()
		p.Prompt = pick(g.r, prompts)
	case schema.TypeGenerationCompleted:
		gen()
		base := map[string]float64{"fast": 15000, "standard": 40000, "pro": 90000, "uhd": 240000}[p.Quality]
		p.LatencyMS = int64(base * math.Exp(g.r.NormFloat64()*0.35) * p.DurationS / 8)
	case schema.TypeGenerationFailed:
		gen()
		e := pick(g.r, errorCodes)
		p.ErrorCode, p.ErrorMessage = e.code, e.message
	case schema.TypeVideoDownloaded:
		p.Format = pick(g.r, []string{"mp4", "mp4", "mp4", "webm", "gif", "mov"})
		p.Quality = schema.Qualities[weighted(g.r, qualityW)]
		p.GenerationID = g.uuid4()
	case schema.TypePageView:
		ev.Context.PageURL = pick(g.r, []string{"https://app.example.com/", "https://app.example.com/create", "https://app.example.com/gallery", "https://app.example.com/pricing", "https://app.example.com/settings"})
	case schema.TypeSettingsChanged:
		p.Setting, p.Value = pick(g.r, []string{"default_quality", "default_aspect_ratio", "theme"}), pick(g.r, []string{"pro", "16:9", "dark"})
	case schema.TypeClientError:
		e := pick(g.r, clientErrors)
		p.ErrorCode, p.ErrorMessage, p.ErrorStack = e.code, e.message, e.stack
	}
	return ev
}

// Enriched returns the next event as the collector publishes it, received
// at now: a desktop Chrome on Windows, the user agent parsed and dropped,
// the IP anonymised.
func (g *Generator) Enriched(now time.Time) schema.Enriched {
	out := schema.Enriched{Event: g.Event(), ReceivedAt: now, Timestamp: now, Source: "web", IP: "203.0.113.0",
		Device: schema.Device{Class: "desktop", OS: "Windows", OSVersion: "10", Browser: "Chrome", BrowserVersion: "131.0"}}
	out.Context.UserAgent = ""
	return out
}

// EnrichedSize returns the average size in bytes of n generated events as
// the collector publishes them (enriched, user agent parsed and dropped),
// for sizing broker benchmarks beside the collector's: the same bytes.
func EnrichedSize(n int) int {
	g := New(1, 10000)
	total := 0
	for range n {
		b, err := json.Marshal(g.Enriched(time.Now()))
		if err != nil {
			panic(fmt.Sprintf("gen: marshalling a generated event: %v", err)) // generated events always marshal
		}
		total += len(b)
	}
	return total / max(n, 1)
}
