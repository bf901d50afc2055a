package wal

import (
	"errors"
	"fmt"
	"regexp"
	"time"
)

// Fsync policies, the values of Config.Fsync.
const (
	// FsyncAlways fsyncs before Append returns; concurrent appends share
	// one fsync.
	FsyncAlways = "always"
	// FsyncInterval fsyncs every Config.FsyncInterval; Append waits for the
	// next such fsync.
	FsyncInterval = "interval"
)

// Defaults applied by Open to zero-valued Config fields.
const (
	DefaultSegmentBytes  int64         = 64 << 20
	DefaultMaxBytes      int64         = 1 << 30
	DefaultFsync                       = FsyncAlways
	DefaultFsyncInterval time.Duration = 10 * time.Millisecond
)

// MaxRecordBytes bounds one record's payload. Append refuses larger payloads
// and the decoder treats a larger length field as damage.
const MaxRecordBytes = 16 << 20

// minSegmentBytes is the smallest SegmentBytes accepted.
const minSegmentBytes = 1 << 10

// Config configures a Log. Zero fields take the defaults documented on each
// field; start from DefaultConfig to see them.
type Config struct {
	// Dir is the directory owned by the log; it is created if missing.
	// Required.
	Dir string `mapstructure:"dir"`
	// SegmentBytes is the size at which the active segment is sealed and a
	// new one started. One Append's records are never split across
	// segments, so a segment can exceed it by up to one Append. Default
	// 64 MiB.
	SegmentBytes int64 `mapstructure:"segment_bytes"`
	// MaxBytes bounds the total size of all segments; an Append that would
	// exceed it fails with ErrFull. Must be at least SegmentBytes. Default
	// 1 GiB.
	MaxBytes int64 `mapstructure:"max_bytes"`
	// Fsync is the durability policy: "always" or "interval". Default
	// "always".
	Fsync string `mapstructure:"fsync"`
	// FsyncInterval is the period of the fsync under the "interval"
	// policy. Default 10ms.
	FsyncInterval time.Duration `mapstructure:"fsync_interval"`
	// Cursors names cursors that must exist; Open creates the missing ones
	// at the start of the log. Cursors already persisted in the directory
	// are registered too.
	Cursors []string `mapstructure:"cursors"`
	// RepairCorrupt makes Open cut damaged sealed segments at the damage
	// (losing the records after it in that segment) instead of failing
	// with ErrCorrupt. Default false.
	RepairCorrupt bool `mapstructure:"repair_corrupt"`
}

// DefaultConfig returns a Config with every default filled in except Dir.
func DefaultConfig() Config {
	return Config{
		SegmentBytes:  DefaultSegmentBytes,
		MaxBytes:      DefaultMaxBytes,
		Fsync:         DefaultFsync,
		FsyncInterval: DefaultFsyncInterval,
	}
}

// withDefaults returns c with zero fields replaced by their defaults.
func (c Config) withDefaults() Config {
	if c.SegmentBytes == 0 {
		c.SegmentBytes = DefaultSegmentBytes
	}
	if c.MaxBytes == 0 {
		c.MaxBytes = DefaultMaxBytes
	}
	if c.Fsync == "" {
		c.Fsync = DefaultFsync
	}
	if c.FsyncInterval == 0 {
		c.FsyncInterval = DefaultFsyncInterval
	}
	return c
}

var cursorNameRE = regexp.MustCompile(`^[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}$`)

func validCursorName(name string) error {
	if !cursorNameRE.MatchString(name) {
		return fmt.Errorf("cursor name %q: want 1-128 characters of [A-Za-z0-9._-], not starting with '.'", name)
	}
	return nil
}

// Validate reports every invalid field, naming it. Zero values are valid:
// they mean the default.
func (c Config) Validate() error {
	var errs []error
	if c.Dir == "" {
		errs = append(errs, errors.New("wal: dir: required"))
	}
	d := c.withDefaults()
	if d.SegmentBytes < minSegmentBytes {
		errs = append(errs, fmt.Errorf("wal: segment_bytes: %d is below the minimum %d", c.SegmentBytes, minSegmentBytes))
	}
	if d.MaxBytes < d.SegmentBytes {
		errs = append(errs, fmt.Errorf("wal: max_bytes: %d is below segment_bytes %d", d.MaxBytes, d.SegmentBytes))
	}
	switch d.Fsync {
	case FsyncAlways, FsyncInterval:
	default:
		errs = append(errs, fmt.Errorf("wal: fsync: %q: want %q or %q", c.Fsync, FsyncAlways, FsyncInterval))
	}
	if d.FsyncInterval < 0 {
		errs = append(errs, fmt.Errorf("wal: fsync_interval: %v: must be positive", c.FsyncInterval))
	}
	seen := map[string]bool{}
	for _, name := range c.Cursors {
		if err := validCursorName(name); err != nil {
			errs = append(errs, fmt.Errorf("wal: cursors: %w", err))
		} else if seen[name] {
			errs = append(errs, fmt.Errorf("wal: cursors: %q listed twice", name))
		}
		seen[name] = true
	}
	return errors.Join(errs...)
}
