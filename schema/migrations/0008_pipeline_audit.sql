-- events gains the browser SDK's delivery numbers (schema.Event.Seq and
-- Context.UnloadSeq): seq numbers a session's events from 1, unload_seq
-- says where the session last handed events to the browser at unload.
-- The audit reports the numbers that never arrived. 0 means unnumbered.
{{range tables "events"}}ALTER TABLE {{.}}{{on}}
    ADD COLUMN IF NOT EXISTS seq UInt32 AFTER session_id,
    ADD COLUMN IF NOT EXISTS context_unload_seq UInt32 AFTER context_user_agent;
{{end}}
-- pipeline_audit: the completeness audit (internal/audit). Per one-minute
-- window of received_at and per source (write key), what each stage
-- counted: ingest's accepted, published, spooled, rejected and dropped
-- events and refused requests (audit records it publishes on the bus
-- before answering 2xx); the consumer's consumed, deduplicated,
-- dead_lettered and filtered (written before the insert of the batch's
-- rows, committed after both); the events table's inserted (the view
-- below, in the insert that stores the rows).
--
-- One row per record_id: a count written twice (a redelivered batch, a
-- replayed audit record) is one count under FINAL, which every reader
-- uses. Kept 35 days (docs/capacity.md has its size).
CREATE TABLE IF NOT EXISTS {{table "pipeline_audit"}}{{on}}
(
    window_start DateTime('UTC'),
    source       LowCardinality(String),
    stage        LowCardinality(String),
    reason       LowCardinality(String),
    record_id    String,
    n            UInt64
)
ENGINE = {{engine "ReplacingMergeTree" "pipeline_audit"}}
PARTITION BY toYYYYMM(window_start)
ORDER BY (window_start, source, stage, reason, record_id)
TTL window_start + INTERVAL 35 DAY
SETTINGS non_replicated_deduplication_window = 1000;
{{distributed "pipeline_audit" "cityHash64(source)"}}
-- inserted: the rows each insert into events stored, per window, source
-- and bus position, named by the position of its first row. It runs in
-- the events insert, with its deduplication token (a retried or completed
-- insert counts once), so a stored row is never missing from the count
-- nor counted twice. Rows deleted later (privacy, TTL) stay counted: they
-- were stored.
CREATE MATERIALIZED VIEW IF NOT EXISTS {{table "pipeline_audit_inserted_mv"}}{{on}} TO {{table "pipeline_audit"}} AS
SELECT
    toStartOfMinute(received_at) AS window_start,
    source,
    'inserted' AS stage,
    '' AS reason,
    concat('inserted/', kafka_topic, '/', toString(kafka_partition), '/', toString(min(kafka_offset))) AS record_id,
    count() AS n
FROM {{table "events"}}
GROUP BY window_start, source, kafka_topic, kafka_partition;
