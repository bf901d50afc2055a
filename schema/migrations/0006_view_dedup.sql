-- errors and rollups_daily remember the insert blocks they took, as events
-- does: a batch inserted again with its insert_deduplication_token (a
-- retried insert, or the consumer completing after a restart an insert the
-- process died in, engine included, before the materialized views ran) is
-- dropped by events and still runs the views, which then take only the
-- blocks they have not got. Without a window of their own the views would
-- count such a batch twice.
ALTER TABLE {{table "errors"}}{{on}} MODIFY SETTING non_replicated_deduplication_window = 1000;
ALTER TABLE {{table "rollups_daily"}}{{on}} MODIFY SETTING non_replicated_deduplication_window = 1000;
