-- Views for BI tools (Grafana, Metabase, Superset) and the API: documented in
-- docs/dashboards.md. Plain views, not materialized: every source table is
-- small per day or deduplicated by a ReplacingMergeTree, and a materialized
-- view would aggregate replayed rows twice. They use only functions that
-- exist on ClickHouse 18.16 and current releases: no window functions, no
-- sign() (missing on 18.16), no round() for NPS (18.16 rounds floats half
-- away from zero, current releases half to even), toMonday for weeks.
-- FINAL before WHERE is safe on both: neither moves a WHERE into PREWHERE
-- (which would filter before the replacing merge) when FINAL is present.
CREATE VIEW IF NOT EXISTS touchpoints_daily AS
SELECT
    toDate(time) AS day,
    CAST(kind AS String) AS kind,
    CAST(source AS String) AS source,
    count() AS touchpoints,
    uniqExact(customer_id) AS customers
FROM events
GROUP BY day, kind, source
;
CREATE VIEW IF NOT EXISTS customers_current AS
SELECT
    customer_id, version, updated_at, CAST(stage AS String) AS stage, stage_since, account_id,
    first_seen, last_touch, counted_orders, first_visit_at, first_quote_at, first_order_at,
    first_loyal_at, expires_at, offboarded, offboarded_at, nps_score,
    CAST(nps_category AS String) AS nps_category, nps_comment, responses, open_complaints,
    last_complaint_at, at_risk, CAST(rules_version AS String) AS rules_version
FROM customer_state FINAL
;
CREATE VIEW IF NOT EXISTS stage_distribution AS
SELECT CAST(stage AS String) AS stage, count() AS customers
FROM customer_state FINAL
GROUP BY stage
;
CREATE VIEW IF NOT EXISTS stage_transitions_valid AS
SELECT
    customer_id, idx, version, CAST(from_stage AS String) AS from_stage,
    CAST(to_stage AS String) AS to_stage, at, CAST(reason AS String) AS reason,
    cause_event_ids, CAST(rules_version AS String) AS rules_version
FROM stage_transitions FINAL
WHERE valid = 1
;
CREATE VIEW IF NOT EXISTS stage_flows_daily AS
SELECT
    toDate(at) AS day,
    CAST(from_stage AS String) AS from_stage,
    CAST(to_stage AS String) AS to_stage,
    count() AS transitions
FROM stage_transitions FINAL
WHERE valid = 1
GROUP BY day, from_stage, to_stage
;
-- Customers per stage at the end of every day from the first transition to
-- today: a running sum of entries minus exits, done with arrays because
-- 18.16 has no window functions.
CREATE VIEW IF NOT EXISTS stage_distribution_daily AS
SELECT
    stage,
    day,
    toInt64(cums[arrayCount(x -> x <= day, days)]) AS customers
FROM
(
    SELECT
        stage,
        arrayMap(x -> x.1, sorted) AS days,
        arrayCumSum(arrayMap(x -> x.2, sorted)) AS cums,
        first_day,
        last_day
    FROM
    (
        SELECT
            stage,
            arraySort(groupArray((d, net))) AS sorted,
            (SELECT min(toDate(at)) FROM stage_transitions) AS first_day,
            greatest(today(), (SELECT max(toDate(at)) FROM stage_transitions)) AS last_day
        FROM
        (
            SELECT stage, d, sum(delta) AS net
            FROM
            (
                SELECT
                    arrayJoin([(CAST(to_stage AS String), toInt64(1)), (CAST(from_stage AS String), toInt64(-1))]) AS sd,
                    sd.1 AS stage,
                    sd.2 AS delta,
                    toDate(at) AS d
                FROM stage_transitions FINAL
                WHERE valid = 1
            )
            WHERE stage != 'none'
            GROUP BY stage, d
        )
        GROUP BY stage
    )
)
ARRAY JOIN arrayMap(i -> first_day + i, range(toUInt32(last_day - first_day + 1))) AS day
;
-- NPS per day, week (Monday) and month, overall (dimension 'all') and by the
-- response's stage, source and account. Each respondent (customer, or
-- customer + contact when a contact is given) counts once per period with
-- their latest response in it (by time, then stream sequence).
-- nps = 100 * (P - D) / N rounded half away from zero, in integers.
-- No FINAL: a replayed copy of an answer is the same respondent with the
-- same category, and argMax picks the copy FINAL would keep; FINAL only
-- made these views slower.
CREATE VIEW IF NOT EXISTS nps_daily AS
SELECT
    period, dimension, value, promoters, passives, detractors, respondents,
    if(promoters >= detractors, 1, -1) * toInt64(intDiv(200 * toUInt64(abs(toInt64(promoters) - toInt64(detractors))) + respondents, 2 * respondents)) AS nps
FROM
(
    SELECT
        period,
        dv.1 AS dimension,
        dv.2 AS value,
        countIf(cat = 'promoter') AS promoters,
        countIf(cat = 'passive') AS passives,
        countIf(cat = 'detractor') AS detractors,
        count() AS respondents
    FROM
    (
        SELECT
            toDate(time) AS period,
            customer_id,
            contact_id,
            CAST(argMax(category, (time, stream_seq)) AS String) AS cat,
            CAST(argMax(stage, (time, stream_seq)) AS String) AS st,
            CAST(argMax(source, (time, stream_seq)) AS String) AS src,
            argMax(account_id, (time, stream_seq)) AS acc
        FROM satisfaction_responses
        GROUP BY period, customer_id, contact_id
    )
    ARRAY JOIN [('all', ''), ('stage', st), ('source', src), ('account', acc)] AS dv
    GROUP BY period, dimension, value
)
;
CREATE VIEW IF NOT EXISTS nps_weekly AS
SELECT
    period, dimension, value, promoters, passives, detractors, respondents,
    if(promoters >= detractors, 1, -1) * toInt64(intDiv(200 * toUInt64(abs(toInt64(promoters) - toInt64(detractors))) + respondents, 2 * respondents)) AS nps
FROM
(
    SELECT
        period,
        dv.1 AS dimension,
        dv.2 AS value,
        countIf(cat = 'promoter') AS promoters,
        countIf(cat = 'passive') AS passives,
        countIf(cat = 'detractor') AS detractors,
        count() AS respondents
    FROM
    (
        SELECT
            toMonday(time) AS period,
            customer_id,
            contact_id,
            CAST(argMax(category, (time, stream_seq)) AS String) AS cat,
            CAST(argMax(stage, (time, stream_seq)) AS String) AS st,
            CAST(argMax(source, (time, stream_seq)) AS String) AS src,
            argMax(account_id, (time, stream_seq)) AS acc
        FROM satisfaction_responses
        GROUP BY period, customer_id, contact_id
    )
    ARRAY JOIN [('all', ''), ('stage', st), ('source', src), ('account', acc)] AS dv
    GROUP BY period, dimension, value
)
;
CREATE VIEW IF NOT EXISTS nps_monthly AS
SELECT
    period, dimension, value, promoters, passives, detractors, respondents,
    if(promoters >= detractors, 1, -1) * toInt64(intDiv(200 * toUInt64(abs(toInt64(promoters) - toInt64(detractors))) + respondents, 2 * respondents)) AS nps
FROM
(
    SELECT
        period,
        dv.1 AS dimension,
        dv.2 AS value,
        countIf(cat = 'promoter') AS promoters,
        countIf(cat = 'passive') AS passives,
        countIf(cat = 'detractor') AS detractors,
        count() AS respondents
    FROM
    (
        SELECT
            toStartOfMonth(time) AS period,
            customer_id,
            contact_id,
            CAST(argMax(category, (time, stream_seq)) AS String) AS cat,
            CAST(argMax(stage, (time, stream_seq)) AS String) AS st,
            CAST(argMax(source, (time, stream_seq)) AS String) AS src,
            argMax(account_id, (time, stream_seq)) AS acc
        FROM satisfaction_responses
        GROUP BY period, customer_id, contact_id
    )
    ARRAY JOIN [('all', ''), ('stage', st), ('source', src), ('account', acc)] AS dv
    GROUP BY period, dimension, value
)
;
-- The textbook's three processes from each customer's milestones: entered =
-- customers who reached the first milestone, converted = those who also
-- reached the second; median_seconds is the exact median of the time between
-- them over converted customers (mean of the two middle values when even).
CREATE VIEW IF NOT EXISTS funnel AS
SELECT step, process, entered, converted,
    if(entered = 0, NULL, converted / entered) AS conversion_rate,
    if(length(d) = 0, NULL, (d[intDiv(length(d) + 1, 2)] + d[intDiv(length(d) + 2, 2)]) / 2) AS median_seconds
FROM
(
    SELECT 1 AS step, 'market_to_sales' AS process,
        countIf(first_visit_at IS NOT NULL) AS entered,
        countIf(first_visit_at IS NOT NULL AND first_quote_at IS NOT NULL) AS converted,
        arraySort(groupArrayIf(toInt64(toUnixTimestamp(assumeNotNull(first_quote_at))) - toInt64(toUnixTimestamp(assumeNotNull(first_visit_at))), first_visit_at IS NOT NULL AND first_quote_at IS NOT NULL)) AS d
    FROM customer_state FINAL
    UNION ALL
    SELECT 2 AS step, 'sales_to_order' AS process,
        countIf(first_quote_at IS NOT NULL) AS entered,
        countIf(first_quote_at IS NOT NULL AND first_order_at IS NOT NULL) AS converted,
        arraySort(groupArrayIf(toInt64(toUnixTimestamp(assumeNotNull(first_order_at))) - toInt64(toUnixTimestamp(assumeNotNull(first_quote_at))), first_quote_at IS NOT NULL AND first_order_at IS NOT NULL)) AS d
    FROM customer_state FINAL
    UNION ALL
    SELECT 3 AS step, 'order_to_loyal' AS process,
        countIf(first_order_at IS NOT NULL) AS entered,
        countIf(first_order_at IS NOT NULL AND first_loyal_at IS NOT NULL) AS converted,
        arraySort(groupArrayIf(toInt64(toUnixTimestamp(assumeNotNull(first_loyal_at))) - toInt64(toUnixTimestamp(assumeNotNull(first_order_at))), first_order_at IS NOT NULL AND first_loyal_at IS NOT NULL)) AS d
    FROM customer_state FINAL
)
;
-- Complaints opened and never resolved, by complaint_id, from the facts.
CREATE VIEW IF NOT EXISTS open_complaints AS
SELECT
    customer_id,
    complaint_id,
    any(account_id) AS account_id,
    minIf(time, status = 'opened') AS opened_at,
    CAST(anyIf(category, status = 'opened') AS String) AS category,
    CAST(anyIf(severity, status = 'opened') AS String) AS severity
FROM events
WHERE kind = 'complaint'
GROUP BY customer_id, complaint_id
HAVING countIf(status = 'opened') > 0 AND countIf(status = 'resolved') = 0
;
CREATE VIEW IF NOT EXISTS at_risk_customers AS
SELECT
    customer_id, account_id, CAST(stage AS String) AS stage, nps_score,
    CAST(nps_category AS String) AS nps_category, open_complaints, last_complaint_at, last_touch
FROM customer_state FINAL
WHERE at_risk = 1
