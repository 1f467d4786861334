"""Proportion of days covered (PDC) for the Part D adherence measures D08, D09, D10.

CMS's rule: the treatment period runs from a member's first fill of the class in the year to
the end of the period; the member is eligible with at least two fills on different dates and
a treatment period of at least 91 days; when fills overlap, the later fill's days shift
forward to start after the earlier supply runs out; the member is adherent at PDC >= 80%.
Here the period ends at `as_of` (capped at December 31), so weekly snapshots project the
year's measure from the fills known so far.

Shift-forward without a loop: with fills in date order, s_k the fill date and D_k the running
total of days supplied, the shifted coverage of fill k ends at
    E_k = D_k - 1 + max over j <= k of (s_j - D_{j-1})
(the supply chain restarts at the fill j after the last gap), a running maximum that SQL
window functions compute for any number of members at once.
"""

from stars_assets.lib.cms import crosswalk

MIN_TREATMENT_DAYS = 91
ADHERENT_PDC = 0.80

# Parameters: see pdc_parameters. Reads silver.rx_fills; one row per member and drug class.
MEMBER_PDC_SQL = """
WITH fills AS (
    SELECT member_id, drug_class, fill_date, days_supply
    FROM silver.rx_fills
    WHERE fill_date IS NOT NULL AND days_supply > 0
      AND fill_date <= $as_of AND year(fill_date) = year(CAST($as_of AS DATE))
),
period AS (
    SELECT member_id, drug_class, min(fill_date) AS first_fill,
           least(CAST($as_of AS DATE), make_date(year(CAST($as_of AS DATE)), 12, 31)) AS period_end,
           count(DISTINCT fill_date) AS fill_dates
    FROM fills GROUP BY 1, 2
),
chained AS (
    SELECT f.*, p.first_fill, p.period_end, p.fill_dates,
           sum(days_supply) OVER w AS supplied_through,
           sum(days_supply) OVER w - days_supply AS supplied_before
    FROM fills AS f JOIN period AS p USING (member_id, drug_class)
    WINDOW w AS (PARTITION BY member_id, drug_class ORDER BY fill_date, days_supply ROWS UNBOUNDED PRECEDING)
),
shifted AS (
    SELECT *,
           -- E_k as a day offset from the first fill: D_k - 1 + running max of (s_j - D_{j-1})
           supplied_through - 1 + max(date_diff('day', first_fill, fill_date) - supplied_before)
               OVER (PARTITION BY member_id, drug_class ORDER BY fill_date, days_supply ROWS UNBOUNDED PRECEDING) AS end_offset
    FROM chained
),
covered AS (
    SELECT member_id, drug_class, first_fill, period_end, fill_dates,
           date_diff('day', first_fill, period_end) + 1 AS treatment_days,
           sum(greatest(0, least(end_offset, date_diff('day', first_fill, period_end))
                           - (end_offset - days_supply + 1) + 1)) AS covered_days
    FROM shifted GROUP BY 1, 2, 3, 4, 5
)
SELECT member_id, drug_class, first_fill, period_end, fill_dates, treatment_days, covered_days,
       fill_dates >= 2 AND treatment_days >= $min_treatment_days AS eligible,
       round(covered_days / treatment_days, 6) AS pdc,
       fill_dates >= 2 AND treatment_days >= $min_treatment_days AND covered_days / treatment_days >= $adherent_pdc AS adherent
FROM covered
"""


def pdc_parameters(as_of) -> dict:
    return {"as_of": as_of, "min_treatment_days": MIN_TREATMENT_DAYS, "adherent_pdc": ADHERENT_PDC}


def adherence_measure_parameters() -> dict:
    """The adherence measures' ids, bound into CONTRACT_MEASURE_COUNTS_SQL ($diabetes_measure_id, ...)."""
    return {
        f"{drug_class.lower()}_measure_id": measure_id for drug_class, measure_id in crosswalk.adherence_measure_ids().items()
    }
