package chserver

import (
	"testing"
	"time"
)

func TestBoundQueryTimeLowersOnlyAHigherOrMissingLimit(t *testing.T) {
	for _, c := range []struct {
		name    string
		limit   time.Duration
		request string // the request's max_execution_time, "" for none
		want    string // after the bound, "" for none
	}{
		{"no bound configured", 0, "", ""},
		{"no bound configured keeps the request's", 0, "60", "60"},
		{"missing is set", 2 * time.Second, "", "2"},
		{"fractions of a second", 1500 * time.Millisecond, "", "1.5"},
		{"higher is lowered", 2 * time.Second, "60", "2"},
		{"zero means unlimited, so it is lowered", 2 * time.Second, "0", "2"},
		{"lower stays", 2 * time.Second, "1", "1"},
		{"unparsable is replaced", 2 * time.Second, "soon", "2"},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := &Server{cfg: Config{MaxQueryTime: c.limit}}
			settings := map[string]string{}
			if c.request != "" {
				settings[maxExecutionTime] = c.request
			}
			s.boundQueryTime(settings)
			if got := settings[maxExecutionTime]; got != c.want {
				t.Errorf("max_execution_time = %q, want %q", got, c.want)
			}
		})
	}
}
