package pipeline

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/segmentio/kafka-go"

	"github.com/sora3web/telemetry/internal/privacy"
	"github.com/sora3web/telemetry/internal/testenv"
)

// postEvents sends events of a subject through ingest and fails unless all
// were accepted.
func postEvents(t *testing.T, p *Pipeline, userID string, n int) []string {
	t.Helper()
	ids := make([]string, n)
	for i := range ids {
		ids[i] = uuid.NewString()
	}
	postEventIDs(t, p, userID, ids...)
	return ids
}

// postEventIDs posts events of userID with the given event ids (a
// client's resend reuses one), alternately a generation_requested and a
// client_error.
func postEventIDs(t *testing.T, p *Pipeline, userID string, ids ...string) {
	t.Helper()
	var evs []map[string]any
	now := time.Now().UTC().Format(time.RFC3339Nano)
	for i, id := range ids {
		typ, props := "generation_requested", map[string]any{"quality": "uhd", "resolution": "2160p", "aspect_ratio": "16:9", "duration_s": 8, "prompt": "a fox in the snow"}
		if i%2 == 1 {
			typ, props = "client_error", map[string]any{"error_message": "decode failed"}
		}
		evs = append(evs, map[string]any{"event_id": id, "type": typ, "occurred_at": now, "sent_at": now,
			"anonymous_id": "anon-" + userID, "user_id": userID, "plan": "pro", "consent": map[string]any{"analytics": true}, "properties": props})
	}
	postJSON(t, p, evs)
}

// postJSON posts events to ingest's /v1/events from a desktop browser and
// fails unless every one was accepted.
func postJSON(t *testing.T, p *Pipeline, evs []map[string]any) {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"events": evs})
	if status, b := postBody(t, p, string(body)); status != 200 {
		t.Fatalf("ingest: %d %s", status, b)
	}
}

// waitQuery waits up to 10s until sql answers want. The rows that
// materialized views copy (errors, identity_links, group_members) appear
// after the events part of an insert is visible, so a test that has
// waited for events rows waits for those too.
func waitQuery(t *testing.T, p *Pipeline, sql, want string) {
	t.Helper()
	waitQueryFor(t, p, sql, want, 10*time.Second)
}

// waitQueryFor waits up to d until sql answers want.
func waitQueryFor(t *testing.T, p *Pipeline, sql, want string, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		got := query(t, p, sql)
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %s after %s, want %s", sql, got, d, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// adminCall calls the admin API of p with the development token.
func adminCall(t *testing.T, p *Pipeline, method, path, body string, out any) {
	t.Helper()
	var r io.Reader
	if body != "" {
		r = bytes.NewReader([]byte(body))
	}
	req, _ := http.NewRequest(method, "http://"+p.AdminAddr()+path, r)
	req.Header.Set("Authorization", "Bearer "+privacy.DevToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("%s %s: %d %s", method, path, resp.StatusCode, b)
	}
	if err := json.Unmarshal(b, out); err != nil {
		t.Fatalf("%s %s: %v: %s", method, path, err, b)
	}
}

// readTopic returns every message of topic on every partition.
func readTopic(t *testing.T, brokers []string, topic string) []kafka.Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := kafka.DialContext(ctx, "tcp", brokers[0])
	if err != nil {
		t.Fatal(err)
	}
	parts, err := conn.ReadPartitions(topic)
	conn.Close()
	if err != nil {
		t.Fatal(err)
	}
	var out []kafka.Message
	for _, pt := range parts {
		lc, err := kafka.DialLeader(ctx, "tcp", brokers[0], topic, pt.ID)
		if err != nil {
			t.Fatal(err)
		}
		last, err := lc.ReadLastOffset()
		lc.Close()
		if err != nil {
			t.Fatal(err)
		}
		if last == 0 {
			continue
		}
		r := kafka.NewReader(kafka.ReaderConfig{Brokers: brokers, Topic: topic, Partition: pt.ID, MaxWait: 100 * time.Millisecond})
		for {
			m, err := r.ReadMessage(ctx)
			if err != nil {
				r.Close()
				t.Fatal(err)
			}
			out = append(out, m)
			if m.Offset+1 >= last {
				break
			}
		}
		r.Close()
	}
	return out
}

// TestDeletionHoldsWhenKafkaReplaysTheSubjectsEvents is the "done when" of
// the right to erasure: events of a user are stored through the real
// broker, the user is deleted through the admin API, then the user's old
// messages are produced to the events topic again (a replay); the consumer
// drops them, and the user has zero rows while others keep theirs.
func TestDeletionHoldsWhenKafkaReplaysTheSubjectsEvents(t *testing.T) {
	brokers := testenv.Kafka(t)
	cfg := allInOne(t)
	suffix := fmt.Sprint(time.Now().UnixNano())
	cfg.Bus = "kafka"
	cfg.Kafka.Brokers = brokers
	cfg.Kafka.EventsTopic, cfg.Kafka.DeadLetterTopic = "privacy-events-"+suffix, "privacy-dlq-"+suffix
	testenv.DeleteTopicsAtCleanup(t, brokers, cfg.Kafka.EventsTopic, cfg.Kafka.DeadLetterTopic)
	cfg.Consumer.GroupID = "privacy-" + suffix
	cfg.Serve.MetricsListen = "127.0.0.1:0"
	p, err := New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		p.Shutdown(ctx)
	})

	postEvents(t, p, "replay-user", 6) // 3 of them client_error: 6 events + 3 errors rows
	postEvents(t, p, "other-user", 4)
	waitRows(t, p, 10)
	waitQuery(t, p, "SELECT count() FROM telemetry.errors WHERE user_id = 'replay-user'", "3")

	var old []kafka.Message
	for _, m := range readTopic(t, brokers, cfg.Kafka.EventsTopic) {
		if string(m.Key) == "replay-user" {
			old = append(old, kafka.Message{Key: m.Key, Value: m.Value, Headers: m.Headers})
		}
	}
	if len(old) != 6 {
		t.Fatalf("found %d messages of the user on the topic, want 6", len(old))
	}

	var del privacy.DeleteResponse
	adminCall(t, p, "POST", "/v1/privacy/delete", `{"user_id":"replay-user"}`, &del)
	if fmt.Sprint(del.Deleted) != "[{events 6} {errors 3} {identity_links 0} {group_members 0} {corrections 0}]" {
		t.Fatalf("delete answered %+v", del)
	}

	w := &kafka.Writer{Addr: kafka.TCP(brokers...), Topic: cfg.Kafka.EventsTopic, RequiredAcks: kafka.RequireAll, Balancer: &kafka.Hash{}}
	if err := w.WriteMessages(context.Background(), old...); err != nil {
		t.Fatal(err)
	}
	w.Close()
	postEvents(t, p, "after-user", 2) // proof the consumer moved past the replay
	deadline := time.Now().Add(30 * time.Second)
	for p.Privacy().Registry().Dropped() < int64(len(old)) || query(t, p, "SELECT count() FROM telemetry.events WHERE user_id = 'after-user'") != "2" {
		if time.Now().After(deadline) {
			t.Fatalf("consumer dropped %d replayed events after 30s, want %d", p.Privacy().Registry().Dropped(), len(old))
		}
		time.Sleep(100 * time.Millisecond)
	}
	for _, table := range []string{"events", "errors"} {
		if got := query(t, p, "SELECT count() FROM telemetry."+table+" WHERE user_id = 'replay-user' OR anonymous_id = 'anon-replay-user'"); got != "0" {
			t.Fatalf("%s rows of the deleted user after the replay: %s", table, got)
		}
	}
	if got := query(t, p, "SELECT count() FROM telemetry.events WHERE user_id = 'other-user'"); got != "4" {
		t.Fatalf("rows of another user: %s, want 4", got)
	}
	var st privacy.StatusResponse
	adminCall(t, p, "GET", "/v1/privacy/status?user_id=replay-user", "", &st)
	if !st.Tombstoned || fmt.Sprint(st.Tables) != "[{events 0} {errors 0} {identity_links 0} {group_members 0} {corrections 0}]" {
		t.Fatalf("status after replay: %+v", st)
	}
	// The person keeps using the product: the new events are stored, and
	// the old ones replayed once more still are not.
	postEvents(t, p, "replay-user", 2)
	w = &kafka.Writer{Addr: kafka.TCP(brokers...), Topic: cfg.Kafka.EventsTopic, RequiredAcks: kafka.RequireAll, Balancer: &kafka.Hash{}}
	if err := w.WriteMessages(context.Background(), old...); err != nil {
		t.Fatal(err)
	}
	w.Close()
	waitUserRows(t, p, "replay-user", 2)
	postEvents(t, p, "after-user", 1) // the consumer moved past the second replay
	waitUserRows(t, p, "after-user", 3)
	if got := query(t, p, "SELECT count() FROM telemetry.events WHERE user_id = 'replay-user'"); got != "2" {
		t.Fatalf("rows of the deleted user after new events and a second replay: %s, want the 2 new ones", got)
	}
}

// TestDeletionErasesWhatWasHeldNotWhatComesAfter is issue 21's second
// history on the all-in-one pipeline: an event of user-X is stored, the
// user is deleted, and the user's next events are stored: a deletion
// erases the data held when it was asked for; only opting out stops
// collection. The tombstone still drops what was received before it: an
// event published before the deletion but consumed after it (the consumer
// stalled) is not stored.
func TestDeletionErasesWhatWasHeldNotWhatComesAfter(t *testing.T) {
	cfg := allInOne(t)
	p := startPipeline(t, cfg)
	held := postEvents(t, p, "user-X", 1)
	waitUserRows(t, p, "user-X", 1)
	var del privacy.DeleteResponse
	adminCall(t, p, "POST", "/v1/privacy/delete", `{"user_id":"user-X"}`, &del)
	if fmt.Sprint(del.Deleted) != "[{events 1} {errors 0} {identity_links 0} {group_members 0} {corrections 0}]" || del.DeletedAt.IsZero() {
		t.Fatalf("delete answered %+v", del)
	}
	// One generation_requested, one client_error; the first is a client's
	// resend of the deleted event: received after the deletion, it is
	// stored, though the consumer's dedup window saw its id stored before.
	postEventIDs(t, p, "user-X", held[0], uuid.NewString())
	waitUserRows(t, p, "user-X", 2)
	waitQuery(t, p, "SELECT count() FROM telemetry.errors WHERE user_id = 'user-X'", "1") // the new client_error's copy
	var st privacy.StatusResponse
	adminCall(t, p, "GET", "/v1/privacy/status?user_id=user-X", "", &st)
	if !st.Tombstoned || fmt.Sprint(st.Tables) != "[{events 2} {errors 1} {identity_links 0} {group_members 0} {corrections 0}]" {
		t.Fatalf("status after new events: %+v", st)
	}
	stop(t, p)

	// Events received before a deletion but not yet stored: the consumer
	// is off while they wait in the local log, the deletion comes, then
	// the consumer starts and must drop them, and only them.
	noConsumer := cfg
	noConsumer.Serve.Consumer = false
	p = startPipeline(t, noConsumer)
	postEvents(t, p, "user-Y", 3)
	stop(t, p)
	p = startPipeline(t, cfg)
	adminCall(t, p, "POST", "/v1/privacy/delete", `{"user_id":"user-Y"}`, &del)
	postEvents(t, p, "user-Y", 1)
	waitUserRows(t, p, "user-Y", 1)
	postEvents(t, p, "after-Y", 1)
	waitUserRows(t, p, "after-Y", 1)
	if got := query(t, p, "SELECT count() FROM telemetry.events WHERE user_id = 'user-Y'"); got != "1" {
		t.Fatalf("rows of user-Y: %s, want only the event sent after the deletion", got)
	}
}

// TestOptOutRegistryAppliesAtIngestOfTheRunningPipeline: after an opt-out
// through the admin API, the subject's next events are stored without
// identifiers or prompt.
func TestOptOutRegistryAppliesAtIngestOfTheRunningPipeline(t *testing.T) {
	cfg := allInOne(t)
	p := startPipeline(t, cfg)
	var resp privacy.OptOutResponse
	adminCall(t, p, "POST", "/v1/privacy/opt-out", `{"user_id":"quiet-user"}`, &resp)
	postEvents(t, p, "quiet-user", 2)
	postEvents(t, p, "loud-user", 2)
	waitRows(t, p, 4)
	got := query(t, p, "SELECT countIf(user_id = '' AND anonymous_id = '' AND prompt = '' AND ip = '' AND opted_out), countIf(user_id = 'loud-user' AND NOT opted_out) FROM telemetry.events FORMAT TSV")
	if got != "2\t2" {
		t.Fatalf("stripped rows, kept rows: %q, want 2 and 2", got)
	}
}

// lateLearner starts two processes on one ClickHouse: a, and b, which
// inserts its batch a second after its events and learns of a request made
// through a at its first refresh, 10 s after it started: in between it has
// stored the subject's old events, which the refresh must sweep.
func lateLearner(t *testing.T) (a, b *Pipeline) {
	t.Helper()
	a = startPipeline(t, allInOne(t))
	cfg := onEngineOf(t, a)
	cfg.Consumer.BatchInterval = time.Second
	cfg.Admin.RefreshInterval = 10 * time.Second
	return a, startPipeline(t, cfg)
}

// TestDeletionThroughAnotherProcessIsSwept: two processes write to one
// ClickHouse; a user is deleted through the first while the second's
// consumer holds the user's events, received before the deletion, in a
// batch it has not inserted. The second process learns of the tombstone
// only at its next registry refresh, so it stores them; the refresh must
// then sweep them, leaving the user with no row received before the
// deletion.
func TestDeletionThroughAnotherProcessIsSwept(t *testing.T) {
	a, b := lateLearner(t)
	postEvents(t, b, "user-Z", 2)
	postEvents(t, b, "keep-Z", 1)
	var del privacy.DeleteResponse
	adminCall(t, a, "POST", "/v1/privacy/delete", `{"user_id":"user-Z"}`, &del)
	waitUserRows(t, a, "keep-Z", 1) // b inserted its batch, with user-Z's events
	if got := userRows(t, a, "user-Z"); got != "2" {
		t.Fatalf("user-Z rows right after b's insert: %s; the test needs b to store them before it learns of the deletion", got)
	}
	waitUserRows(t, a, "user-Z", 0) // b's refresh swept them
	postEvents(t, b, "user-Z", 1)   // and the person's next event is stored
	waitUserRows(t, a, "user-Z", 1)
}
