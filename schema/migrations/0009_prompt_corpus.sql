-- prompt_corpus: the anonymised prompt corpus for model improvement
-- (internal/corpus fills it, `telemetry prompts export` reads it). One row
-- per generation whose prompt passed the corpus's rules: analytics consent,
-- not opted out (under-13 events are never stored at all), the prompt
-- scrubbed (transform.Scrubber.Prompt) and held by at least k distinct
-- users on its day. Nothing in a row points back to a person: no user,
-- anonymous, session, group or event id, no IP, no page or user agent, the
-- device as its class only and the time as its day. A deletion therefore
-- does not touch it. Kept retention.anonymized_prompts_days (TTL rendered
-- by migrate).
CREATE TABLE IF NOT EXISTS {{table "prompt_corpus"}}{{on}}
(
    day          Date,
    prompt       String CODEC(ZSTD(3)),
    quality      LowCardinality(String),
    resolution   LowCardinality(String),
    aspect_ratio LowCardinality(String),
    duration_s   Float32,
    model        LowCardinality(String),
    device_class LowCardinality(String),
    outcome      LowCardinality(String),
    failure_code LowCardinality(String),
    downloaded   Bool
)
ENGINE = {{engine "MergeTree" "prompt_corpus"}}
PARTITION BY toYYYYMM(day)
ORDER BY (day, prompt)
SETTINGS non_replicated_deduplication_window = 1000;
{{distributed "prompt_corpus" "cityHash64(prompt)"}}
-- prompt_corpus_runs: the corpus job's watermark, one row per UTC day it
-- has filled (a day is recorded only after its rows were acknowledged), with
-- what it saw: candidate generations, rows kept, rows held back as rare.
CREATE TABLE IF NOT EXISTS {{table "prompt_corpus_runs"}}{{on}}
(
    day        Date,
    candidates UInt64,
    kept       UInt64,
    held_back  UInt64,
    done_at    DateTime64(3, 'UTC')
)
ENGINE = {{engine "ReplacingMergeTree" "prompt_corpus_runs"}}
ORDER BY day;
{{distributed "prompt_corpus_runs" "toYYYYMM(day)"}}
-- corrections: the right to correct (internal/privacy). One row per
-- correction: a subject's plan over [from, to), or an anonymous_id's events
-- attached to a user_id or detached from it. Bounded like tombstones: it
-- applies to events received at or before corrected_at, stored ones by a
-- mutation and those still on the bus by the consumer. Covered by the
-- privacy export and delete (user_id and anonymous_id are the subject's).
CREATE TABLE IF NOT EXISTS {{table "corrections"}}{{on}}
(
    kind         LowCardinality(String),
    user_id      String,
    anonymous_id String,
    plan         LowCardinality(String),
    from_time    DateTime64(3, 'UTC'),
    to_time      DateTime64(3, 'UTC'),
    corrected_at DateTime64(3, 'UTC')
)
ENGINE = {{engine "MergeTree" "corrections"}}
ORDER BY (user_id, anonymous_id, corrected_at);
{{distributed "corrections" "cityHash64(user_id, anonymous_id)"}}
