-- rollups_daily is fed from rollups_hourly's inserts instead of from the
-- events: the hourly rollup holds every key of the daily one (and model),
-- so a day's states are the merge of its hours' states. The daily view
-- then aggregates the few hundred hourly rows of an insert, not its
-- 100,000 events: the two views over the events were a fifth of the
-- engine's insert CPU, and one of them is gone. A retried or completed
-- insert is still counted once: rollups_hourly and rollups_daily each
-- keep a deduplication window (0006, 0010), and a block rollups_hourly
-- drops as a copy still runs this view, so rollups_daily takes it if it
-- has not got it (TestInsertKilledBeforeTheViewsIsCompletedAtStart).
DROP VIEW IF EXISTS {{table "rollups_daily_mv"}}{{on}};
CREATE MATERIALIZED VIEW IF NOT EXISTS {{table "rollups_daily_mv"}}{{on}} TO {{table "rollups_daily"}} AS
SELECT
    toDate(hour) AS day, type, plan, quality, resolution, aspect_ratio,
    device_class, device_os, device_browser,
    countMergeState(events) AS events,
    uniqMergeState(users) AS users,
    quantilesIfMergeState(0.5, 0.9, 0.99)(latency_ms) AS latency_ms
FROM {{table "rollups_hourly"}}
GROUP BY day, type, plan, quality, resolution, aspect_ratio, device_class, device_os, device_browser;
