-- Latest projected state per customer. version is the projector's state version
-- (strictly increasing per customer), so the newest row wins on merge; read with FINAL
-- or argMax(…, version).
CREATE TABLE IF NOT EXISTS {{table "customer_state"}} (
    customer_id       String,
    version           UInt64,
    updated_at        DateTime('UTC'),
    stage             {{.LC}},
    stage_since       {{.Time}},
    account_id        String,
    first_seen        {{.Time}},
    last_touch        {{.Time}},
    counted_orders    UInt32,
    first_visit_at    Nullable({{.Time}}),
    first_quote_at    Nullable({{.Time}}),
    first_order_at    Nullable({{.Time}}),
    first_loyal_at    Nullable({{.Time}}),
    expires_at        Nullable({{.Time}}),
    offboarded        UInt8,
    offboarded_at     Nullable({{.Time}}),
    nps_score         Nullable(UInt8),
    nps_category      {{.LC}},
    nps_comment       String,
    responses         UInt32,
    open_complaints   UInt32,
    last_complaint_at Nullable({{.Time}}),
    at_risk           UInt8,
    rules_version     {{.LC}}
) ENGINE = {{engine "customer_state" "ReplacingMergeTree(version)"}}
ORDER BY customer_id
