-- errors: client_error and generation_failed details for engineers, filled
-- by a materialized view from events. Never the prompt.
CREATE TABLE IF NOT EXISTS {{table "errors"}}{{on}}
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
ENGINE = {{engine "ReplacingMergeTree" "errors"}}
PARTITION BY toYYYYMM(timestamp)
ORDER BY (error_code, toDate(timestamp), event_id);
{{distributed "errors" "cityHash64(event_id)"}}
CREATE MATERIALIZED VIEW IF NOT EXISTS {{table "errors_mv"}}{{on}} TO {{table "errors"}} AS
SELECT
    event_id, type, timestamp, error_code, error_message, error_stack,
    context_page_url AS page_url, device_class,
    device_browser AS browser, device_browser_version AS browser_version,
    device_os AS os, device_os_version AS os_version,
    context_app_version AS app_version, session_id, user_id, anonymous_id,
    plan, model, generation_id, source
FROM {{table "events"}}
WHERE type IN ('client_error', 'generation_failed');
