-- rollups_hourly: rollups_daily's dimensions per hour, plus model, so a
-- dashboard range of up to a week (hour buckets) never scans raw events,
-- and top models read a rollup. Exact like the daily one: the consumer's
-- dedup window drops a client's resend before the insert, and the table
-- keeps a deduplication window of insert blocks (as 0006 gives
-- rollups_daily), so a batch inserted again with its
-- insert_deduplication_token after a crash is not counted twice. No user
-- identifier is stored: users is a uniq sketch of hashes. It fills from
-- the events inserted after this migration (no backfill: a backfill beside
-- a running consumer would count the rows inserted meanwhile twice);
-- kept retention.rollups_hourly_days.
CREATE TABLE IF NOT EXISTS {{table "rollups_hourly"}}{{on}}
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
ENGINE = {{engine "AggregatingMergeTree" "rollups_hourly"}}
PARTITION BY toYYYYMM(hour)
ORDER BY (hour, type, plan, quality, resolution, aspect_ratio, model, device_class, device_os, device_browser)
SETTINGS non_replicated_deduplication_window = 1000;
{{distributed "rollups_hourly" "rand()"}}
CREATE MATERIALIZED VIEW IF NOT EXISTS {{table "rollups_hourly_mv"}}{{on}} TO {{table "rollups_hourly"}} AS
SELECT
    toStartOfHour(timestamp) AS hour, type, plan, quality, resolution, aspect_ratio, model,
    device_class, device_os, device_browser,
    countState() AS events,
    uniqState(coalesce(nullIf(user_id, ''), nullIf(anonymous_id, ''))) AS users,
    quantilesIfState(0.5, 0.9, 0.99)(latency_ms, latency_ms > 0) AS latency_ms
FROM {{table "events"}}
GROUP BY hour, type, plan, quality, resolution, aspect_ratio, model, device_class, device_os, device_browser;
-- pipeline_metrics: the pipeline's own recorded history, for the
-- dashboards' pipeline page without a Prometheus server. Each process
-- writes a snapshot of its counters and gauges every history.interval
-- (internal/history): one row per instrument and attribute set
-- (attrs: k=v pairs joined by ',', sorted). Counters are cumulative since
-- the process started (rates are differences between snapshots of one
-- process); gauges are the value at the snapshot. Kept
-- retention.pipeline_history_days.
CREATE TABLE IF NOT EXISTS {{table "pipeline_metrics"}}{{on}}
(
    time    DateTime64(3, 'UTC'),
    process LowCardinality(String),
    metric  LowCardinality(String),
    kind    LowCardinality(String),
    attrs   String,
    value   Float64
)
ENGINE = {{engine "MergeTree" "pipeline_metrics"}}
PARTITION BY toYYYYMMDD(time)
ORDER BY (metric, time, process, attrs);
{{distributed "pipeline_metrics" "rand()"}}
