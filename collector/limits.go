package collector

import (
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// RateLimit is a token bucket: Rate tokens per second, up to Burst at once.
type RateLimit struct {
	// Rate is the sustained requests per second; 0 disables the limit.
	Rate float64 `mapstructure:"rate"`
	// Burst is how many requests may come at once above the rate.
	Burst int `mapstructure:"burst"`
}

func (r RateLimit) validate(field string) error {
	if r.Rate < 0 || (r.Rate > 0 && r.Burst <= 0) {
		return fmt.Errorf("ingest.%s: rate must be >= 0 and burst > 0 when rate is set", field)
	}
	return nil
}

// ErrRateLimited means a write key or client IP sent faster than allowed.
var ErrRateLimited = errors.New("rate limit exceeded")

// ErrOverloaded means too many requests, or too many bytes of them, are
// in flight.
var ErrOverloaded = errors.New("overloaded")

// inflight admits requests while both their count and their bodies' bytes
// stay within bounds (ingest.max_inflight, ingest.max_inflight_bytes).
type inflight struct {
	maxN     int
	maxBytes int64

	mu    sync.Mutex
	n     int
	bytes int64
}

// acquire admits a request whose body is size bytes, or reports that
// admitting it would exceed a bound.
func (l *inflight) acquire(size int64) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.n+1 > l.maxN || l.bytes+size > l.maxBytes {
		return false
	}
	l.n++
	l.bytes += size
	return true
}

// release ends an admitted request of size bytes.
func (l *inflight) release(size int64) {
	l.mu.Lock()
	l.n--
	l.bytes -= size
	l.mu.Unlock()
}

// limiterSet keeps one token bucket per key, bounded to about size keys by
// two generations (idle keys age out).
type limiterSet struct {
	limit    RateLimit
	mu       sync.Mutex
	half     int
	cur, old map[string]*rate.Limiter
}

func newLimiterSet(l RateLimit, size int) *limiterSet {
	if l.Rate <= 0 {
		return nil
	}
	return &limiterSet{limit: l, half: max(size/2, 1), cur: map[string]*rate.Limiter{}}
}

// allow takes a token for key; when none is left it returns how long
// until one is.
func (s *limiterSet) allow(key string, now time.Time) (bool, time.Duration) {
	if s == nil {
		return true, 0
	}
	s.mu.Lock()
	l, ok := s.cur[key]
	if !ok {
		if l, ok = s.old[key]; !ok {
			l = rate.NewLimiter(rate.Limit(s.limit.Rate), s.limit.Burst)
		}
		if len(s.cur) >= s.half {
			s.old, s.cur = s.cur, make(map[string]*rate.Limiter, s.half)
		}
		s.cur[key] = l
	}
	s.mu.Unlock()
	r := l.ReserveN(now, 1)
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return false, d
	}
	return true, 0
}

// retryAfter formats a wait as whole seconds, at least 1.
func retryAfter(d time.Duration) string {
	return strconv.Itoa(max(1, int(math.Ceil(d.Seconds()))))
}

// tooMany answers 429 with Retry-After.
func (s *Server) tooMany(w http.ResponseWriter, r *http.Request, wait time.Duration, what string) {
	s.refused(http.StatusTooManyRequests)
	w.Header().Set("Retry-After", retryAfter(wait))
	s.answer(w, r, http.StatusTooManyRequests, &Response{Error: fmt.Sprintf("%s: %s", ErrRateLimited, what)})
}
