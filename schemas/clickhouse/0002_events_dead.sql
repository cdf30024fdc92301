-- Events a consumer could not store or apply, with why (the poison queue's table).
CREATE TABLE IF NOT EXISTS {{table "events_dead"}} (
    consumer        {{.LC}},
    stream_seq      UInt64,
    subject         String,
    headers         String,
    raw             String,
    error_class     {{.LC}},
    error_text      String,
    delivery_count  UInt32,
    dead_at         DateTime('UTC')
) ENGINE = {{engine "events_dead" "MergeTree"}}
PARTITION BY toYYYYMM(dead_at)
ORDER BY (consumer, dead_at, stream_seq)
