-- events: a consumer's insert (100k rows, ~100 MB uncompressed) is written
-- as a Compact part (all columns in one file) instead of a Wide one (a file
-- per column), which halved the write cost of such an insert; merges make
-- parts past 256 MiB Wide, as analysts' scans prefer.
ALTER TABLE {{table "events"}}{{on}} MODIFY SETTING min_bytes_for_wide_part = 268435456;
