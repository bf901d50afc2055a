-- rollups_daily: per day and dimension, the event count, a uniq sketch of
-- users and latency quantile states. No user identifier is stored: uniq
-- keeps 64-bit hashes in a sketch, not ids.
CREATE TABLE IF NOT EXISTS {{table "rollups_daily"}}{{on}}
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
ENGINE = {{engine "AggregatingMergeTree" "rollups_daily"}}
PARTITION BY toYYYYMM(day)
ORDER BY (day, type, plan, quality, resolution, aspect_ratio, device_class, device_os, device_browser);
{{distributed "rollups_daily" "rand()"}}
CREATE MATERIALIZED VIEW IF NOT EXISTS {{table "rollups_daily_mv"}}{{on}} TO {{table "rollups_daily"}} AS
SELECT
    toDate(timestamp) AS day, type, plan, quality, resolution, aspect_ratio,
    device_class, device_os, device_browser,
    countState() AS events,
    uniqState(coalesce(nullIf(user_id, ''), nullIf(anonymous_id, ''))) AS users,
    quantilesIfState(0.5, 0.9, 0.99)(latency_ms, latency_ms > 0) AS latency_ms
FROM {{table "events"}}
GROUP BY day, type, plan, quality, resolution, aspect_ratio, device_class, device_os, device_browser;
