-- bootstrap
CREATE DATABASE IF NOT EXISTS telemetry ON CLUSTER analytics;

CREATE TABLE IF NOT EXISTS telemetry.schema_migrations ON CLUSTER analytics
(
    version    UInt32,
    name       String,
    checksum   String,
    applied_at DateTime64(3, 'UTC')
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/telemetry/schema_migrations', '{replica}', applied_at)
ORDER BY version;

CREATE TABLE IF NOT EXISTS telemetry.schema_retention ON CLUSTER analytics
(
    target     String,
    statement  String,
    applied_at DateTime64(3, 'UTC')
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/telemetry/schema_retention', '{replica}', applied_at)
ORDER BY target;

-- migration 0001_events (sha256 156c26c76896e3acdea8f717d79069d04fb676983168521fd2a60625145b49c5)
CREATE TABLE IF NOT EXISTS telemetry.events_local ON CLUSTER analytics
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
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/telemetry/events_local', '{replica}')
PARTITION BY toYYYYMM(timestamp)
ORDER BY (type, plan, toDate(timestamp), event_id)
SETTINGS non_replicated_deduplication_window = 1000, deduplicate_merge_projection_mode = 'rebuild';

CREATE TABLE IF NOT EXISTS telemetry.events ON CLUSTER analytics AS telemetry.events_local
ENGINE = Distributed(analytics, telemetry, events_local, cityHash64(event_id));

-- migration 0002_errors (sha256 51d798a218626da1b04845ba9fa218824b097695d05f239d760644248a85026c)
CREATE TABLE IF NOT EXISTS telemetry.errors_local ON CLUSTER analytics
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
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/telemetry/errors_local', '{replica}')
PARTITION BY toYYYYMM(timestamp)
ORDER BY (error_code, toDate(timestamp), event_id);

CREATE TABLE IF NOT EXISTS telemetry.errors ON CLUSTER analytics AS telemetry.errors_local
ENGINE = Distributed(analytics, telemetry, errors_local, cityHash64(event_id));

CREATE MATERIALIZED VIEW IF NOT EXISTS telemetry.errors_mv_local ON CLUSTER analytics TO telemetry.errors_local AS
SELECT
    event_id, type, timestamp, error_code, error_message, error_stack,
    context_page_url AS page_url, device_class,
    device_browser AS browser, device_browser_version AS browser_version,
    device_os AS os, device_os_version AS os_version,
    context_app_version AS app_version, session_id, user_id, anonymous_id,
    plan, model, generation_id, source
FROM telemetry.events_local
WHERE type IN ('client_error', 'generation_failed');

-- migration 0003_rollups (sha256 8d3a19d7c43713708d76c3af1ff6c19e56ba3cd2784ba491bc9de0e87ed9eae1)
CREATE TABLE IF NOT EXISTS telemetry.rollups_daily_local ON CLUSTER analytics
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
ENGINE = ReplicatedAggregatingMergeTree('/clickhouse/tables/{shard}/telemetry/rollups_daily_local', '{replica}')
PARTITION BY toYYYYMM(day)
ORDER BY (day, type, plan, quality, resolution, aspect_ratio, device_class, device_os, device_browser);

CREATE TABLE IF NOT EXISTS telemetry.rollups_daily ON CLUSTER analytics AS telemetry.rollups_daily_local
ENGINE = Distributed(analytics, telemetry, rollups_daily_local, rand());

CREATE MATERIALIZED VIEW IF NOT EXISTS telemetry.rollups_daily_mv_local ON CLUSTER analytics TO telemetry.rollups_daily_local AS
SELECT
    toDate(timestamp) AS day, type, plan, quality, resolution, aspect_ratio,
    device_class, device_os, device_browser,
    countState() AS events,
    uniqState(coalesce(nullIf(user_id, ''), nullIf(anonymous_id, ''))) AS users,
    quantilesIfState(0.5, 0.9, 0.99)(latency_ms, latency_ms > 0) AS latency_ms
FROM telemetry.events_local
GROUP BY day, type, plan, quality, resolution, aspect_ratio, device_class, device_os, device_browser;

-- migration 0004_privacy (sha256 079f85155e39f087275abbeed005c6ba891d59930e19f37bf55d278589f7fe08)
CREATE TABLE IF NOT EXISTS telemetry.tombstones_local ON CLUSTER analytics
(
    subject_type LowCardinality(String),
    subject_id   String,
    deleted_at   DateTime64(3, 'UTC'),
    updated_at   DateTime64(6, 'UTC')
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/telemetry/tombstones_local', '{replica}')
ORDER BY (subject_type, subject_id);

CREATE TABLE IF NOT EXISTS telemetry.tombstones ON CLUSTER analytics AS telemetry.tombstones_local
ENGINE = Distributed(analytics, telemetry, tombstones_local, cityHash64(subject_id));

CREATE TABLE IF NOT EXISTS telemetry.opt_outs_local ON CLUSTER analytics
(
    subject_type LowCardinality(String),
    subject_id   String,
    opted_out    Bool,
    updated_at   DateTime64(6, 'UTC')
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/telemetry/opt_outs_local', '{replica}')
ORDER BY (subject_type, subject_id);

CREATE TABLE IF NOT EXISTS telemetry.opt_outs ON CLUSTER analytics AS telemetry.opt_outs_local
ENGINE = Distributed(analytics, telemetry, opt_outs_local, cityHash64(subject_id));

-- migration 0005_insert_parts (sha256 090adc41d5d4fdd8a6273ca6bcba611c92bd06c7f1608cbcd8d2ff5dc5a77311)
ALTER TABLE telemetry.events_local ON CLUSTER analytics MODIFY SETTING min_bytes_for_wide_part = 268435456;

-- migration 0006_view_dedup (sha256 b75421019c9e95bfb23600f1536e1fe16342b8d620cce5ffe36623162844235d)
ALTER TABLE telemetry.errors_local ON CLUSTER analytics MODIFY SETTING non_replicated_deduplication_window = 1000;

ALTER TABLE telemetry.rollups_daily_local ON CLUSTER analytics MODIFY SETTING non_replicated_deduplication_window = 1000;

-- migration 0007_identity (sha256 ed312b87df0a2ac466b6c5e1ba98babf9cbc59570a17cd5ce02d956301a62038)
ALTER TABLE telemetry.events_local ON CLUSTER analytics
    ADD COLUMN IF NOT EXISTS group_id String AFTER session_id,
    ADD COLUMN IF NOT EXISTS previous_id String AFTER group_id;

ALTER TABLE telemetry.events ON CLUSTER analytics
    ADD COLUMN IF NOT EXISTS group_id String AFTER session_id,
    ADD COLUMN IF NOT EXISTS previous_id String AFTER group_id;

CREATE TABLE IF NOT EXISTS telemetry.identity_links_local ON CLUSTER analytics
(
    previous_id  String,
    user_id      String,
    anonymous_id String,
    timestamp    DateTime64(3, 'UTC'),
    received_at  DateTime64(3, 'UTC'),
    event_id     UUID,
    source       LowCardinality(String)
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/telemetry/identity_links_local', '{replica}')
ORDER BY (previous_id, user_id, event_id)
SETTINGS non_replicated_deduplication_window = 1000;

CREATE TABLE IF NOT EXISTS telemetry.identity_links ON CLUSTER analytics AS telemetry.identity_links_local
ENGINE = Distributed(analytics, telemetry, identity_links_local, cityHash64(previous_id));

CREATE MATERIALIZED VIEW IF NOT EXISTS telemetry.identity_links_mv_local ON CLUSTER analytics TO telemetry.identity_links_local AS
SELECT previous_id, user_id, anonymous_id, timestamp, received_at, event_id, source
FROM telemetry.events_local
WHERE type = 'alias' AND previous_id != '' AND user_id != '';

CREATE TABLE IF NOT EXISTS telemetry.group_members_local ON CLUSTER analytics
(
    group_id     String,
    user_id      String,
    anonymous_id String,
    timestamp    DateTime64(3, 'UTC'),
    received_at  DateTime64(3, 'UTC'),
    event_id     UUID,
    source       LowCardinality(String)
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/telemetry/group_members_local', '{replica}')
ORDER BY (group_id, user_id, anonymous_id, event_id)
SETTINGS non_replicated_deduplication_window = 1000;

CREATE TABLE IF NOT EXISTS telemetry.group_members ON CLUSTER analytics AS telemetry.group_members_local
ENGINE = Distributed(analytics, telemetry, group_members_local, cityHash64(group_id));

CREATE MATERIALIZED VIEW IF NOT EXISTS telemetry.group_members_mv_local ON CLUSTER analytics TO telemetry.group_members_local AS
SELECT group_id, user_id, anonymous_id, timestamp, received_at, event_id, source
FROM telemetry.events_local
WHERE type = 'group' AND group_id != '';

-- migration 0008_pipeline_audit (sha256 b6028c7b0e25354edbc9201e3c6d84689faca48817340c54367b495b2eae6720)
ALTER TABLE telemetry.events_local ON CLUSTER analytics
    ADD COLUMN IF NOT EXISTS seq UInt32 AFTER session_id,
    ADD COLUMN IF NOT EXISTS context_unload_seq UInt32 AFTER context_user_agent;

ALTER TABLE telemetry.events ON CLUSTER analytics
    ADD COLUMN IF NOT EXISTS seq UInt32 AFTER session_id,
    ADD COLUMN IF NOT EXISTS context_unload_seq UInt32 AFTER context_user_agent;

CREATE TABLE IF NOT EXISTS telemetry.pipeline_audit_local ON CLUSTER analytics
(
    window_start DateTime('UTC'),
    source       LowCardinality(String),
    stage        LowCardinality(String),
    reason       LowCardinality(String),
    record_id    String,
    n            UInt64
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/telemetry/pipeline_audit_local', '{replica}')
PARTITION BY toYYYYMM(window_start)
ORDER BY (window_start, source, stage, reason, record_id)
TTL window_start + INTERVAL 35 DAY
SETTINGS non_replicated_deduplication_window = 1000;

CREATE TABLE IF NOT EXISTS telemetry.pipeline_audit ON CLUSTER analytics AS telemetry.pipeline_audit_local
ENGINE = Distributed(analytics, telemetry, pipeline_audit_local, cityHash64(source));

CREATE MATERIALIZED VIEW IF NOT EXISTS telemetry.pipeline_audit_inserted_mv_local ON CLUSTER analytics TO telemetry.pipeline_audit_local AS
SELECT
    toStartOfMinute(received_at) AS window_start,
    source,
    'inserted' AS stage,
    '' AS reason,
    concat('inserted/', kafka_topic, '/', toString(kafka_partition), '/', toString(min(kafka_offset))) AS record_id,
    count() AS n
FROM telemetry.events_local
GROUP BY window_start, source, kafka_topic, kafka_partition;

-- migration 0009_prompt_corpus (sha256 eb8609482431506809201b05f77cb9caca07623601d28596aa1a192dbdabc60c)
CREATE TABLE IF NOT EXISTS telemetry.prompt_corpus_local ON CLUSTER analytics
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
ENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/telemetry/prompt_corpus_local', '{replica}')
PARTITION BY toYYYYMM(day)
ORDER BY (day, prompt)
SETTINGS non_replicated_deduplication_window = 1000;

CREATE TABLE IF NOT EXISTS telemetry.prompt_corpus ON CLUSTER analytics AS telemetry.prompt_corpus_local
ENGINE = Distributed(analytics, telemetry, prompt_corpus_local, cityHash64(prompt));

CREATE TABLE IF NOT EXISTS telemetry.prompt_corpus_runs_local ON CLUSTER analytics
(
    day        Date,
    candidates UInt64,
    kept       UInt64,
    held_back  UInt64,
    done_at    DateTime64(3, 'UTC')
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/telemetry/prompt_corpus_runs_local', '{replica}')
ORDER BY day;

CREATE TABLE IF NOT EXISTS telemetry.prompt_corpus_runs ON CLUSTER analytics AS telemetry.prompt_corpus_runs_local
ENGINE = Distributed(analytics, telemetry, prompt_corpus_runs_local, toYYYYMM(day));

CREATE TABLE IF NOT EXISTS telemetry.corrections_local ON CLUSTER analytics
(
    kind         LowCardinality(String),
    user_id      String,
    anonymous_id String,
    plan         LowCardinality(String),
    from_time    DateTime64(3, 'UTC'),
    to_time      DateTime64(3, 'UTC'),
    corrected_at DateTime64(3, 'UTC')
)
ENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/telemetry/corrections_local', '{replica}')
ORDER BY (user_id, anonymous_id, corrected_at);

CREATE TABLE IF NOT EXISTS telemetry.corrections ON CLUSTER analytics AS telemetry.corrections_local
ENGINE = Distributed(analytics, telemetry, corrections_local, cityHash64(user_id, anonymous_id));

-- migration 0010_hourly_and_pipeline_history (sha256 a95aef6cd707b1a097c50229f193d00ef0569cedcfb5b26e26754acb6df12c75)
CREATE TABLE IF NOT EXISTS telemetry.rollups_hourly_local ON CLUSTER analytics
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
ENGINE = ReplicatedAggregatingMergeTree('/clickhouse/tables/{shard}/telemetry/rollups_hourly_local', '{replica}')
PARTITION BY toYYYYMM(hour)
ORDER BY (hour, type, plan, quality, resolution, aspect_ratio, model, device_class, device_os, device_browser)
SETTINGS non_replicated_deduplication_window = 1000;

CREATE TABLE IF NOT EXISTS telemetry.rollups_hourly ON CLUSTER analytics AS telemetry.rollups_hourly_local
ENGINE = Distributed(analytics, telemetry, rollups_hourly_local, rand());

CREATE MATERIALIZED VIEW IF NOT EXISTS telemetry.rollups_hourly_mv_local ON CLUSTER analytics TO telemetry.rollups_hourly_local AS
SELECT
    toStartOfHour(timestamp) AS hour, type, plan, quality, resolution, aspect_ratio, model,
    device_class, device_os, device_browser,
    countState() AS events,
    uniqState(coalesce(nullIf(user_id, ''), nullIf(anonymous_id, ''))) AS users,
    quantilesIfState(0.5, 0.9, 0.99)(latency_ms, latency_ms > 0) AS latency_ms
FROM telemetry.events_local
GROUP BY hour, type, plan, quality, resolution, aspect_ratio, model, device_class, device_os, device_browser;

CREATE TABLE IF NOT EXISTS telemetry.pipeline_metrics_local ON CLUSTER analytics
(
    time    DateTime64(3, 'UTC'),
    process LowCardinality(String),
    metric  LowCardinality(String),
    kind    LowCardinality(String),
    attrs   String,
    value   Float64
)
ENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/telemetry/pipeline_metrics_local', '{replica}')
PARTITION BY toYYYYMMDD(time)
ORDER BY (metric, time, process, attrs);

CREATE TABLE IF NOT EXISTS telemetry.pipeline_metrics ON CLUSTER analytics AS telemetry.pipeline_metrics_local
ENGINE = Distributed(analytics, telemetry, pipeline_metrics_local, rand());

-- migration 0011_daily_from_hourly (sha256 0d68c831ccc982de87fa4fd82d81da19c203b2c0436cda9a3f45de0b4b4ece1a)
DROP VIEW IF EXISTS telemetry.rollups_daily_mv_local ON CLUSTER analytics;

CREATE MATERIALIZED VIEW IF NOT EXISTS telemetry.rollups_daily_mv_local ON CLUSTER analytics TO telemetry.rollups_daily_local AS
SELECT
    toDate(hour) AS day, type, plan, quality, resolution, aspect_ratio,
    device_class, device_os, device_browser,
    countMergeState(events) AS events,
    uniqMergeState(users) AS users,
    quantilesIfMergeState(0.5, 0.9, 0.99)(latency_ms) AS latency_ms
FROM telemetry.rollups_hourly_local
GROUP BY day, type, plan, quality, resolution, aspect_ratio, device_class, device_os, device_browser;

-- migration 0012_merge_selector_base (sha256 9c4fd91f33cb1c0e9bd7e89bdcde8380051eb19225c1c84f2c89105aeddd99c6)
ALTER TABLE telemetry.events_local ON CLUSTER analytics MODIFY SETTING merge_selector_base = 20;

-- migration 0013_pipeline_audit_merges (sha256 b0e3de1a64ed7e44f8d4ff558aef066af16dc09575ed80a986810bcce79cd928)
ALTER TABLE telemetry.pipeline_audit_local ON CLUSTER analytics MODIFY SETTING merge_selector_base = 20;

-- migration 0014_pipeline_audit_inserted_by_consumer (sha256 6bc3c5c8e03108116ad2b67e28b06ee237d68df4d055ad192475f8b2c982e731)
DROP VIEW IF EXISTS telemetry.pipeline_audit_inserted_mv_local ON CLUSTER analytics;

-- retention events
ALTER TABLE telemetry.events_local ON CLUSTER analytics
MODIFY TTL
    toDateTime(timestamp) + INTERVAL 30 DAY DELETE WHERE plan = 'free',
    toDateTime(timestamp) + INTERVAL 395 DAY DELETE WHERE plan = 'pro';

-- retention events.prompt
ALTER TABLE telemetry.events_local ON CLUSTER analytics
MODIFY COLUMN prompt TTL multiIf(
    plan = 'free', toDateTime(timestamp) + INTERVAL 7 DAY,
    plan = 'pro', toDateTime(timestamp) + INTERVAL 90 DAY,
    toDateTime(timestamp) + INTERVAL 7 DAY);

-- retention errors
ALTER TABLE telemetry.errors_local ON CLUSTER analytics
MODIFY TTL toDateTime(timestamp) + INTERVAL 30 DAY;

-- retention rollups_daily
ALTER TABLE telemetry.rollups_daily_local ON CLUSTER analytics
MODIFY TTL day + INTERVAL 1095 DAY;

-- retention prompt_corpus
ALTER TABLE telemetry.prompt_corpus_local ON CLUSTER analytics
MODIFY TTL day + INTERVAL 1095 DAY;

-- retention rollups_hourly
ALTER TABLE telemetry.rollups_hourly_local ON CLUSTER analytics
MODIFY TTL hour + INTERVAL 92 DAY;

-- retention pipeline_metrics
ALTER TABLE telemetry.pipeline_metrics_local ON CLUSTER analytics
MODIFY TTL toDateTime(time) + INTERVAL 30 DAY;

