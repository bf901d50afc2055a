package pipeline

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/sora3web/telemetry/internal/corpus"
	"github.com/sora3web/telemetry/internal/privacy"
)

// generation returns a generation_requested event of user with prompt, and
// its generation_id.
func generation(user, plan, prompt string, consent bool) (map[string]any, string) {
	now := time.Now().UTC().Format(time.RFC3339Nano)
	gid := uuid.NewString()
	return map[string]any{"event_id": uuid.NewString(), "type": "generation_requested", "occurred_at": now, "sent_at": now,
		"anonymous_id": "anon-" + user, "user_id": user, "session_id": "sess-" + user, "plan": plan, "consent": map[string]any{"analytics": consent},
		"properties": map[string]any{"quality": "uhd", "resolution": "2160p", "aspect_ratio": "16:9", "duration_s": 8, "model": "v3",
			"prompt": prompt, "generation_id": gid}}, gid
}

// outcome returns an event of user about generation gid.
func outcome(user, typ, gid string, props map[string]any) map[string]any {
	now := time.Now().UTC().Format(time.RFC3339Nano)
	props["generation_id"] = gid
	return map[string]any{"event_id": uuid.NewString(), "type": typ, "occurred_at": now, "sent_at": now,
		"anonymous_id": "anon-" + user, "user_id": user, "plan": "free", "consent": map[string]any{"analytics": true}, "properties": props}
}

// shiftDays moves every stored event n days into the past, engine-side:
// the rows are copied aside, the table emptied, and the copies inserted
// back with their times shifted, as if they had been sent n days ago.
func shiftDays(t *testing.T, p *Pipeline, n int) {
	t.Helper()
	ctx := context.Background()
	for _, q := range []string{
		"DROP TABLE IF EXISTS telemetry.shift_tmp",
		"CREATE TABLE telemetry.shift_tmp AS telemetry.events",
		"INSERT INTO telemetry.shift_tmp SELECT * FROM telemetry.events",
		"TRUNCATE TABLE telemetry.events",
		fmt.Sprintf("INSERT INTO telemetry.events SELECT * REPLACE (timestamp - INTERVAL %[1]d DAY AS timestamp, occurred_at - INTERVAL %[1]d DAY AS occurred_at, sent_at - INTERVAL %[1]d DAY AS sent_at, received_at - INTERVAL %[1]d DAY AS received_at) FROM telemetry.shift_tmp", n),
		"DROP TABLE telemetry.shift_tmp",
	} {
		if err := p.Conn().Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
}

// TestPromptCorpusKeepsScrubbedCommonPromptsPastTheTTL is issue 18's
// corpus test through the real interfaces: prompts are posted to ingest,
// stored, moved two days into the past, and the job fills their day. Then
// they are moved past the free plan's prompt TTL, which clears them from
// events: the corpus holds the scrubbed common prompt with each
// generation's outcome, no rare prompt, no prompt fewer than k users
// sent, nothing without consent or under 13, no column that could link a
// row to a person, and it survives the deletion of one of those users.
func TestPromptCorpusKeepsScrubbedCommonPromptsPastTheTTL(t *testing.T) {
	ctx := context.Background()
	cfg := allInOne(t)
	p := startPipeline(t, cfg)
	var evs []map[string]any
	var gids []string
	for i := 1; i <= 5; i++ { // the common prompt: 5 users, each with a contact of their own
		ev, gid := generation(fmt.Sprintf("fox-%d", i), "free", fmt.Sprintf("A fox in the  SNOW, email me at fox%d@example.com or call +1 415 555 01%d%d", i, i, i), true)
		evs, gids = append(evs, ev), append(gids, gid)
	}
	evs = append(evs,
		outcome("fox-1", "generation_completed", gids[0], map[string]any{"quality": "uhd", "resolution": "2160p", "latency_ms": 41000}),
		outcome("fox-1", "video_downloaded", gids[0], map[string]any{"format": "mp4"}),
		outcome("fox-2", "generation_failed", gids[1], map[string]any{"quality": "uhd", "error_code": "E_GPU_OOM"}))
	rare, _ := generation("quill", "free", "portrait of Zebulon Quillfeather at his desk in Lyme Regis", true)
	evs = append(evs, rare)
	for i, user := range []string{"dog-1", "dog-1", "dog-1", "dog-2", "dog-3", "dog-4"} { // 6 generations, 4 users
		ev, _ := generation(user, "pro", "a dog on a skateboard", true)
		_ = i
		evs = append(evs, ev)
	}
	for i := 1; i <= 5; i++ {
		noConsent, _ := generation(fmt.Sprintf("cat-%d", i), "free", "a cat surfing a wave", false)
		child, _ := generation(fmt.Sprintf("kid-%d", i), "free", "a unicorn in space", true)
		child["under_13"] = true
		evs = append(evs, noConsent, child)
	}
	noConsentFox, _ := generation("fox-6", "free", "a fox in the snow", false)
	evs = append(evs, noConsentFox)
	postJSON(t, p, evs)
	// 5 + 3 outcomes + 1 + 6 + 5 without consent + 1; the 5 under-13 are dropped.
	waitQuery(t, p, "SELECT count() FROM telemetry.events", "21")

	shiftDays(t, p, 2)
	res, err := p.Corpus().Fill(ctx)
	if err != nil {
		t.Fatal(err)
	}
	day := time.Now().UTC().Truncate(24*time.Hour).AddDate(0, 0, -2)
	var filled *corpus.DayResult
	for i := range res {
		if res[i].Day.Equal(day) {
			filled = &res[i]
		}
	}
	// Candidates: 5 fox, 1 rare, 6 dog; held back: the rare one and the
	// dog prompt (4 users < k = 5).
	if filled == nil || filled.Candidates != 12 || filled.Kept != 5 || filled.HeldBack != 7 {
		t.Fatalf("fill results %+v, want day %s with 12 candidates, 5 kept, 7 held back", res, day.Format(time.DateOnly))
	}

	// The watermark keeps a day from being filled twice, and so does the
	// day's deduplication token when the watermark was lost (a pass that
	// died between the insert and recording the day).
	if again, err := p.Corpus().Fill(ctx); err != nil || len(again) != 0 {
		t.Fatalf("second pass filled %+v, %v; want nothing due", again, err)
	}
	if err := p.Conn().Exec(ctx, "TRUNCATE TABLE telemetry.prompt_corpus_runs"); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Corpus().Fill(ctx); err != nil {
		t.Fatal(err)
	}
	if got := query(t, p, "SELECT count() FROM telemetry.prompt_corpus"); got != "5" {
		t.Fatalf("corpus rows after a pass without watermark: %s, want 5", got)
	}

	shiftDays(t, p, 10) // past the free plan's 7-day prompt TTL
	if err := p.Conn().Exec(ctx, "OPTIMIZE TABLE telemetry.events FINAL"); err != nil {
		t.Fatal(err)
	}
	if got := query(t, p, "SELECT countIf(prompt != ''), countIf(plan = 'pro' AND prompt != '') FROM telemetry.events FORMAT TSV"); got != "6\t6" {
		t.Fatalf("prompts left in events (all, pro): %s, want only the 6 pro ones (free prompts cleared by the TTL)", got)
	}
	want := fmt.Sprintf(`%[1]s	a fox in the snow, email me at [email] or call [phone]	uhd	2160p	16:9	8	v3	desktop	completed		true
%[1]s	a fox in the snow, email me at [email] or call [phone]	uhd	2160p	16:9	8	v3	desktop	failed	E_GPU_OOM	false
%[1]s	a fox in the snow, email me at [email] or call [phone]	uhd	2160p	16:9	8	v3	desktop	unknown		false
%[1]s	a fox in the snow, email me at [email] or call [phone]	uhd	2160p	16:9	8	v3	desktop	unknown		false
%[1]s	a fox in the snow, email me at [email] or call [phone]	uhd	2160p	16:9	8	v3	desktop	unknown		false`, day.Format(time.DateOnly))
	corpusRows := "SELECT " + strings.Join(corpus.Columns, ", ") + " FROM telemetry.prompt_corpus ORDER BY outcome, downloaded DESC FORMAT TSV"
	if got := query(t, p, corpusRows); got != want {
		t.Fatalf("corpus rows:\n%s\nwant:\n%s", got, want)
	}

	// The columns are exactly the documented ones: none could link a row
	// to a person.
	cols := strings.Split(query(t, p, "SELECT name FROM system.columns WHERE database = 'telemetry' AND table = 'prompt_corpus' ORDER BY position FORMAT TSV"), "\n")
	if !slices.Equal(cols, corpus.Columns) {
		t.Fatalf("prompt_corpus columns %v, want exactly %v", cols, corpus.Columns)
	}
	for _, c := range cols {
		for _, linking := range []string{"id", "user", "anonymous", "session", "ip", "url", "agent", "referrer", "timestamp", "received", "offset", "source", "group", "locale", "screen"} {
			if strings.Contains(c, linking) {
				t.Errorf("prompt_corpus column %s could link a row back (%q)", c, linking)
			}
		}
	}

	// A deletion leaves the corpus as it is: nothing in it is the user's.
	var del privacy.DeleteResponse
	adminCall(t, p, "POST", "/v1/privacy/delete", `{"user_id":"fox-1"}`, &del)
	if got := userRows(t, p, "fox-1"); got != "0" {
		t.Fatalf("fox-1 rows after deletion: %s", got)
	}
	if got := query(t, p, corpusRows); got != want {
		t.Fatalf("corpus after a deletion:\n%s\nwant:\n%s", got, want)
	}

}
