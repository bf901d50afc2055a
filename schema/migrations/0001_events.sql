-- events: one row per enriched event, every field of schema.Enriched
-- flattened. ReplacingMergeTree collapses a client's resend of the same
-- event_id (the sorting key ends in event_id); the dedup window drops a
-- retried insert with the same insert_deduplication_token; the offsets
-- projection answers the consumer's high-water query. Retention TTLs are
-- not here: migrate renders them from config and applies them with ALTER.
CREATE TABLE IF NOT EXISTS {{table "events"}}{{on}}
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
ENGINE = {{engine "ReplacingMergeTree" "events"}}
PARTITION BY toYYYYMM(timestamp)
ORDER BY (type, plan, toDate(timestamp), event_id)
SETTINGS non_replicated_deduplication_window = 1000, deduplicate_merge_projection_mode = 'rebuild';
{{distributed "events" "cityHash64(event_id)"}}
