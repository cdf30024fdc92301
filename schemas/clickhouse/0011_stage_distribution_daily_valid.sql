-- stage_distribution_daily of 0010 took its first day from every row of
-- stage_transitions, including the projector's tombstones (valid = 0, zero
-- time), so it started in 1970. Replace it with one that reads valid rows
-- only; dropping a view loses no data.
DROP TABLE IF EXISTS stage_distribution_daily
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
            (SELECT min(toDate(at)) FROM stage_transitions FINAL WHERE valid = 1) AS first_day,
            greatest(today(), (SELECT max(toDate(at)) FROM stage_transitions FINAL WHERE valid = 1)) AS last_day
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
