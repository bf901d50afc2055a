-- privacy: the registries of data-subject requests (internal/privacy).
-- They hold no personal data beyond the subject's identifier and what was
-- asked: no event field, no IP, no prompt. ReplacingMergeTree collapses
-- repeated requests for a subject; readers take its latest row by
-- updated_at (argMax), so they never depend on merges.
--
-- tombstones: subjects whose data was deleted. The consumer drops their
-- events still in Kafka or the local log, so a deletion stays a deletion.
-- Kept without TTL: forgetting a tombstone would let a replay re-insert.
CREATE TABLE IF NOT EXISTS {{table "tombstones"}}{{on}}
(
    subject_type LowCardinality(String),
    subject_id   String,
    deleted_at   DateTime64(3, 'UTC'),
    updated_at   DateTime64(6, 'UTC')
)
ENGINE = {{engine "ReplacingMergeTree" "tombstones"}}
ORDER BY (subject_type, subject_id);
{{distributed "tombstones" "cityHash64(subject_id)"}}
-- opt_outs: the consent registry. opted_out false is an opt-in after an
-- opt-out; ingest strips identifiers and prompt of every event whose
-- user_id or anonymous_id has opted_out true as its latest row.
CREATE TABLE IF NOT EXISTS {{table "opt_outs"}}{{on}}
(
    subject_type LowCardinality(String),
    subject_id   String,
    opted_out    Bool,
    updated_at   DateTime64(6, 'UTC')
)
ENGINE = {{engine "ReplacingMergeTree" "opt_outs"}}
ORDER BY (subject_type, subject_id);
{{distributed "opt_outs" "cityHash64(subject_id)"}}
