"""Gold facts as of a week end: care-gap closure, campaign effectiveness, contract measure rates.

Every statement takes $week_end (the Saturday that ends the partition week) and reads silver.
A touch counts for a gap when it reaches the gap's member between the gap's opening and its
closure (or the week end) and either names the gap's measure or names no measure at all
(general outreach). Closures are as the latest care-gap list knows them, restated for past
weeks; a gap counts as closed in a week's snapshot only when it closed on or before that week
end.
"""

from stars_assets.lib import vocabulary as v
from stars_assets.lib.gold.tables import CAMPAIGN_EFFECTIVENESS, CARE_GAP_CLOSURE, CLOSURE_WINDOWS_DAYS
from stars_assets.lib.tables import ddl

ATTRIBUTION_WINDOW_DAYS = 90
REACHING = v.sql_list(v.REACHING_EVENT_TYPES)
ENGAGING = v.sql_list(v.ENGAGING_EVENT_TYPES)

GOLD_DDL = ddl(CARE_GAP_CLOSURE, CAMPAIGN_EFFECTIVENESS)

# Gaps of the week end's measurement year, opened by then, with what we knew of closure then.
_GAPS_CTE = """
gaps AS (
    SELECT g.gap_id, g.member_id, m.contract_id, m.region, g.measure_code, g.cms_measure_id, g.measurement_year,
           g.open_date,
           CASE WHEN g.close_date <= $week_end THEN g.close_date END AS close_date,
           CASE WHEN g.close_date <= $week_end THEN g.close_source END AS close_source,
           m.dual_status, m.lis_status, m.birth_date, m.has_diabetes, m.has_hypertension, m.has_hyperlipidemia
    FROM silver.care_gaps AS g JOIN silver.members AS m USING (member_id)
    WHERE g.measurement_year = year(CAST($week_end AS DATE)) AND g.open_date <= $week_end
),
gap_touches AS (
    SELECT g.gap_id, e.event_id, e.channel, e.event_type, e.event_ts
    FROM gaps AS g
    JOIN silver.outreach_events AS e
      ON e.member_id = g.member_id
     AND (len(e.measure_codes) = 0 OR list_contains(e.measure_codes, g.measure_code))
     AND CAST(e.event_ts AS DATE) BETWEEN g.open_date AND coalesce(g.close_date, CAST($week_end AS DATE))
)
"""

CARE_GAP_CLOSURE_SQL = f"""
INSERT INTO gold.care_gap_closure
WITH {_GAPS_CTE},
touch_counts AS (
    SELECT gap_id, count(*) AS touches_total,
           {", ".join(f"count(*) FILTER (WHERE channel = '{c}') AS touches_{c.lower()}" for c in v.CHANNELS)},
           count(*) FILTER (WHERE event_type IN {REACHING}) AS reaching_touches,
           min(event_ts) AS first_touch_ts
    FROM gap_touches GROUP BY 1
),
attribution AS (
    -- The last reaching touch within {ATTRIBUTION_WINDOW_DAYS} days before closure gets the credit.
    SELECT t.gap_id, arg_max(t.channel, t.event_ts) AS attributed_channel
    FROM gap_touches AS t JOIN gaps AS g USING (gap_id)
    WHERE g.close_date IS NOT NULL AND t.event_type IN {REACHING}
      AND CAST(t.event_ts AS DATE) >= g.close_date - INTERVAL {ATTRIBUTION_WINDOW_DAYS} DAY
    GROUP BY 1
),
appointments AS (
    SELECT g.gap_id, count(*) AS appointments_booked, count(*) FILTER (WHERE a.status = '{v.COMPLETED}') AS appointments_completed
    FROM gaps AS g JOIN silver.appointments AS a
      ON a.member_id = g.member_id AND a.measure_code = g.measure_code
     AND CAST(a.booked_ts AS DATE) BETWEEN g.open_date AND coalesce(g.close_date, CAST($week_end AS DATE))
    GROUP BY 1
)
SELECT $week_end, g.gap_id, g.member_id, g.contract_id, g.region, g.measure_code, g.cms_measure_id,
       g.measurement_year, g.open_date, g.close_date, g.close_source, g.close_date IS NOT NULL,
       date_diff('day', g.open_date, g.close_date),
       coalesce(t.touches_total, 0), {", ".join(f"coalesce(t.touches_{c.lower()}, 0)" for c in v.CHANNELS)},
       coalesce(t.reaching_touches, 0), coalesce(a.appointments_booked, 0), coalesce(a.appointments_completed, 0),
       t.first_touch_ts, attribution.attributed_channel
FROM gaps AS g
LEFT JOIN touch_counts AS t USING (gap_id)
LEFT JOIN attribution USING (gap_id)
LEFT JOIN appointments AS a USING (gap_id)
"""

CAMPAIGN_EFFECTIVENESS_SQL = f"""
INSERT INTO gold.campaign_effectiveness
WITH {_GAPS_CTE},
gap_channel AS (
    -- One row per gap and channel that touched it: the first touch starts the closure clock.
    SELECT g.gap_id, g.member_id, g.contract_id, g.region, g.measure_code, g.close_date, t.channel,
           CASE WHEN g.dual_status THEN 'DUAL' WHEN g.lis_status THEN 'LIS' ELSE 'NEITHER' END AS dual_lis_cohort,
           CASE WHEN date_diff('year', g.birth_date, CAST($week_end AS DATE)) < 65 THEN 'under 65'
                WHEN date_diff('year', g.birth_date, CAST($week_end AS DATE)) < 75 THEN '65-74'
                WHEN date_diff('year', g.birth_date, CAST($week_end AS DATE)) < 85 THEN '75-84'
                ELSE '85+' END AS age_band,
           -- The member's chronic conditions as one cohort label (DIABETES+HYPERTENSION, ... or NONE).
           coalesce(nullif(concat_ws('+', CASE WHEN g.has_diabetes THEN 'DIABETES' END,
                                          CASE WHEN g.has_hypertension THEN 'HYPERTENSION' END,
                                          CASE WHEN g.has_hyperlipidemia THEN 'HYPERLIPIDEMIA' END), ''), 'NONE') AS chronic_condition,
           min(t.event_ts) AS first_touch_ts, count(*) AS attempts,
           bool_or(t.event_type IN {REACHING}) AS reached,
           bool_or(t.event_type IN {ENGAGING}) AS engaged,
           bool_or(t.event_type = '{v.OPTED_OUT}') AS opted_out
    FROM gaps AS g JOIN gap_touches AS t USING (gap_id)
    GROUP BY ALL
),
appointment_outcomes AS (
    SELECT c.gap_id, c.channel,
           count(*) FILTER (WHERE a.status = '{v.COMPLETED}' AND CAST(a.start_ts AS DATE) <= $week_end) AS kept,
           count(*) FILTER (WHERE a.status = '{v.NO_SHOW}' AND CAST(a.start_ts AS DATE) <= $week_end) AS missed,
           count(*) AS booked
    FROM gap_channel AS c JOIN silver.appointments AS a
      ON a.member_id = c.member_id AND a.measure_code = c.measure_code
     AND a.booked_ts >= c.first_touch_ts AND CAST(a.booked_ts AS DATE) <= $week_end
    GROUP BY 1, 2
)
SELECT $week_end, c.channel, c.region, c.contract_id, c.dual_lis_cohort, c.age_band, c.measure_code,
       count(DISTINCT c.member_id), count(*), sum(c.attempts),
       count(DISTINCT c.member_id) FILTER (WHERE c.reached),
       count(DISTINCT c.member_id) FILTER (WHERE c.reached) / count(DISTINCT c.member_id),
       coalesce(sum(o.kept), 0), coalesce(sum(o.missed), 0),
       sum(o.kept) / nullif(sum(o.kept) + sum(o.missed), 0),
       {
    ", ".join(
        f'''count(*) FILTER (WHERE CAST(c.first_touch_ts AS DATE) <= CAST($week_end AS DATE) - INTERVAL {n} DAY),
       count(*) FILTER (WHERE CAST(c.first_touch_ts AS DATE) <= CAST($week_end AS DATE) - INTERVAL {n} DAY
                        AND c.close_date <= CAST(c.first_touch_ts AS DATE) + INTERVAL {n} DAY),
       count(*) FILTER (WHERE CAST(c.first_touch_ts AS DATE) <= CAST($week_end AS DATE) - INTERVAL {n} DAY
                        AND c.close_date <= CAST(c.first_touch_ts AS DATE) + INTERVAL {n} DAY)
         / nullif(count(*) FILTER (WHERE CAST(c.first_touch_ts AS DATE) <= CAST($week_end AS DATE) - INTERVAL {n} DAY), 0)'''
        for n in CLOSURE_WINDOWS_DAYS
    )
},
       count(DISTINCT c.member_id) FILTER (WHERE c.opted_out),
       c.chronic_condition, count(DISTINCT c.member_id) FILTER (WHERE c.engaged), coalesce(sum(o.booked), 0),
       count(*) FILTER (WHERE c.close_date IS NOT NULL)
FROM gap_channel AS c LEFT JOIN appointment_outcomes AS o USING (gap_id, channel)
GROUP BY ALL
"""

# Member-level measure results per contract: care gaps for the HEDIS measures, PDC for adherence.
CONTRACT_MEASURE_COUNTS_SQL = """
WITH gap_measures AS (
    SELECT contract_id, cms_measure_id AS measure_id, measure_code,
           count(*) FILTER (WHERE is_closed) AS numerator, count(*) AS denominator
    FROM gold.care_gap_closure WHERE as_of_week_end = $week_end
    GROUP BY ALL
),
adherence AS (
    SELECT m.contract_id,
           CASE p.drug_class WHEN 'DIABETES' THEN $diabetes_measure_id WHEN 'RASA' THEN $rasa_measure_id
                             WHEN 'STATIN' THEN $statin_measure_id END AS measure_id,
           'PDC_' || p.drug_class AS measure_code,
           count(*) FILTER (WHERE p.adherent) AS numerator, count(*) FILTER (WHERE p.eligible) AS denominator
    FROM member_pdc AS p JOIN silver.members AS m USING (member_id)
    GROUP BY ALL
)
SELECT contract_id, measure_id, measure_code, 'member_level' AS source, numerator, denominator,
       100.0 * numerator / nullif(denominator, 0) AS rate
FROM (SELECT * FROM gap_measures UNION ALL SELECT * FROM adherence WHERE denominator > 0)
"""

# Contract-level figures the warehouse sends (readmissions, CAHPS), latest extract by the week end. Rows without a
# score carry only a prior year's score (measures the plan computes from member data): CONTRACT_PRIOR_YEAR_SQL's.
CONTRACT_QUALITY_SQL = """
SELECT trim(contract_id) AS contract_id, upper(trim(measure_id)) AS measure_id, upper(trim(measure_id)) AS measure_code,
       'warehouse_extract' AS source, try_cast(numerator AS DOUBLE) AS numerator,
       try_cast(denominator AS DOUBLE) AS denominator, try_cast(score AS DOUBLE) AS rate
FROM bronze.edw_contract_quality
WHERE _partition_date <= $week_end AND score IS NOT NULL
QUALIFY row_number() OVER (PARTITION BY trim(contract_id), upper(trim(measure_id)) ORDER BY _partition_date DESC, _source_row) = 1
"""

# Each contract's score on every measure one measurement year earlier (for the improvement measures C30/D04), from the
# latest extract by the week end that carries one; in the CONTRACT_QUALITY_SQL layout, the prior score as the rate.
CONTRACT_PRIOR_YEAR_SQL = """
SELECT trim(contract_id) AS contract_id, upper(trim(measure_id)) AS measure_id, upper(trim(measure_id)) AS measure_code,
       'warehouse_extract' AS source, NULL::DOUBLE AS numerator, NULL::DOUBLE AS denominator,
       try_cast(prior_year_score AS DOUBLE) AS rate
FROM bronze.edw_contract_quality
WHERE _partition_date <= $week_end AND prior_year_score IS NOT NULL
QUALIFY row_number() OVER (PARTITION BY trim(contract_id), upper(trim(measure_id)) ORDER BY _partition_date DESC, _source_row) = 1
"""
