-- B2B accounts (pkg/account, issue 17): the latest projected state per account and the
-- account's explanation history, written by the projector when accounts are on
-- (JOURNEY_PROJECTOR_ACCOUNTS). version grows with every committed update of an account,
-- so read account_state with FINAL or argMax(…, version); view holds the JSON of the
-- account's pkg/account.View (members with roles and last touch, history) at updated_at.
CREATE TABLE IF NOT EXISTS {{table "account_state"}} (
    account_id       String,
    version          UInt64,
    updated_at       DateTime('UTC'),
    stage            {{.LC}},
    stage_since      {{.Time}},
    at_risk          UInt8,
    at_risk_reasons  Array(String),
    gap              UInt8,
    open_quotes      Array(String),
    coverage         Array(String),
    uncovered        Array(String),
    members          UInt32,
    former_members   UInt32,
    nps              Nullable(Int16),
    respondents      UInt32,
    promoters        UInt32,
    passives         UInt32,
    detractors       UInt32,
    open_complaints  UInt32,
    last_touch       {{.Time}},
    next_change      Nullable({{.Time}}),
    rules_version    {{.LC}},
    view             String
) ENGINE = {{engine "account_state" "ReplacingMergeTree(version)"}}
ORDER BY account_id
;
-- Transition idx of an account, as stage_transitions is for customers: a late event may
-- rewrite the history; indexes that no longer exist are written again with valid = 0.
CREATE TABLE IF NOT EXISTS {{table "account_transitions"}} (
    account_id       String,
    idx              UInt32,
    version          UInt64,
    valid            UInt8,
    from_stage       {{.LC}},
    to_stage         {{.LC}},
    at               {{.Time}},
    reason           {{.LC}},
    cause_event_ids  Array(String),
    rules_version    {{.LC}}
) ENGINE = {{engine "account_transitions" "ReplacingMergeTree(version)"}}
ORDER BY (account_id, idx)
;
CREATE VIEW IF NOT EXISTS accounts_current AS
SELECT
    account_id, version, updated_at, CAST(stage AS String) AS stage, stage_since, at_risk,
    at_risk_reasons, gap, open_quotes, coverage, uncovered, members, former_members, nps,
    respondents, promoters, passives, detractors, open_complaints, last_touch, next_change,
    CAST(rules_version AS String) AS rules_version
FROM account_state FINAL
;
CREATE VIEW IF NOT EXISTS account_stage_distribution AS
SELECT CAST(stage AS String) AS stage, count() AS accounts, sum(at_risk) AS at_risk, sum(gap) AS gaps
FROM account_state FINAL
GROUP BY stage
;
-- One row per account and DMU role: covered = 1 when a current contact with the role
-- had a touchpoint within the coverage window (default 90 days) at updated_at.
CREATE VIEW IF NOT EXISTS account_coverage AS
SELECT account_id, updated_at, rc.1 AS role, rc.2 AS covered, gap
FROM account_state FINAL
ARRAY JOIN arrayConcat(arrayMap(r -> (r, toUInt8(1)), coverage), arrayMap(r -> (r, toUInt8(0)), uncovered)) AS rc
;
-- NPS per account and month: the account rows of nps_monthly (each respondent once, with
-- their latest answer of the month, under the account that answer named), which is what
-- /v1/metrics/nps?group_by=account&interval=month serves.
CREATE VIEW IF NOT EXISTS account_nps_monthly AS
SELECT period, value AS account_id, promoters, passives, detractors, respondents, nps
FROM nps_monthly
WHERE dimension = 'account'
;
CREATE VIEW IF NOT EXISTS account_transitions_valid AS
SELECT
    account_id, idx, version, CAST(from_stage AS String) AS from_stage,
    CAST(to_stage AS String) AS to_stage, at, CAST(reason AS String) AS reason,
    cause_event_ids, CAST(rules_version AS String) AS rules_version
FROM account_transitions FINAL
WHERE valid = 1
