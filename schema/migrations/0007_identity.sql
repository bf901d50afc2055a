-- identity: what Segment's alias and group calls mean (collector/segmentapi.go).
--
-- events gains group_id (the account or organisation the user acted for:
-- a group call, or context.groupId of any call; dashboards filter by it)
-- and previous_id (set on alias events only). On a cluster the columns go
-- on the local and the Distributed table alike.
{{range tables "events"}}ALTER TABLE {{.}}{{on}}
    ADD COLUMN IF NOT EXISTS group_id String AFTER session_id,
    ADD COLUMN IF NOT EXISTS previous_id String AFTER group_id;
{{end}}
-- identity_links: an alias links previous_id (an earlier anonymous_id or
-- user_id) to user_id, one row per link, filled from the alias events.
-- The privacy export and delete cover it: a user_id subject by user_id or
-- previous_id, an anonymous_id subject by previous_id.
CREATE TABLE IF NOT EXISTS {{table "identity_links"}}{{on}}
(
    previous_id  String,
    user_id      String,
    anonymous_id String,
    timestamp    DateTime64(3, 'UTC'),
    received_at  DateTime64(3, 'UTC'),
    event_id     UUID,
    source       LowCardinality(String)
)
ENGINE = {{engine "ReplacingMergeTree" "identity_links"}}
ORDER BY (previous_id, user_id, event_id)
SETTINGS non_replicated_deduplication_window = 1000;
{{distributed "identity_links" "cityHash64(previous_id)"}}
CREATE MATERIALIZED VIEW IF NOT EXISTS {{table "identity_links_mv"}}{{on}} TO {{table "identity_links"}} AS
SELECT previous_id, user_id, anonymous_id, timestamp, received_at, event_id, source
FROM {{table "events"}}
WHERE type = 'alias' AND previous_id != '' AND user_id != '';
-- group_members: who acted for which group, one row per group call, so a
-- dashboard filter on a group also finds the members' events that carry
-- no group_id. Covered by the privacy export and delete like events.
CREATE TABLE IF NOT EXISTS {{table "group_members"}}{{on}}
(
    group_id     String,
    user_id      String,
    anonymous_id String,
    timestamp    DateTime64(3, 'UTC'),
    received_at  DateTime64(3, 'UTC'),
    event_id     UUID,
    source       LowCardinality(String)
)
ENGINE = {{engine "ReplacingMergeTree" "group_members"}}
ORDER BY (group_id, user_id, anonymous_id, event_id)
SETTINGS non_replicated_deduplication_window = 1000;
{{distributed "group_members" "cityHash64(group_id)"}}
CREATE MATERIALIZED VIEW IF NOT EXISTS {{table "group_members_mv"}}{{on}} TO {{table "group_members"}} AS
SELECT group_id, user_id, anonymous_id, timestamp, received_at, event_id, source
FROM {{table "events"}}
WHERE type = 'group' AND group_id != '';
