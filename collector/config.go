package collector

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/sora3web/telemetry/schema"
	"github.com/sora3web/telemetry/transform"
)

// Config configures the ingest HTTP server. Start from DefaultConfig.
type Config struct {
	// Listen is the TCP address the ingest server binds. Default 127.0.0.1:8080.
	Listen string `mapstructure:"listen"`
	// WriteKeys lists the accepted write keys, each naming a source. A request
	// without one of these keys is refused with 401. Required.
	WriteKeys []WriteKey `mapstructure:"write_keys"`
	// CORSOrigins lists origins allowed to call the endpoints from a browser
	// ("*" allows any). Default: none (no CORS headers).
	CORSOrigins []string `mapstructure:"cors_origins"`
	// TrustedProxies lists CIDR prefixes of proxies whose X-Forwarded-For /
	// X-Real-IP headers are believed. Default: none (the peer address is used).
	TrustedProxies []string `mapstructure:"trusted_proxies"`
	// HonorDNT treats a "DNT: 1" request header as an opt-out. Default true.
	HonorDNT bool `mapstructure:"honor_dnt"`
	// HonorGPC treats a "Sec-GPC: 1" request header as an opt-out. Default true.
	HonorGPC bool `mapstructure:"honor_gpc"`
	// MaxEventBytes bounds one event's encoded JSON, in bytes. Default 32768.
	MaxEventBytes int `mapstructure:"max_event_bytes"`
	// MaxRequestBytes bounds a request body both before and after
	// decompression, in bytes; larger bodies get 413. Default 524288.
	MaxRequestBytes int `mapstructure:"max_request_bytes"`
	// MaxBatchEvents bounds the number of events of one request; larger
	// batches get 413. Default 500.
	MaxBatchEvents int `mapstructure:"max_batch_events"`
	// MaxDepth bounds JSON nesting depth of one event. Default 8.
	MaxDepth int `mapstructure:"max_depth"`
	// Limits bounds field lengths; see schema.Limits.
	Limits schema.Limits `mapstructure:"limits"`
	// Scrub configures what is removed from error messages, stacks and URLs
	// before publishing.
	Scrub transform.ScrubConfig `mapstructure:"scrub"`
	// UACacheSize is the number of parsed user agents kept. Default 10000.
	UACacheSize int `mapstructure:"ua_cache_size"`
	// UAParseBudget bounds user agents parsed per second on the request
	// path on a cache miss; above it events are marked device.pending and
	// the consumer parses them. 0 means no bound. Default 250 (uap-go takes
	// about 0.8 ms per unseen agent here, so 250/s costs a fifth of a core).
	UAParseBudget int `mapstructure:"ua_parse_budget"`
	// PublishTimeout bounds how long a request waits for Kafka to
	// acknowledge its events before it is answered 503. Default 5s.
	PublishTimeout time.Duration `mapstructure:"publish_timeout"`
	// RetryAfter is the Retry-After value sent with 503 and 429. Default 5s.
	RetryAfter time.Duration `mapstructure:"retry_after"`
	// ReadHeaderTimeout bounds reading request headers. Default 5s.
	ReadHeaderTimeout time.Duration `mapstructure:"read_header_timeout"`
	// ReadTimeout bounds reading a whole request. Default 15s.
	ReadTimeout time.Duration `mapstructure:"read_timeout"`
	// MaxHeaderBytes bounds request header size. Default 16384.
	MaxHeaderBytes int `mapstructure:"max_header_bytes"`
	// ShutdownTimeout bounds the drain of in-flight requests at a graceful
	// stop, within serve.shutdown_timeout (which bounds the whole stop).
	// Default 15s.
	ShutdownTimeout time.Duration `mapstructure:"shutdown_timeout"`
	// RateLimitPerKey bounds requests per second per write key (429 with
	// Retry-After above it). Default 5000/s, burst 10000.
	RateLimitPerKey RateLimit `mapstructure:"rate_limit_per_key"`
	// RateLimitPerIP bounds requests per second per client IP. Default
	// 100/s, burst 200. Rate 0 disables it (load tests from one host).
	RateLimitPerIP RateLimit `mapstructure:"rate_limit_per_ip"`
	// RateLimitExempt lists CIDR prefixes exempt from the per-IP limit
	// (a local load generator, a health checker). Default loopback only.
	RateLimitExempt []string `mapstructure:"rate_limit_exempt"`
	// MaxInFlight bounds requests being handled at once; above it ingest
	// sheds load with 503 and Retry-After. Default 2048.
	MaxInFlight int `mapstructure:"max_inflight"`
	// MaxInFlightBytes bounds the bodies of the requests being handled at
	// once, by their Content-Length (max_request_bytes for a body of
	// unknown length); above it ingest sheds load with 503 and
	// Retry-After. It is what bounds memory (a request holds about three
	// times its body while handled), while letting many small requests
	// ride out a stall of the log's disk: at 1,000 requests of 50 events a
	// second, a 400 ms fsync holds 400 of them. Default 134217728
	// (128 MiB, the bodies of 256 requests of max_request_bytes).
	MaxInFlightBytes int64 `mapstructure:"max_inflight_bytes"`
	// MaxConnections bounds open client connections. Default 10000.
	MaxConnections int `mapstructure:"max_connections"`
	// TLSCertFile and TLSKeyFile, both set, serve HTTPS. Default: plain HTTP
	// (put a TLS-terminating proxy in front).
	TLSCertFile string `mapstructure:"tls_cert_file"`
	// TLSKeyFile is the private key of TLSCertFile.
	TLSKeyFile string `mapstructure:"tls_key_file"`
}

// WriteKey is a secret a client presents, and the source it names.
type WriteKey struct {
	// Key is the secret. At least 16 characters.
	Key string `mapstructure:"key"`
	// Source names where events with this key come from (e.g. "web").
	Source string `mapstructure:"source"`
}

// DefaultConfig returns the documented defaults. It has no write keys.
func DefaultConfig() Config {
	return Config{
		Listen:            "127.0.0.1:8080",
		CORSOrigins:       []string{},
		TrustedProxies:    []string{},
		HonorDNT:          true,
		HonorGPC:          true,
		MaxEventBytes:     32 << 10,
		MaxRequestBytes:   512 << 10,
		MaxBatchEvents:    500,
		MaxDepth:          8,
		Limits:            schema.DefaultLimits(),
		Scrub:             transform.DefaultScrubConfig(),
		UACacheSize:       10000,
		UAParseBudget:     250,
		PublishTimeout:    5 * time.Second,
		RetryAfter:        5 * time.Second,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       15 * time.Second,
		MaxHeaderBytes:    16 << 10,
		ShutdownTimeout:   15 * time.Second,
		RateLimitPerKey:   RateLimit{Rate: 5000, Burst: 10000},
		RateLimitPerIP:    RateLimit{Rate: 100, Burst: 200},
		RateLimitExempt:   []string{"127.0.0.0/8", "::1/128"},
		MaxInFlight:       2048,
		MaxInFlightBytes:  128 << 20,
		MaxConnections:    10000,
	}
}

// Validate reports every invalid field, each named by its config key and
// the rule it breaks (errors.Join).
func (c Config) Validate() error {
	var errs []error
	add := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("ingest.%s: "+format, append([]any{field}, args...)...))
	}
	if c.Listen == "" {
		add("listen", "required")
	}
	if len(c.WriteKeys) == 0 {
		add("write_keys", "at least one write key is required")
	}
	seen := map[string]bool{}
	for i, k := range c.WriteKeys {
		if len(k.Key) < 16 {
			add(fmt.Sprintf("write_keys[%d].key", i), "must be at least 16 characters")
		}
		if k.Source == "" {
			add(fmt.Sprintf("write_keys[%d].source", i), "required")
		}
		if seen[k.Key] {
			add(fmt.Sprintf("write_keys[%d].key", i), "duplicate key")
		}
		seen[k.Key] = true
	}
	for i, p := range c.TrustedProxies {
		if _, err := parsePrefix(p); err != nil {
			add(fmt.Sprintf("trusted_proxies[%d]", i), "must be an IP or CIDR prefix: %v", err)
		}
	}
	for i, p := range c.RateLimitExempt {
		if _, err := parsePrefix(p); err != nil {
			add(fmt.Sprintf("rate_limit_exempt[%d]", i), "must be an IP or CIDR prefix: %v", err)
		}
	}
	if c.MaxEventBytes <= 0 || c.MaxEventBytes > c.MaxRequestBytes {
		add("max_event_bytes", "must be > 0 and <= max_request_bytes")
	}
	if c.MaxRequestBytes <= 0 {
		add("max_request_bytes", "must be > 0")
	}
	if c.MaxBatchEvents <= 0 {
		add("max_batch_events", "must be > 0")
	}
	if c.MaxDepth < 3 {
		add("max_depth", "must be >= 3 (the contract nests 3 deep)")
	}
	if err := c.Limits.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("ingest.limits.%w", err))
	}
	if err := c.Scrub.Validate(); err != nil {
		errs = append(errs, err)
	}
	if c.UACacheSize <= 0 {
		add("ua_cache_size", "must be > 0")
	}
	if c.UAParseBudget < 0 {
		add("ua_parse_budget", "must be >= 0")
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"publish_timeout", c.PublishTimeout}, {"retry_after", c.RetryAfter},
		{"read_header_timeout", c.ReadHeaderTimeout}, {"read_timeout", c.ReadTimeout},
		{"shutdown_timeout", c.ShutdownTimeout},
	} {
		if d.v <= 0 {
			add(d.name, "must be a positive duration")
		}
	}
	if c.MaxHeaderBytes < 1024 {
		add("max_header_bytes", "must be >= 1024")
	}
	for _, err := range []error{c.RateLimitPerKey.validate("rate_limit_per_key"), c.RateLimitPerIP.validate("rate_limit_per_ip")} {
		if err != nil {
			errs = append(errs, err)
		}
	}
	if c.MaxInFlight <= 0 {
		add("max_inflight", "must be > 0")
	}
	if c.MaxInFlightBytes < int64(c.MaxRequestBytes) {
		add("max_inflight_bytes", "must be >= max_request_bytes")
	}
	if c.MaxConnections <= 0 {
		add("max_connections", "must be > 0")
	}
	if (c.TLSCertFile == "") != (c.TLSKeyFile == "") {
		add("tls_cert_file", "tls_cert_file and tls_key_file must be set together")
	}
	return errors.Join(errs...)
}

func parsePrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		return netip.ParsePrefix(s)
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}
