package transform

import (
	"strings"
	"sync"

	"github.com/ua-parser/uap-go/uaparser"
	"golang.org/x/time/rate"

	"github.com/sora3web/telemetry/schema"
)

// Device classes written into schema.Device.Class.
const (
	DeviceDesktop = "desktop"
	DeviceMobile  = "mobile"
	DeviceTablet  = "tablet"
	DeviceBot     = "bot"
	DeviceOther   = "other"
)

// uaCache keeps parsed user agents. It holds two generations of at most
// size/2 entries each: lookups check both, inserts go to the current one,
// and when it fills the previous generation is dropped. Memory stays bounded
// and hot entries survive by being copied forward on a hit.
type uaCache struct {
	mu       sync.RWMutex
	half     int
	cur, old map[string]schema.Device
}

func newUACache(size int) *uaCache {
	half := max(size/2, 1)
	return &uaCache{half: half, cur: make(map[string]schema.Device, half)}
}

func (c *uaCache) get(ua string) (schema.Device, bool) {
	c.mu.RLock()
	d, ok := c.cur[ua]
	if ok {
		c.mu.RUnlock()
		return d, true
	}
	d, ok = c.old[ua]
	c.mu.RUnlock()
	if ok {
		c.put(ua, d)
	}
	return d, ok
}

func (c *uaCache) put(ua string, d schema.Device) {
	c.mu.Lock()
	if len(c.cur) >= c.half {
		c.old, c.cur = c.cur, make(map[string]schema.Device, c.half)
	}
	c.cur[ua] = d
	c.mu.Unlock()
}

// UAParser turns user-agent strings into schema.Device, behind a bounded
// cache. It is safe for concurrent use.
type UAParser struct {
	parser *uaparser.Parser
	cache  *uaCache
	// budget bounds cache misses parsed on the request path (nil: no bound).
	budget *rate.Limiter
	// onLookup, when set (SetObserver), is told the result of each lookup.
	onLookup func(result string)
}

// Results of a lookup, as told to the observer (SetObserver).
const (
	// LookupHit: the agent was cached.
	LookupHit = "hit"
	// LookupMiss: the agent was parsed and cached.
	LookupMiss = "miss"
	// LookupDeferred: not cached and over the parse budget; the device is
	// marked pending for the consumer to parse.
	LookupDeferred = "deferred"
)

// SetObserver makes every lookup call f with its result (LookupHit,
// LookupMiss or LookupDeferred), for metrics. Call it before use.
func (u *UAParser) SetObserver(f func(result string)) { u.onLookup = f }

// NewUAParser compiles the embedded uap-core regexes and makes a cache of
// cacheSize entries.
func NewUAParser(cacheSize int) (*UAParser, error) {
	p, err := uaparser.New(uaparser.WithCacheSize(1)) // our own cache sits in front
	if err != nil {
		return nil, err
	}
	return &UAParser{parser: p, cache: newUACache(cacheSize)}, nil
}

// SetBudget bounds the user agents parsed per second on a cache miss by
// Lookup (uap-go takes about a millisecond for one it has not seen); 0
// removes the bound. Call it before use.
func (u *UAParser) SetBudget(perSecond int) {
	u.budget = nil
	if perSecond > 0 {
		u.budget = rate.NewLimiter(rate.Limit(perSecond), perSecond)
	}
}

// Parse returns the device described by ua, parsing it on a cache miss
// whatever the budget (for work off the request path).
func (u *UAParser) Parse(ua string) schema.Device {
	d, _ := u.lookup(ua, false)
	return d
}

// Lookup returns the device described by ua, or false when ua is not
// cached and the parse budget of this second is spent: a flood of unique
// user agents then costs a map lookup each, and the caller marks the event
// for later enrichment.
func (u *UAParser) Lookup(ua string) (schema.Device, bool) {
	return u.lookup(ua, true)
}

func (u *UAParser) lookup(ua string, budgeted bool) (schema.Device, bool) {
	if d, ok := u.cache.get(ua); ok {
		u.report(LookupHit)
		return d, true
	}
	if budgeted && u.budget != nil && !u.budget.Allow() {
		u.report(LookupDeferred)
		return schema.Device{Pending: true}, false
	}
	u.report(LookupMiss)
	d := u.parse(ua)
	u.cache.put(strings.Clone(ua), d)
	return d, true
}

func (u *UAParser) report(result string) {
	if u.onLookup != nil {
		u.onLookup(result)
	}
}

func (u *UAParser) parse(ua string) schema.Device {
	if ua == "" {
		return schema.Device{Class: DeviceOther}
	}
	c := u.parser.Parse(ua)
	d := schema.Device{
		OS:             orEmpty(c.Os.Family),
		OSVersion:      version(c.Os.Major, c.Os.Minor),
		Browser:        orEmpty(c.UserAgent.Family),
		BrowserVersion: version(c.UserAgent.Major, c.UserAgent.Minor),
	}
	d.Class = deviceClass(ua, c)
	d.IsBot = d.Class == DeviceBot
	return d
}

func orEmpty(family string) string {
	if family == "Other" {
		return ""
	}
	return family
}

func version(major, minor string) string {
	switch {
	case major == "":
		return ""
	case minor == "":
		return major
	default:
		return major + "." + minor
	}
}

var botWords = []string{"bot", "crawler", "spider", "slurp", "headlesschrome", "lighthouse", "curl/", "wget/", "python-requests", "go-http-client"}

// deviceClass decides desktop, mobile, tablet or bot from the parse and the
// raw string (uap-core has no device class of its own).
func deviceClass(ua string, c *uaparser.Client) string {
	lower := strings.ToLower(ua)
	if c.Device.Family == "Spider" {
		return DeviceBot
	}
	for _, w := range botWords {
		if strings.Contains(lower, w) {
			return DeviceBot
		}
	}
	dev := strings.ToLower(c.Device.Family + " " + c.Device.Model)
	switch {
	case strings.Contains(dev, "ipad"), strings.Contains(dev, "tablet"), strings.Contains(lower, "tablet"),
		strings.Contains(lower, "android") && !strings.Contains(lower, "mobile"):
		return DeviceTablet
	}
	switch c.Os.Family {
	case "iOS", "Android", "Windows Phone", "BlackBerry OS", "KaiOS", "HarmonyOS":
		return DeviceMobile
	case "Windows", "Mac OS X", "Linux", "Ubuntu", "Chrome OS", "ChromeOS", "Fedora", "FreeBSD", "Debian":
		return DeviceDesktop
	}
	if strings.Contains(lower, "mobile") {
		return DeviceMobile
	}
	return DeviceOther
}
