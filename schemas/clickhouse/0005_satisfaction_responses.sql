-- One row per survey answer, with its NPS category and the customer's stage when it was
-- given. Keyed by the event, so a replay replaces instead of adding.
CREATE TABLE IF NOT EXISTS {{table "satisfaction_responses"}} (
    customer_id   String,
    contact_id    String,
    account_id    String,
    source        {{.LC}},
    event_id      String,
    survey_id     String,
    time          {{.Time}},
    score         UInt8,
    category      {{.LC}},
    comment       String,
    stage         {{.LC}},
    stream_seq    UInt64
) ENGINE = {{engine "satisfaction_responses" "ReplacingMergeTree(stream_seq)"}}
PARTITION BY toYYYYMM(time)
ORDER BY (customer_id, source, event_id)
