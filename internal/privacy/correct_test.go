package privacy

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/sora3web/telemetry/schema"
)

func TestDecodeCorrection(t *testing.T) {
	from := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	to := time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC)
	cases := []struct {
		name, body string
		want       Correction
		field      string // the field the error names; "" when valid
	}{
		{"plan of a user", `{"user_id":"u1","plan":"pro"}`, Correction{Kind: CorrectPlan, UserID: "u1", Plan: "pro"}, ""},
		{"plan over a range", `{"user_id":"u1","plan":"free","from":"2026-11-01T00:00:00Z","to":"2026-11-20T00:00:00Z"}`,
			Correction{Kind: CorrectPlan, UserID: "u1", Plan: "free", From: from, To: to}, ""},
		{"plan of an anonymous id", `{"anonymous_id":"a1","plan":"pro"}`, Correction{Kind: CorrectPlan, AnonymousID: "a1", Plan: "pro"}, ""},
		{"attach", `{"anonymous_id":"a1","attach_to":"u1"}`, Correction{Kind: CorrectAttach, AnonymousID: "a1", UserID: "u1"}, ""},
		{"detach", `{"anonymous_id":"a1","detach_from":"u1"}`, Correction{Kind: CorrectDetach, AnonymousID: "a1", UserID: "u1"}, ""},
		{"unknown plan", `{"user_id":"u1","plan":"enterprise"}`, Correction{}, "plan: must be one of free, pro"},
		{"nothing to correct", `{"user_id":"u1"}`, Correction{}, "plan: give exactly one of"},
		{"two corrections", `{"anonymous_id":"a1","plan":"pro","attach_to":"u1"}`, Correction{}, "plan: give exactly one of"},
		{"bad from", `{"user_id":"u1","plan":"pro","from":"yesterday"}`, Correction{}, "from: must be an RFC 3339 time"},
		{"empty range", `{"user_id":"u1","plan":"pro","from":"2026-11-20T00:00:00Z","to":"2026-11-01T00:00:00Z"}`, Correction{}, "to: must be after from"},
		{"attach with a user subject", `{"user_id":"u2","anonymous_id":"a1","attach_to":"u1"}`, Correction{}, "attach_to: takes anonymous_id only"},
		{"attach without anonymous id", `{"attach_to":"u1"}`, Correction{}, "anonymous_id: required with attach_to"},
		{"unknown field", `{"user_id":"u1","plan":"pro","reason":"late webhook"}`, Correction{}, "body: must be one JSON object"},
		{"two objects", `{"user_id":"u1","plan":"pro"}{}`, Correction{}, "body: one JSON object expected"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := DecodeCorrection("application/json", strings.NewReader(c.body))
			if c.field != "" {
				if !errors.Is(err, ErrBadCorrection) || !strings.Contains(err.Error(), c.field) {
					t.Fatalf("DecodeCorrection(%s): %v, want ErrBadCorrection naming %q", c.body, err, c.field)
				}
				return
			}
			if err != nil || got != c.want {
				t.Fatalf("DecodeCorrection(%s) = %+v, %v; want %+v", c.body, got, err, c.want)
			}
		})
	}
}

func TestRegistryCorrectsEventsReceivedBeforeTheCorrectionOnly(t *testing.T) {
	at := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	r, err := NewRegistry(nil, Tables{Database: "db"})
	if err != nil {
		t.Fatal(err)
	}
	r.corr.Store(newCorrectionSet([]Correction{
		{Kind: CorrectPlan, UserID: "u1", Plan: "pro", From: at.Add(-48 * time.Hour), To: at, CorrectedAt: at},
		{Kind: CorrectAttach, AnonymousID: "a2", UserID: "u2", CorrectedAt: at},
		{Kind: CorrectPlan, UserID: "u2", Plan: "pro", To: at, CorrectedAt: at.Add(time.Second)},
		{Kind: CorrectDetach, AnonymousID: "a3", UserID: "u3", CorrectedAt: at},
	}))
	ev := func(user, anon string, ts, received time.Time) *schema.Enriched {
		e := &schema.Enriched{ReceivedAt: received, Timestamp: ts}
		e.UserID, e.AnonymousID, e.Plan = user, anon, "free"
		return e
	}
	cases := []struct {
		name       string
		e          *schema.Enriched
		user, plan string
		changed    bool
	}{
		{"in range, received before", ev("u1", "a1", at.Add(-time.Hour), at.Add(-time.Hour)), "u1", "pro", true},
		{"before the range", ev("u1", "a1", at.Add(-72*time.Hour), at.Add(-time.Hour)), "u1", "free", false},
		{"received after the correction", ev("u1", "a1", at.Add(-time.Hour), at.Add(time.Millisecond)), "u1", "free", false},
		{"someone else", ev("u9", "a9", at.Add(-time.Hour), at.Add(-time.Hour)), "u9", "free", false},
		{"attached, then the user's plan", ev("", "a2", at.Add(-time.Hour), at.Add(-time.Hour)), "u2", "pro", true},
		{"attach leaves a signed-in event alone", ev("u7", "a2", at.Add(-time.Hour), at.Add(-time.Hour)), "u7", "free", false},
		{"detached", ev("u3", "a3", at.Add(-time.Hour), at.Add(-time.Hour)), "", "free", true},
		{"detach of another user", ev("u4", "a3", at.Add(-time.Hour), at.Add(-time.Hour)), "u4", "free", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			changed := r.Correct(c.e)
			if changed != c.changed || c.e.UserID != c.user || c.e.Plan != c.plan {
				t.Fatalf("Correct: changed=%v user=%q plan=%q; want %v %q %q", changed, c.e.UserID, c.e.Plan, c.changed, c.user, c.plan)
			}
		})
	}
}
