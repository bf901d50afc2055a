package audit

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"time"
)

// Handler serves the report as JSON (GET, the admin API's /v1/audit):
// since (a duration back from now, default 1h), grace (default grace) and
// settled (true: every window closed). It answers 200 whatever the
// report says; "clean" says whether nothing was lost or duplicated.
func Handler(db DB, database string, grace time.Duration) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		o := Options{Database: database, Grace: grace}
		since := time.Hour
		var errs []string
		if v := q.Get("since"); v != "" {
			d, err := time.ParseDuration(v)
			if err != nil || d <= 0 {
				errs = append(errs, fmt.Sprintf("since: must be a positive duration such as 1h, got %q", v))
			}
			since = d
		}
		if v := q.Get("grace"); v != "" {
			d, err := time.ParseDuration(v)
			if err != nil || d < 0 {
				errs = append(errs, fmt.Sprintf("grace: must be a duration >= 0, got %q", v))
			}
			o.Grace = d
		}
		if v := q.Get("settled"); v != "" {
			b, err := strconv.ParseBool(v)
			if err != nil {
				errs = append(errs, fmt.Sprintf("settled: must be true or false, got %q", v))
			}
			o.Settled = b
		}
		w.Header().Set("Content-Type", "application/json")
		if len(errs) > 0 {
			w.WriteHeader(http.StatusBadRequest)
			_ = json.NewEncoder(w).Encode(map[string]any{"errors": errs})
			return
		}
		o.Since = time.Now().Add(-since)
		rep, err := Query(r.Context(), db, o)
		if err != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			_ = json.NewEncoder(w).Encode(map[string]string{"error": err.Error()})
			return
		}
		_ = json.NewEncoder(w).Encode(struct {
			Clean bool `json:"clean"`
			*Report
		}{rep.Clean(), rep})
	})
}
