package corpus

import (
	"errors"
	"fmt"
	"time"
)

// ErrInvalidConfig wraps every configuration error.
var ErrInvalidConfig = errors.New("invalid corpus config")

// Config configures the job that fills the anonymised prompt corpus
// (config key corpus). The corpus's retention is
// retention.anonymized_prompts_days.
type Config struct {
	// Enabled runs the job in every process that runs the consumer. Each
	// day is written with one deduplication token, so two processes
	// filling the same day store it once. Default true.
	Enabled bool `mapstructure:"enabled"`
	// K is the least number of distinct users (user_id, else
	// anonymous_id) who must have sent a prompt, after scrubbing and
	// folding case and whitespace, on one UTC day for it to enter the
	// corpus; rarer prompts are held back. Default 5; at least 2.
	K int `mapstructure:"k"`
	// Interval is how often the job looks for days to fill. Default 1h.
	Interval time.Duration `mapstructure:"interval"`
	// Lag is how long after a UTC day ends the job waits before filling
	// it, so late events (consumer lag, outcomes of generations started
	// before midnight) are in. Events stored later than this after their
	// day ended are not in the corpus. Default 2h.
	Lag time.Duration `mapstructure:"lag"`
}

// DefaultConfig returns the documented defaults.
func DefaultConfig() Config {
	return Config{Enabled: true, K: 5, Interval: time.Hour, Lag: 2 * time.Hour}
}

// Validate names invalid fields by their config keys. minPromptDays is the
// shortest prompt retention (retention.*.prompt_days): a day must be
// filled before a TTL clears its first prompt, so one day, the lag and an
// interval must fit in it with a day to spare for a stopped process.
func (c Config) Validate(minPromptDays int) error {
	var errs []error
	add := func(field, rule string) {
		errs = append(errs, fmt.Errorf("%w: corpus.%s: %s", ErrInvalidConfig, field, rule))
	}
	if c.K < 2 {
		add("k", "must be at least 2")
	}
	if c.Interval <= 0 {
		add("interval", "must be > 0")
	}
	if c.Lag < 0 {
		add("lag", "must be >= 0")
	}
	if c.Enabled && minPromptDays > 0 && 24*time.Hour+c.Lag+c.Interval+24*time.Hour > time.Duration(minPromptDays)*24*time.Hour {
		add("lag", fmt.Sprintf("1 day + lag + interval must leave a day before the shortest prompt retention (%d days, retention.*.prompt_days), or prompts are cleared before the corpus reads them", minPromptDays))
	}
	return errors.Join(errs...)
}
