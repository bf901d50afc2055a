package migrations

import (
	"errors"
	"fmt"
	"strings"
)

// Tier is the retention of one plan's events, in days.
type Tier struct {
	// EventsDays is how long raw events are kept.
	EventsDays int `mapstructure:"events_days"`
	// PromptDays is how long the prompt is kept; after it the column is
	// reset to ''. At most EventsDays.
	PromptDays int `mapstructure:"prompt_days"`
}

// Retention is the retention config (config key retention), rendered into
// TTL clauses by Statements.
type Retention struct {
	// Free is the free plan's retention. Default 30 days, prompt 7.
	Free Tier `mapstructure:"free"`
	// Pro is the pro plan's retention. Default 395 days, prompt 90.
	Pro Tier `mapstructure:"pro"`
	// ErrorsDays is how long rows of the errors table are kept. Default 30.
	ErrorsDays int `mapstructure:"errors_days"`
	// RollupsDays is how long daily rollups are kept. Default 1095 (3 years).
	RollupsDays int `mapstructure:"rollups_days"`
	// AnonymizedPromptsDays is how long rows of the anonymised prompt
	// corpus (prompt_corpus) are kept, by their day. Default 1095 (3 years).
	AnonymizedPromptsDays int `mapstructure:"anonymized_prompts_days"`
	// RollupsHourlyDays is how long hourly rollups (the dashboards' hour
	// buckets) are kept. Default 92.
	RollupsHourlyDays int `mapstructure:"rollups_hourly_days"`
	// PipelineHistoryDays is how long the pipeline's recorded metric
	// snapshots (pipeline_metrics, the dashboards' pipeline page) are kept.
	// Default 30.
	PipelineHistoryDays int `mapstructure:"pipeline_history_days"`
}

// DefaultRetention returns the documented defaults.
func DefaultRetention() Retention {
	return Retention{
		Free:        Tier{EventsDays: 30, PromptDays: 7},
		Pro:         Tier{EventsDays: 395, PromptDays: 90},
		ErrorsDays:  30,
		RollupsDays: 3 * 365,

		AnonymizedPromptsDays: 3 * 365,
		RollupsHourlyDays:     92,
		PipelineHistoryDays:   30,
	}
}

// plans returns the tiers by plan name, in schema.Plans order.
func (r Retention) plans() []struct {
	plan string
	tier Tier
} {
	return []struct {
		plan string
		tier Tier
	}{{"free", r.Free}, {"pro", r.Pro}}
}

// Validate names invalid fields by their config keys.
func (r Retention) Validate() error {
	var errs []error
	for _, p := range r.plans() {
		if p.tier.EventsDays <= 0 {
			errs = append(errs, fmt.Errorf("retention.%s.events_days: must be > 0", p.plan))
		}
		if p.tier.PromptDays <= 0 || p.tier.PromptDays > p.tier.EventsDays {
			errs = append(errs, fmt.Errorf("retention.%s.prompt_days: must be > 0 and <= events_days", p.plan))
		}
	}
	if r.ErrorsDays <= 0 {
		errs = append(errs, errors.New("retention.errors_days: must be > 0"))
	}
	if r.RollupsDays <= 0 {
		errs = append(errs, errors.New("retention.rollups_days: must be > 0"))
	}
	if r.AnonymizedPromptsDays <= 0 {
		errs = append(errs, errors.New("retention.anonymized_prompts_days: must be > 0"))
	}
	if r.RollupsHourlyDays <= 0 {
		errs = append(errs, errors.New("retention.rollups_hourly_days: must be > 0"))
	}
	if r.PipelineHistoryDays <= 0 {
		errs = append(errs, errors.New("retention.pipeline_history_days: must be > 0"))
	}
	return errors.Join(errs...)
}

// MinPromptDays is the shortest prompt retention of any plan: the time
// the prompt corpus job has to read a day's prompts before a TTL may clear
// the first of them.
func (r Retention) MinPromptDays() int {
	m := 0
	for _, p := range r.plans() {
		if m == 0 || p.tier.PromptDays < m {
			m = p.tier.PromptDays
		}
	}
	return m
}

// Statement is one retention ALTER and what it sets.
type Statement struct {
	// Target names what the statement sets, e.g. "events" or
	// "events.prompt"; migrate re-applies a target when its SQL changed.
	Target string
	// SQL is the ALTER statement.
	SQL string
}

// RetentionStatements renders the TTLs of o.Retention as ALTER statements:
// raw events deleted per plan, the prompt column cleared per plan (an
// unknown plan gets the shortest prompt retention), errors, rollups, the
// anonymised prompt corpus and the pipeline's history deleted after their
// days.
func RetentionStatements(o Options) []Statement {
	r := o.Retention
	alter := func(table string) string { return "ALTER TABLE " + o.localTable(table) + o.onCluster() }
	var del, prompt []string
	for _, p := range r.plans() {
		del = append(del, fmt.Sprintf("toDateTime(timestamp) + INTERVAL %d DAY DELETE WHERE plan = '%s'", p.tier.EventsDays, p.plan))
		prompt = append(prompt, fmt.Sprintf("plan = '%s', toDateTime(timestamp) + INTERVAL %d DAY", p.plan, p.tier.PromptDays))
	}
	return []Statement{
		{"events", alter("events") + "\nMODIFY TTL\n    " + strings.Join(del, ",\n    ")},
		{"events.prompt", alter("events") + "\nMODIFY COLUMN prompt TTL multiIf(\n    " + strings.Join(prompt, ",\n    ") +
			fmt.Sprintf(",\n    toDateTime(timestamp) + INTERVAL %d DAY)", r.MinPromptDays())},
		{"errors", alter("errors") + fmt.Sprintf("\nMODIFY TTL toDateTime(timestamp) + INTERVAL %d DAY", r.ErrorsDays)},
		{"rollups_daily", alter("rollups_daily") + fmt.Sprintf("\nMODIFY TTL day + INTERVAL %d DAY", r.RollupsDays)},
		{"prompt_corpus", alter("prompt_corpus") + fmt.Sprintf("\nMODIFY TTL day + INTERVAL %d DAY", r.AnonymizedPromptsDays)},
		{"rollups_hourly", alter("rollups_hourly") + fmt.Sprintf("\nMODIFY TTL hour + INTERVAL %d DAY", r.RollupsHourlyDays)},
		{"pipeline_metrics", alter("pipeline_metrics") + fmt.Sprintf("\nMODIFY TTL toDateTime(time) + INTERVAL %d DAY", r.PipelineHistoryDays)},
	}
}
