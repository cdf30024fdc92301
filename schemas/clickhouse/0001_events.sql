-- One row per touchpoint, written exactly once by the writer (see docs/writer.md).
-- {{.Time}} is DateTime64(3, 'UTC') on ClickHouse >= 20.1 and DateTime('UTC') on older
-- servers; time_ms keeps the exact millisecond on both so ordering never depends on it.
-- {{.LC}} is LowCardinality(String) on servers that have it without a flag, else String.
-- ORDER BY serves both "all events of a kind in a period" (kind prefix + monthly partitions)
-- and "one customer's timeline" (kind IN (all kinds) AND customer_id = ?: one range per kind
-- and month). Granules of 1024 rows instead of 8192 keep that timeline read small: with
-- 8192 a page read ~800k rows at 1M events (docs/perf-api.md).
CREATE TABLE IF NOT EXISTS {{table "events"}} (
    stream_seq      UInt64,
    id              String,
    source          {{.LC}},
    type            {{.LC}},
    kind            {{.LC}},
    customer_id     String,
    time            {{.Time}},
    time_ms         Int64,
    ingested_at     DateTime('UTC'),
    ext_keys        Array(String),
    ext_values      Array(String),
    account_id      String,
    contact_id      String,
    dmu_role        {{.LC}},
    channel         {{.LC}},
    campaign        String,
    status          {{.LC}},
    amount_cents    Int64,
    currency        {{.LC}},
    items           UInt32,
    score           Nullable(UInt8),
    quote_id        String,
    order_id        String,
    complaint_id    String,
    survey_id       String,
    category        String,
    severity        {{.LC}},
    data            String
) ENGINE = {{engine "events" "MergeTree"}}
PARTITION BY toYYYYMM(time)
ORDER BY (kind, customer_id, time_ms, stream_seq)
SETTINGS index_granularity = 1024
