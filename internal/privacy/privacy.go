// Package privacy owns the data-subject rights of the pipeline: the admin
// API (access, deletion, correction, opt-out/opt-in, status) on its own
// listener, the tombstones that keep a deleted subject deleted, the
// corrections the consumer applies to events still on the bus (correct.go),
// and the consent registry that ingest honours in addition to per-event
// consent.
//
// It lives in internal/ rather than sinks/ because it is not a sink: it
// spans ingest (the opt-out set, through collector.OptOuts), the consumer
// (the tombstone set, through consumer.Filter) and ClickHouse (the
// registries of migration 0004_privacy and deletions from events and
// errors), and only the telemetry binary assembles it. It knows neither
// HTTP ingest nor Kafka: the pipeline hands the Registry to both.
//
// The rollups_daily table holds no identifier (users is a uniq sketch of
// 64-bit hashes, see schema/migrations/0003_rollups.sql), nor does the
// anonymised prompt corpus (internal/corpus), so a deletion touches
// SubjectTables only: events, errors, the alias and group links
// (identity_links, group_members) and the subject's corrections.
package privacy

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// DevToken is the development admin token of the default and example
// config. The config refuses it unless dev is true.
const DevToken = "dev-admin-token-change-me"

// MinTokenLen is the shortest admin token accepted outside dev mode.
const MinTokenLen = 32

// maxSubjectLen bounds a subject id: the contract's max_id_len.
const maxSubjectLen = 128

// maxHeaderBytes bounds the admin API's request headers (431 above).
const maxHeaderBytes = 16 << 10

// maxBodyBytes bounds an admin request body.
const maxBodyBytes = 4 << 10

// Sentinel errors.
var (
	// ErrInvalidConfig wraps every configuration error.
	ErrInvalidConfig = errors.New("invalid admin config")
	// ErrBadSubject means a request named no subject, two, or a malformed one.
	ErrBadSubject = errors.New("bad subject")
	// ErrUnauthorized means a request carried no valid admin token.
	ErrUnauthorized = errors.New("missing or invalid admin token")
	// ErrStarted means Start was called twice.
	ErrStarted = errors.New("privacy service already started")
)

// Config configures the admin API and the registries (config key admin).
type Config struct {
	// Enabled serves the admin API. The registries (opt-outs honoured at
	// ingest, tombstones honoured by the consumer) run whenever the
	// process talks to ClickHouse. Default true.
	Enabled bool `mapstructure:"enabled"`
	// Listen is the admin API's TCP address; keep it private. Default
	// 127.0.0.1:8081.
	Listen string `mapstructure:"listen"`
	// Token is the bearer token every admin call must present. Outside dev
	// mode it must be at least 32 characters and not the development
	// token. Default DevToken.
	Token string `mapstructure:"token"`
	// RefreshInterval is how often the tombstone and opt-out sets are
	// reloaded from ClickHouse (changes made through this process apply at
	// once). Default 30s.
	RefreshInterval time.Duration `mapstructure:"refresh_interval"`
	// RequestTimeout bounds one admin call (a deletion waits for its
	// mutations). Default 5m.
	RequestTimeout time.Duration `mapstructure:"request_timeout"`
}

// DefaultConfig returns the documented defaults.
func DefaultConfig() Config {
	return Config{Enabled: true, Listen: "127.0.0.1:8081", Token: DevToken, RefreshInterval: 30 * time.Second, RequestTimeout: 5 * time.Minute}
}

// Validate names invalid fields by their config keys. Token strength
// depends on dev mode and is checked by CheckToken.
func (c Config) Validate() error {
	var errs []error
	add := func(field, rule string) {
		errs = append(errs, fmt.Errorf("%w: admin.%s: %s", ErrInvalidConfig, field, rule))
	}
	if c.Enabled {
		if _, _, err := net.SplitHostPort(c.Listen); err != nil {
			add("listen", "must be host:port")
		}
		if c.Token == "" {
			add("token", "required")
		}
	}
	if c.RefreshInterval <= 0 {
		add("refresh_interval", "must be a positive duration")
	}
	if c.RequestTimeout <= 0 {
		add("request_timeout", "must be a positive duration")
	}
	return errors.Join(errs...)
}

// CheckToken refuses, outside dev mode, a missing token, one shorter than
// MinTokenLen and the development token.
func (c Config) CheckToken(dev bool) error {
	if dev || !c.Enabled {
		return nil
	}
	switch {
	case c.Token == "":
		return fmt.Errorf("%w: admin.token: required when dev is false", ErrInvalidConfig)
	case c.Token == DevToken:
		return fmt.Errorf("%w: admin.token: the development token is refused when dev is false", ErrInvalidConfig)
	case len(c.Token) < MinTokenLen:
		return fmt.Errorf("%w: admin.token: must be at least %d characters when dev is false", ErrInvalidConfig, MinTokenLen)
	}
	return nil
}

// Tables names where the pipeline's data lives (from clickhouse.*).
type Tables struct {
	// Database holds every table. Required.
	Database string
	// Cluster, when set, means the tables are Distributed over <name>_local
	// tables; deletions then run ON CLUSTER against the local tables.
	Cluster string
}

func (t Tables) validate() error {
	for _, s := range []string{t.Database, t.Cluster} {
		if strings.IndexFunc(s, func(r rune) bool {
			return !(r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r)) || r > unicode.MaxASCII
		}) >= 0 {
			return fmt.Errorf("%w: database and cluster must be plain identifiers", ErrInvalidConfig)
		}
	}
	if t.Database == "" {
		return fmt.Errorf("%w: database required", ErrInvalidConfig)
	}
	return nil
}

// table is db.name (the Distributed table on a cluster).
func (t Tables) table(name string) string { return t.Database + "." + name }

// mutable is the table a mutation targets, with its ON CLUSTER clause.
func (t Tables) mutable(name string) string {
	if t.Cluster == "" {
		return t.Database + "." + name
	}
	return t.Database + "." + name + "_local ON CLUSTER " + t.Cluster
}

// Subject types: the identifier columns of events and errors.
const (
	SubjectUser      = "user_id"
	SubjectAnonymous = "anonymous_id"
)

// Subject is whom a request is about: a user_id or an anonymous_id.
type Subject struct {
	// Type is SubjectUser or SubjectAnonymous.
	Type string
	// ID is the identifier as stored.
	ID string
}

// NewSubject builds a subject from the two possible identifiers, exactly
// one of which must be set.
func NewSubject(userID, anonymousID string) (Subject, error) {
	var s Subject
	switch {
	case userID != "" && anonymousID != "":
		return s, fmt.Errorf("%w: give user_id or anonymous_id, not both", ErrBadSubject)
	case userID != "":
		s = Subject{Type: SubjectUser, ID: userID}
	case anonymousID != "":
		s = Subject{Type: SubjectAnonymous, ID: anonymousID}
	default:
		return s, fmt.Errorf("%w: user_id or anonymous_id required", ErrBadSubject)
	}
	if len(s.ID) > maxSubjectLen {
		return Subject{}, fmt.Errorf("%w: %s longer than %d bytes", ErrBadSubject, s.Type, maxSubjectLen)
	}
	if !utf8.ValidString(s.ID) || strings.IndexFunc(s.ID, unicode.IsControl) >= 0 {
		return Subject{}, fmt.Errorf("%w: %s must be printable UTF-8", ErrBadSubject, s.Type)
	}
	return s, nil
}

// Hash is the first 16 hex digits of the SHA-256 of the id: what audit
// logs show instead of the id.
func (s Subject) Hash() string {
	if s.ID == "" {
		return ""
	}
	sum := sha256.Sum256([]byte(s.ID))
	return hex.EncodeToString(sum[:8])
}
