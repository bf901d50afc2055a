package collector

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"reflect"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/sora3web/telemetry/bus/broker"
	"github.com/sora3web/telemetry/internal/testenv"
	"github.com/sora3web/telemetry/schema"
)

// startPipeline runs a real ingest server publishing to a real broker, on
// topics of its own, and returns its base URL and the broker config.
func startPipeline(t *testing.T) (string, broker.Config) {
	t.Helper()
	bc := broker.DefaultConfig()
	bc.Brokers = testenv.Kafka(t)
	suffix := fmt.Sprintf("%s-%d", t.Name(), time.Now().UnixNano())
	bc.EventsTopic, bc.DeadLetterTopic = "events-"+suffix, "dlq-"+suffix
	testenv.DeleteTopicsAtCleanup(t, bc.Brokers, bc.EventsTopic, bc.DeadLetterTopic)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	pub, err := broker.NewKafkaPublisher(bc, log)
	if err != nil {
		t.Fatal(err)
	}
	cfg := testConfig()
	cfg.Listen = "127.0.0.1:0"
	srv, err := New(cfg, pub, log)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := pub.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
		_ = pub.Shutdown(sctx)
	})
	base := "http://" + srv.Addr()
	testenv.WaitReady(t, base)
	return base, bc
}

// readTopic reads n messages from every partition of topic.
func readTopic(t *testing.T, bc broker.Config, topic string, n int) []kafka.Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: bc.Brokers, GroupID: "test-" + topic, Topic: topic, StartOffset: kafka.FirstOffset, MaxWait: 100 * time.Millisecond})
	defer r.Close()
	var out []kafka.Message
	for len(out) < n {
		m, err := r.ReadMessage(ctx)
		if err != nil {
			t.Fatalf("read %d of %d messages: %v", len(out), n, err)
		}
		out = append(out, m)
	}
	return out
}

func post(t *testing.T, url, ctype string, body []byte, headers map[string]string) (int, Response) {
	t.Helper()
	r, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	r.Header.Set("Content-Type", ctype)
	for k, v := range headers {
		r.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(r)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out Response
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

func TestIntegrationEventsLandOnKafkaWithEveryField(t *testing.T) {
	base, bc := startPipeline(t)
	sent := []map[string]any{event(), event(func(e map[string]any) {
		e["type"] = "generation_failed"
		e["user_id"] = "user-77"
		props(e)["error_code"] = "GPU_OOM"
		props(e)["error_message"] = "out of memory at 2160p"
		props(e)["error_stack"] = "Error: out of memory\n    at render (render.js:12:3)"
	}), event(func(e map[string]any) { e["type"] = "session_start"; e["properties"] = map[string]any{} })}
	status, resp := post(t, base+"/v1/events", "application/json", mustJSON(t, map[string]any{"events": sent}),
		map[string]string{"Authorization": "Bearer " + testKey, "User-Agent": uaFirefoxMac})
	if status != 200 || resp.Accepted != 3 {
		t.Fatalf("status %d %+v", status, resp)
	}
	msgs := readTopic(t, bc, bc.EventsTopic, 3)
	byID := map[string]kafka.Message{}
	for _, m := range msgs {
		var e schema.Enriched
		if err := json.Unmarshal(m.Value, &e); err != nil {
			t.Fatalf("message is not JSON: %s", m.Value)
		}
		byID[e.EventID] = m
	}
	for _, want := range sent {
		m, ok := byID[want["event_id"].(string)]
		if !ok {
			t.Fatalf("event %s not on the topic", want["event_id"])
		}
		var got schema.Enriched
		_ = json.Unmarshal(m.Value, &got)
		var wantEv schema.Event
		_ = json.Unmarshal(mustJSON(t, want), &wantEv)
		wantEv.OccurredAt, wantEv.SentAt = wantEv.OccurredAt.UTC(), wantEv.SentAt.UTC()
		if !reflect.DeepEqual(got.Event, wantEv) {
			t.Errorf("event on topic differs:\n got %+v\nwant %+v", got.Event, wantEv)
		}
		if string(m.Key) != wantEv.UserID {
			t.Errorf("key %q, want user_id %q", m.Key, wantEv.UserID)
		}
		if got.Source != "web" || got.IP != "127.0.0.0" || got.Device.Browser != "Firefox" || got.Device.Class != "desktop" || got.ReceivedAt.IsZero() {
			t.Errorf("enrichment: %+v", got)
		}
		if d := got.Timestamp.Sub(got.ReceivedAt); d != -5*time.Second {
			t.Errorf("skew-corrected timestamp is %v from received_at, want -5s", d)
		}
	}
}

func TestIntegrationSegmentBatchLandsOnKafka(t *testing.T) {
	base, bc := startPipeline(t)
	body := []byte(`{"batch":[
	 {"type":"track","messageId":"seg-1","anonymousId":"anon-s","event":"Video Downloaded","properties":{"format":"mp4","quality":"pro"}},
	 {"type":"page","messageId":"seg-2","anonymousId":"anon-s","properties":{"url":"https://app.example.com/gallery"}}
	]}`)
	status, resp := post(t, base+"/v1/batch", "application/json", body, map[string]string{"Authorization": "Basic dGVzdC13cml0ZS1rZXktMDEyMzQ1Njc4OTo="})
	if status != 200 || resp.Accepted != 2 {
		t.Fatalf("status %d %+v", status, resp)
	}
	types := map[string]bool{}
	for _, m := range readTopic(t, bc, bc.EventsTopic, 2) {
		var e schema.Enriched
		_ = json.Unmarshal(m.Value, &e)
		types[e.Type] = true
		if string(m.Key) != "anon-s" {
			t.Errorf("key %q, want anonymous_id", m.Key)
		}
	}
	if !types["video_downloaded"] || !types["page_view"] {
		t.Fatalf("types on topic: %v", types)
	}
}

func TestIntegrationCollectorCreatesTopics(t *testing.T) {
	_, bc := startPipeline(t)
	for _, topic := range []string{bc.EventsTopic, bc.DeadLetterTopic} {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := broker.Ping(ctx, bc, topic)
		cancel()
		if err != nil {
			t.Errorf("topic %s: %v", topic, err)
		}
	}
}
