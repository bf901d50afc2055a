package pipeline

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/sora3web/telemetry/internal/privacy"
)

// postGenerations posts n generation_requested events of user on plan;
// with user "" they carry only the anonymous_id anon.
func postGenerations(t *testing.T, p *Pipeline, user, anon, plan string, n int) {
	t.Helper()
	var evs []map[string]any
	for i := 0; i < n; i++ {
		ev, _ := generation(user, plan, "a fox in the snow", true)
		ev["anonymous_id"] = anon
		if user == "" {
			delete(ev, "user_id")
		}
		evs = append(evs, ev)
	}
	postJSON(t, p, evs)
}

// TestCorrectionMovesFreeToProAndTheFreeTTLNoLongerDeletes is issue 18's
// correction test: a user's events stored on the free plan (the
// subscription webhook came late) are corrected to pro through the admin
// API; moved 40 days into the past, the free plan's 30-day TTL deletes
// another free user's events and keeps the corrected ones. Status and
// export show the correction and when; rollups_daily still counts each
// event once.
func TestCorrectionMovesFreeToProAndTheFreeTTLNoLongerDeletes(t *testing.T) {
	ctx := context.Background()
	p := startPipeline(t, allInOne(t))
	postGenerations(t, p, "late-pro", "anon-late-pro", "free", 3)
	postGenerations(t, p, "still-free", "anon-still-free", "free", 2)
	waitQuery(t, p, "SELECT count() FROM telemetry.events", "5")

	var resp privacy.CorrectResponse
	adminCall(t, p, "POST", "/v1/privacy/correct", `{"user_id":"late-pro","plan":"pro"}`, &resp)
	if resp.Rows != 3 || resp.Correction.Kind != privacy.CorrectPlan || resp.Correction.Plan != "pro" || resp.Correction.CorrectedAt.IsZero() ||
		resp.Correction.From.Unix() != 0 || !resp.Correction.To.After(resp.Correction.CorrectedAt) {
		t.Fatalf("correct answered %+v, want 3 rows moved to pro", resp)
	}
	if got := query(t, p, "SELECT plan, count() FROM telemetry.events GROUP BY user_id, plan ORDER BY user_id FORMAT TSV"); got != "pro\t3\nfree\t2" {
		t.Fatalf("plans after the correction:\n%s", got)
	}
	// The rollups counted each event when it was stored; moving the rows
	// does not count them again.
	if got := query(t, p, "SELECT countMerge(events) FROM telemetry.rollups_daily"); got != "5" {
		t.Fatalf("rollups count %s events, want 5", got)
	}

	shiftDays(t, p, 40)
	if err := p.Conn().Exec(ctx, "OPTIMIZE TABLE telemetry.events FINAL"); err != nil {
		t.Fatal(err)
	}
	if got := query(t, p, "SELECT user_id, plan, count() FROM telemetry.events GROUP BY user_id, plan FORMAT TSV"); got != "late-pro\tpro\t3" {
		t.Fatalf("rows 40 days later:\n%s\nwant only late-pro's 3, now pro (the free TTL deleted still-free's)", got)
	}

	var st privacy.StatusResponse
	adminCall(t, p, "GET", "/v1/privacy/status?user_id=late-pro", "", &st)
	if len(st.Corrections) != 1 || st.Corrections[0].Plan != "pro" || !st.Corrections[0].CorrectedAt.Equal(resp.Correction.CorrectedAt) ||
		!st.Corrections[0].From.Equal(resp.Correction.From) || !st.Corrections[0].To.Equal(resp.Correction.To) {
		t.Fatalf("status corrections %+v, want the one made at %s", st.Corrections, resp.Correction.CorrectedAt)
	}
	var doc struct {
		Tables map[string][]map[string]any `json:"tables"`
	}
	adminCall(t, p, "GET", "/v1/privacy/export?user_id=late-pro", "", &doc)
	if c := doc.Tables["corrections"]; len(c) != 1 || c[0]["kind"] != "plan" || c[0]["plan"] != "pro" || c[0]["corrected_at"] == nil {
		t.Fatalf("export's corrections: %v", c)
	}
}

// TestCorrectionsReachEventsStillOnTheBus: events wait in the local log
// while no consumer runs; a plan correction and an attach are made, then
// the consumer starts and stores those events corrected, as the registry
// tells it, the path tombstones take. Events sent after the corrections
// are stored as sent. A detach then takes the anonymous_id's events back
// from the user.
func TestCorrectionsReachEventsStillOnTheBus(t *testing.T) {
	cfg := allInOne(t)
	noConsumer := cfg
	noConsumer.Serve.Consumer = false
	p := startPipeline(t, noConsumer)
	postGenerations(t, p, "queued", "anon-queued", "free", 3)
	postGenerations(t, p, "", "anon-Q", "free", 2)
	var resp privacy.CorrectResponse
	adminCall(t, p, "POST", "/v1/privacy/correct", `{"user_id":"queued","plan":"pro"}`, &resp)
	if resp.Rows != 0 {
		t.Fatalf("stored rows corrected: %d, want 0 (nothing stored yet)", resp.Rows)
	}
	adminCall(t, p, "POST", "/v1/privacy/correct", `{"anonymous_id":"anon-Q","attach_to":"user-Q"}`, &resp)
	postGenerations(t, p, "queued", "anon-queued", "free", 1) // after the correction: stored as sent
	stop(t, p)

	p = startPipeline(t, cfg)
	waitQuery(t, p, "SELECT count() FROM telemetry.events", "6")
	if got := query(t, p, "SELECT user_id, anonymous_id, plan, count() FROM telemetry.events GROUP BY user_id, anonymous_id, plan ORDER BY user_id, plan FORMAT TSV"); got != "queued\tanon-queued\tfree\t1\nqueued\tanon-queued\tpro\t3\nuser-Q\tanon-Q\tfree\t2" {
		t.Fatalf("rows stored after the corrections:\n%s", got)
	}

	adminCall(t, p, "POST", "/v1/privacy/correct", `{"anonymous_id":"anon-Q","detach_from":"user-Q"}`, &resp)
	if resp.Rows != 2 {
		t.Fatalf("detach changed %d rows, want 2", resp.Rows)
	}
	if got := query(t, p, "SELECT count() FROM telemetry.events WHERE anonymous_id = 'anon-Q' AND user_id = ''"); got != "2" {
		t.Fatalf("anon-Q rows without user_id after the detach: %s, want 2", got)
	}
	var st privacy.StatusResponse
	adminCall(t, p, "GET", "/v1/privacy/status?anonymous_id=anon-Q", "", &st)
	kinds := ""
	for _, c := range st.Corrections {
		kinds += c.Kind + " "
	}
	if kinds != "attach detach " {
		b, _ := json.Marshal(st)
		t.Fatalf("status of anon-Q: %s", b)
	}
}

// TestCorrectionThroughAnotherProcessIsSwept: two processes write to one
// ClickHouse; a plan correction is made through the first while the
// second's consumer holds the user's events, received before it, in a
// batch it has not inserted. The second stores them uncorrected, learns of
// the correction at its next registry refresh, and must then correct what
// it stored.
func TestCorrectionThroughAnotherProcessIsSwept(t *testing.T) {
	a, b := lateLearner(t)
	postGenerations(t, b, "late-sub", "anon-late-sub", "free", 2)
	var resp privacy.CorrectResponse
	adminCall(t, a, "POST", "/v1/privacy/correct", `{"user_id":"late-sub","plan":"pro"}`, &resp)
	waitUserRows(t, a, "late-sub", 2) // b inserted its batch, uncorrected
	plans := "SELECT plan, count() FROM telemetry.events WHERE user_id = 'late-sub' GROUP BY plan FORMAT TSV"
	if got := query(t, a, plans); got != "free\t2" {
		t.Fatalf("late-sub rows right after b's insert: %q; the test needs b to store them before it learns of the correction", got)
	}
	waitQueryFor(t, a, plans, "pro\t2", 30*time.Second) // b's refresh, 10 s after its start, corrected them
}
