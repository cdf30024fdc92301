-- The explanation history: transition idx of a customer. A late event can rewrite the
-- history: the projector writes every transition again with a higher version and marks
-- indexes that no longer exist valid = 0. Read with FINAL and WHERE valid = 1.
CREATE TABLE IF NOT EXISTS {{table "stage_transitions"}} (
    customer_id      String,
    idx              UInt32,
    version          UInt64,
    valid            UInt8,
    from_stage       {{.LC}},
    to_stage         {{.LC}},
    at               {{.Time}},
    reason           {{.LC}},
    cause_event_ids  Array(String),
    rules_version    {{.LC}}
) ENGINE = {{engine "stage_transitions" "ReplacingMergeTree(version)"}}
ORDER BY (customer_id, idx)
