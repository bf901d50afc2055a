-- pipeline_audit: merges rewrite fewer rows, as migration 0012 did for
-- events. With the audit on, the consumer inserts a part of audit rows
-- before each batch (about 4,000 rows for 100,000 events: ingest's records
-- of their requests) and the events insert's view another; with the
-- default merge_selector_base (5) each audit row was merged about ten
-- times (BenchmarkInsertAndMerge's audit_rows, 2026-12-02). A base of 20:
-- 24% less CPU per audit insert with its merges, back-to-back inserts of
-- 4,000 rows (two runs each, 39.2 and 38.9 ms against 29.8 and 30.0).
-- The report reads the table with FINAL over a few more parts.
ALTER TABLE {{table "pipeline_audit"}}{{on}} MODIFY SETTING merge_selector_base = 20;
