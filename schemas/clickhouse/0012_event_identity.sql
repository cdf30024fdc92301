-- An event is its (source, id) (docs/writer.md, "Exactly once by identity"). The writer
-- checks every message against event_ids before it inserts, whatever its delivery count.
-- id_hash is xxhash64(source NUL id) and content_hash the fingerprint of type, subject,
-- time and data, both computed by the writer (touchpoint.IdentityHash, .ContentHash);
-- revision is the correction number (the `revision` extension, 0 for the original).
-- 18.16 has no ADD COLUMN IF NOT EXISTS: the migration runner treats "column already
-- exists" on an ADD COLUMN as done, so one column per statement.
ALTER TABLE {{table "events"}} ADD COLUMN id_hash UInt64
;
ALTER TABLE {{table "events"}} ADD COLUMN content_hash UInt64
;
ALTER TABLE {{table "events"}} ADD COLUMN revision UInt32
;
-- The identity index: ordered by id_hash so that a batch's check reads the granules of
-- its hashes only. Filled by the view below within the same INSERT as events, so a row
-- in events always has its entry (and an INSERT that fails stores neither).
CREATE TABLE IF NOT EXISTS {{table "event_ids"}} (
    id_hash      UInt64,
    source       String,
    id           String,
    revision     UInt32,
    content_hash UInt64,
    customer_id  String,
    stream_seq   UInt64
) ENGINE = {{engine "event_ids" "MergeTree"}}
ORDER BY id_hash
;
CREATE MATERIALIZED VIEW IF NOT EXISTS event_ids_mv TO {{table "event_ids"}} AS
SELECT id_hash, source, id, revision, content_hash, customer_id, stream_seq FROM {{table "events"}}
