-- bootstrap
CREATE DATABASE IF NOT EXISTS tele;

CREATE TABLE IF NOT EXISTS tele.schema_migrations
(
    version    UInt32,
    name       String,
    checksum   String,
    applied_at DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree(applied_at)
ORDER BY version;

CREATE TABLE IF NOT EXISTS tele.schema_retention
(
    target     String,
    statement  String,
    applied_at DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree(applied_at)
ORDER BY target;

-- migration 0001_events (sha256 156c26c76896e3acdea8f717d79069d04fb676983168521fd2a60625145b49c5)
CREATE TABLE IF NOT EXISTS tele.events
(
    event_id               UUID,
    type                   LowCardinality(String),
    schema_version         UInt8,
    timestamp              DateTime64(3, 'UTC'),
    occurred_at            DateTime64(3, 'UTC'),
    sent_at                DateTime64(3, 'UTC'),
    received_at            DateTime64(3, 'UTC'),
    anonymous_id           String,
    user_id                String,
    session_id             String,
    plan                   LowCardinality(String),
    consent_analytics      Bool,
    opted_out              Bool,
    source                 LowCardinality(String),
    ip                     String,
    context_page_url       String CODEC(ZSTD(3)),
    context_referrer       String CODEC(ZSTD(3)),
    context_locale         LowCardinality(String),
    context_screen_width   UInt16,
    context_screen_height  UInt16,
    context_app_version    LowCardinality(String),
    context_user_agent     String CODEC(ZSTD(3)),
    device_class           LowCardinality(String),
    device_os              LowCardinality(String),
    device_os_version      LowCardinality(String),
    device_browser         LowCardinality(String),
    device_browser_version LowCardinality(String),
    device_is_bot          Bool,
    device_pending         Bool,
    quality                LowCardinality(String),
    resolution             LowCardinality(String),
    width                  UInt16,
    height                 UInt16,
    aspect_ratio           LowCardinality(String),
    duration_s             Float32,
    prompt                 String CODEC(ZSTD(3)),
    model                  LowCardinality(String),
    generation_id          String,
    latency_ms             UInt32,
    format                 LowCardinality(String),
    error_code             LowCardinality(String),
    error_message          String CODEC(ZSTD(3)),
    error_stack            String CODEC(ZSTD(3)),
    setting                LowCardinality(String),
    value                  String,
    kafka_topic            LowCardinality(String),
    kafka_partition        Int32,
    kafka_offset           Int64,
    PROJECTION offsets
    (
        SELECT kafka_topic, kafka_partition, max(kafka_offset)
        GROUP BY kafka_topic, kafka_partition
    )
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(timestamp)
ORDER BY (type, plan, toDate(timestamp), event_id)
SETTINGS non_replicated_deduplication_window = 1000, deduplicate_merge_projection_mode = 'rebuild';

-- migration 0002_errors (sha256 51d798a218626da1b04845ba9fa218824b097695d05f239d760644248a85026c)
CREATE TABLE IF NOT EXISTS tele.errors
(
    event_id               UUID,
    type                   LowCardinality(String),
    timestamp              DateTime64(3, 'UTC'),
    error_code             LowCardinality(String),
    error_message          String CODEC(ZSTD(3)),
    error_stack            String CODEC(ZSTD(3)),
    page_url               String CODEC(ZSTD(3)),
    device_class           LowCardinality(String),
    browser                LowCardinality(String),
    browser_version        LowCardinality(String),
    os                     LowCardinality(String),
    os_version             LowCardinality(String),
    app_version            LowCardinality(String),
    session_id             String,
    user_id                String,
    anonymous_id           String,
    plan                   LowCardinality(String),
    model                  LowCardinality(String),
    generation_id          String,
    source                 LowCardinality(String)
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(timestamp)
ORDER BY (error_code, toDate(timestamp), event_id);

CREATE MATERIALIZED VIEW IF NOT EXISTS tele.errors_mv TO tele.errors AS
SELECT
    event_id, type, timestamp, error_code, error_message, error_stack,
    context_page_url AS page_url, device_class,
    device_browser AS browser, device_browser_version AS browser_version,
    device_os AS os, device_os_version AS os_version,
    context_app_version AS app_version, session_id, user_id, anonymous_id,
    plan, model, generation_id, source
FROM tele.events
WHERE type IN ('client_error', 'generation_failed');

-- migration 0003_rollups (sha256 8d3a19d7c43713708d76c3af1ff6c19e56ba3cd2784ba491bc9de0e87ed9eae1)
CREATE TABLE IF NOT EXISTS tele.rollups_daily
(
    day            Date,
    type           LowCardinality(String),
    plan           LowCardinality(String),
    quality        LowCardinality(String),
    resolution     LowCardinality(String),
    aspect_ratio   LowCardinality(String),
    device_class   LowCardinality(String),
    device_os      LowCardinality(String),
    device_browser LowCardinality(String),
    events         AggregateFunction(count),
    users          AggregateFunction(uniq, Nullable(String)),
    latency_ms     AggregateFunction(quantilesIf(0.5, 0.9, 0.99), UInt32, UInt8)
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(day)
ORDER BY (day, type, plan, quality, resolution, aspect_ratio, device_class, device_os, device_browser);

CREATE MATERIALIZED VIEW IF NOT EXISTS tele.rollups_daily_mv TO tele.rollups_daily AS
SELECT
    toDate(timestamp) AS day, type, plan, quality, resolution, aspect_ratio,
    device_class, device_os, device_browser,
    countState() AS events,
    uniqState(coalesce(nullIf(user_id, ''), nullIf(anonymous_id, ''))) AS users,
    quantilesIfState(0.5, 0.9, 0.99)(latency_ms, latency_ms > 0) AS latency_ms
FROM tele.events
GROUP BY day, type, plan, quality, resolution, aspect_ratio, device_class, device_os, device_browser;

-- migration 0004_privacy (sha256 079f85155e39f087275abbeed005c6ba891d59930e19f37bf55d278589f7fe08)
CREATE TABLE IF NOT EXISTS tele.tombstones
(
    subject_type LowCardinality(String),
    subject_id   String,
    deleted_at   DateTime64(3, 'UTC'),
    updated_at   DateTime64(6, 'UTC')
)
ENGINE = ReplacingMergeTree
ORDER BY (subject_type, subject_id);

CREATE TABLE IF NOT EXISTS tele.opt_outs
(
    subject_type LowCardinality(String),
    subject_id   String,
    opted_out    Bool,
    updated_at   DateTime64(6, 'UTC')
)
ENGINE = ReplacingMergeTree
ORDER BY (subject_type, subject_id);

-- migration 0005_insert_parts (sha256 090adc41d5d4fdd8a6273ca6bcba611c92bd06c7f1608cbcd8d2ff5dc5a77311)
ALTER TABLE tele.events MODIFY SETTING min_bytes_for_wide_part = 268435456;

-- migration 0006_view_dedup (sha256 b75421019c9e95bfb23600f1536e1fe16342b8d620cce5ffe36623162844235d)
ALTER TABLE tele.errors MODIFY SETTING non_replicated_deduplication_window = 1000;

ALTER TABLE tele.rollups_daily MODIFY SETTING non_replicated_deduplication_window = 1000;

-- migration 0007_identity (sha256 ed312b87df0a2ac466b6c5e1ba98babf9cbc59570a17cd5ce02d956301a62038)
ALTER TABLE tele.events
    ADD COLUMN IF NOT EXISTS group_id String AFTER session_id,
    ADD COLUMN IF NOT EXISTS previous_id String AFTER group_id;

CREATE TABLE IF NOT EXISTS tele.identity_links
(
    previous_id  String,
    user_id      String,
    anonymous_id String,
    timestamp    DateTime64(3, 'UTC'),
    received_at  DateTime64(3, 'UTC'),
    event_id     UUID,
    source       LowCardinality(String)
)
ENGINE = ReplacingMergeTree
ORDER BY (previous_id, user_id, event_id)
SETTINGS non_replicated_deduplication_window = 1000;

CREATE MATERIALIZED VIEW IF NOT EXISTS tele.identity_links_mv TO tele.identity_links AS
SELECT previous_id, user_id, anonymous_id, timestamp, received_at, event_id, source
FROM tele.events
WHERE type = 'alias' AND previous_id != '' AND user_id != '';

CREATE TABLE IF NOT EXISTS tele.group_members
(
    group_id     String,
    user_id      String,
    anonymous_id String,
    timestamp    DateTime64(3, 'UTC'),
    received_at  DateTime64(3, 'UTC'),
    event_id     UUID,
    source       LowCardinality(String)
)
ENGINE = ReplacingMergeTree
ORDER BY (group_id, user_id, anonymous_id, event_id)
SETTINGS non_replicated_deduplication_window = 1000;

CREATE MATERIALIZED VIEW IF NOT EXISTS tele.group_members_mv TO tele.group_members AS
SELECT group_id, user_id, anonymous_id, timestamp, received_at, event_id, source
FROM tele.events
WHERE type = 'group' AND group_id != '';

-- migration 0008_pipeline_audit (sha256 b6028c7b0e25354edbc9201e3c6d84689faca48817340c54367b495b2eae6720)
ALTER TABLE tele.events
    ADD COLUMN IF NOT EXISTS seq UInt32 AFTER session_id,
    ADD COLUMN IF NOT EXISTS context_unload_seq UInt32 AFTER context_user_agent;

CREATE TABLE IF NOT EXISTS tele.pipeline_audit
(
    window_start DateTime('UTC'),
    source       LowCardinality(String),
    stage        LowCardinality(String),
    reason       LowCardinality(String),
    record_id    String,
    n            UInt64
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(window_start)
ORDER BY (window_start, source, stage, reason, record_id)
TTL window_start + INTERVAL 35 DAY
SETTINGS non_replicated_deduplication_window = 1000;

CREATE MATERIALIZED VIEW IF NOT EXISTS tele.pipeline_audit_inserted_mv TO tele.pipeline_audit AS
SELECT
    toStartOfMinute(received_at) AS window_start,
    source,
    'inserted' AS stage,
    '' AS reason,
    concat('inserted/', kafka_topic, '/', toString(kafka_partition), '/', toString(min(kafka_offset))) AS record_id,
    count() AS n
FROM tele.events
GROUP BY window_start, source, kafka_topic, kafka_partition;

-- migration 0009_prompt_corpus (sha256 eb8609482431506809201b05f77cb9caca07623601d28596aa1a192dbdabc60c)
CREATE TABLE IF NOT EXISTS tele.prompt_corpus
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
ENGINE = MergeTree
PARTITION BY toYYYYMM(day)
ORDER BY (day, prompt)
SETTINGS non_replicated_deduplication_window = 1000;

CREATE TABLE IF NOT EXISTS tele.prompt_corpus_runs
(
    day        Date,
    candidates UInt64,
    kept       UInt64,
    held_back  UInt64,
    done_at    DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree
ORDER BY day;

CREATE TABLE IF NOT EXISTS tele.corrections
(
    kind         LowCardinality(String),
    user_id      String,
    anonymous_id String,
    plan         LowCardinality(String),
    from_time    DateTime64(3, 'UTC'),
    to_time      DateTime64(3, 'UTC'),
    corrected_at DateTime64(3, 'UTC')
)
ENGINE = MergeTree
ORDER BY (user_id, anonymous_id, corrected_at);

-- migration 0010_hourly_and_pipeline_history (sha256 a95aef6cd707b1a097c50229f193d00ef0569cedcfb5b26e26754acb6df12c75)
CREATE TABLE IF NOT EXISTS tele.rollups_hourly
(
    hour           DateTime('UTC'),
    type           LowCardinality(String),
    plan           LowCardinality(String),
    quality        LowCardinality(String),
    resolution     LowCardinality(String),
    aspect_ratio   LowCardinality(String),
    model          LowCardinality(String),
    device_class   LowCardinality(String),
    device_os      LowCardinality(String),
    device_browser LowCardinality(String),
    events         AggregateFunction(count),
    users          AggregateFunction(uniq, Nullable(String)),
    latency_ms     AggregateFunction(quantilesIf(0.5, 0.9, 0.99), UInt32, UInt8)
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(hour)
ORDER BY (hour, type, plan, quality, resolution, aspect_ratio, model, device_class, device_os, device_browser)
SETTINGS non_replicated_deduplication_window = 1000;

CREATE MATERIALIZED VIEW IF NOT EXISTS tele.rollups_hourly_mv TO tele.rollups_hourly AS
SELECT
    toStartOfHour(timestamp) AS hour, type, plan, quality, resolution, aspect_ratio, model,
    device_class, device_os, device_browser,
    countState() AS events,
    uniqState(coalesce(nullIf(user_id, ''), nullIf(anonymous_id, ''))) AS users,
    quantilesIfState(0.5, 0.9, 0.99)(latency_ms, latency_ms > 0) AS latency_ms
FROM tele.events
GROUP BY hour, type, plan, quality, resolution, aspect_ratio, model, device_class, device_os, device_browser;

CREATE TABLE IF NOT EXISTS tele.pipeline_metrics
(
    time    DateTime64(3, 'UTC'),
    process LowCardinality(String),
    metric  LowCardinality(String),
    kind    LowCardinality(String),
    attrs   String,
    value   Float64
)
ENGINE = MergeTree
PARTITION BY toYYYYMMDD(time)
ORDER BY (metric, time, process, attrs);

-- migration 0011_daily_from_hourly (sha256 0d68c831ccc982de87fa4fd82d81da19c203b2c0436cda9a3f45de0b4b4ece1a)
DROP VIEW IF EXISTS tele.rollups_daily_mv;

CREATE MATERIALIZED VIEW IF NOT EXISTS tele.rollups_daily_mv TO tele.rollups_daily AS
SELECT
    toDate(hour) AS day, type, plan, quality, resolution, aspect_ratio,
    device_class, device_os, device_browser,
    countMergeState(events) AS events,
    uniqMergeState(users) AS users,
    quantilesIfMergeState(0.5, 0.9, 0.99)(latency_ms) AS latency_ms
FROM tele.rollups_hourly
GROUP BY day, type, plan, quality, resolution, aspect_ratio, device_class, device_os, device_browser;

-- migration 0012_merge_selector_base (sha256 9c4fd91f33cb1c0e9bd7e89bdcde8380051eb19225c1c84f2c89105aeddd99c6)
ALTER TABLE tele.events MODIFY SETTING merge_selector_base = 20;

-- migration 0013_pipeline_audit_merges (sha256 b0e3de1a64ed7e44f8d4ff558aef066af16dc09575ed80a986810bcce79cd928)
ALTER TABLE tele.pipeline_audit MODIFY SETTING merge_selector_base = 20;

-- migration 0014_pipeline_audit_inserted_by_consumer (sha256 6bc3c5c8e03108116ad2b67e28b06ee237d68df4d055ad192475f8b2c982e731)
DROP VIEW IF EXISTS tele.pipeline_audit_inserted_mv;

-- retention events
ALTER TABLE tele.events
MODIFY TTL
    toDateTime(timestamp) + INTERVAL 14 DAY DELETE WHERE plan = 'free',
    toDateTime(timestamp) + INTERVAL 395 DAY DELETE WHERE plan = 'pro';

-- retention events.prompt
ALTER TABLE tele.events
MODIFY COLUMN prompt TTL multiIf(
    plan = 'free', toDateTime(timestamp) + INTERVAL 1 DAY,
    plan = 'pro', toDateTime(timestamp) + INTERVAL 90 DAY,
    toDateTime(timestamp) + INTERVAL 1 DAY);

-- retention errors
ALTER TABLE tele.errors
MODIFY TTL toDateTime(timestamp) + INTERVAL 30 DAY;

-- retention rollups_daily
ALTER TABLE tele.rollups_daily
MODIFY TTL day + INTERVAL 730 DAY;

-- retention prompt_corpus
ALTER TABLE tele.prompt_corpus
MODIFY TTL day + INTERVAL 1095 DAY;

-- retention rollups_hourly
ALTER TABLE tele.rollups_hourly
MODIFY TTL hour + INTERVAL 92 DAY;

-- retention pipeline_metrics
ALTER TABLE tele.pipeline_metrics
MODIFY TTL toDateTime(time) + INTERVAL 30 DAY;

