package chserver

import (
	"testing"
	"time"
)

func TestBoundQueryTimeIsTheDefaultOfReadsThatSetNone(t *testing.T) {
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
		{"a request's higher limit stays", 2 * time.Second, "60", "60"},
		{"a request's 0 (unlimited) stays: the pipeline's own reads", 2 * time.Second, "0", "0"},
		{"a request's lower limit stays", 2 * time.Second, "1", "1"},
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
