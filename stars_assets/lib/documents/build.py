"""Member outreach documents, assembled in DuckDB from silver and gold: one JSON document per member.

A document holds the member's contract, region and cohort flags, open and closed care gaps (with
the channel gold credits for each closure), the last touch per outreach channel with its outcome,
the channels the member opted out of (do not contact), upcoming and past appointments, and the
member's open-gap measures ranked by the contract's measure levers (model.measure_levers: where
one more closure moves the contract's projected rating most).

Incremental: the candidates are the members whose silver rows arrived in the delivery dates a run
covers (outreach and appointment events by partition_date, member and care-gap snapshots by
snapshot_date); every member when the store is empty, a rebuild is asked for, or the weekly
references (gold attribution week, levers week) moved on. The store writes a document only when its
content hash differs from the stored one. Nothing here depends on the clock, so an unchanged
member's document hashes the same on every build. No Dagster here.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date

import duckdb
import pyarrow as pa

from stars_assets.lib.documents.store import DocumentStore
from stars_assets.lib.warehouse import table_columns

# Appointment states that are still ahead of the member; the others (COMPLETED, CANCELLED, NO_SHOW) are past.
UPCOMING_APPOINTMENT_STATUSES = ("BOOKED", "RESCHEDULED")
TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%SZ"

# The weekly references a document reads, as empty stand-ins when their tables are not built yet.
ATTRIBUTION_SQL = """
CREATE OR REPLACE TEMP VIEW doc_attribution AS
SELECT gap_id, attributed_channel FROM gold.care_gap_closure
WHERE as_of_week_end = (SELECT max(as_of_week_end) FROM gold.care_gap_closure)
"""
NO_ATTRIBUTION_SQL = "CREATE OR REPLACE TEMP VIEW doc_attribution AS SELECT NULL::VARCHAR AS gap_id, NULL::VARCHAR AS attributed_channel WHERE false"
LEVERS_SQL = """
CREATE OR REPLACE TEMP VIEW doc_levers AS
SELECT contract_id, measure_id, lever_rank, current_stars, next_stars, rounded_gain, unrounded_gain
FROM model.measure_levers
QUALIFY as_of_week_end = max(as_of_week_end) OVER (PARTITION BY contract_id)
"""
NO_LEVERS_SQL = """
CREATE OR REPLACE TEMP VIEW doc_levers AS
SELECT NULL::VARCHAR AS contract_id, NULL::VARCHAR AS measure_id, NULL::INTEGER AS lever_rank, NULL::INTEGER AS current_stars,
       NULL::INTEGER AS next_stars, NULL::DOUBLE AS rounded_gain, NULL::DOUBLE AS unrounded_gain WHERE false
"""
REFERENCE_WEEKS_SQL = {
    "gold.care_gap_closure": "SELECT max(as_of_week_end) FROM gold.care_gap_closure",
    "model.measure_levers": "SELECT max(as_of_week_end) FROM model.measure_levers",
}

ALL_MEMBERS_SQL = "CREATE OR REPLACE TEMP TABLE doc_candidates AS SELECT DISTINCT member_id FROM silver.members"

# Members whose silver rows were delivered on the run's dates.
CHANGED_MEMBERS_SQL = """
CREATE OR REPLACE TEMP TABLE doc_candidates AS
SELECT member_id FROM silver.outreach_events WHERE partition_date IN (SELECT unnest($days))
UNION SELECT member_id FROM silver.appointment_events WHERE partition_date IN (SELECT unnest($days))
UNION SELECT member_id FROM silver.members WHERE snapshot_date IN (SELECT unnest($days))
UNION SELECT member_id FROM silver.care_gaps WHERE snapshot_date IN (SELECT unnest($days))
"""

# Every part reads only the candidates' rows: the members' own row is read once into `candidates`, and every
# other table is joined to it. Lists are ordered with list_sort over (sort key, value) structs rather than
# ordered aggregates (list(x ORDER BY y)), which keep a sort per member and cost several times more.
DOCUMENTS_SQL = f"""
WITH candidates AS MATERIALIZED (
    SELECT m.* FROM silver.members AS m SEMI JOIN doc_candidates AS c USING (member_id)
),
gaps AS MATERIALIZED (
    SELECT g.member_id, c.contract_id, g.gap_status = 'OPEN' AS is_open, g.measure_code, g.cms_measure_id,
           {{'opened': g.open_date, 'gap_id': g.gap_id,
             'gap': {{'gap_id': g.gap_id, 'measure_code': g.measure_code, 'cms_measure_id': g.cms_measure_id,
                     'measurement_year': g.measurement_year, 'opened': g.open_date, 'closed': g.close_date,
                     'close_source': g.close_source, 'attributed_channel': a.attributed_channel}}}} AS sortable_gap
    FROM silver.care_gaps AS g JOIN candidates AS c USING (member_id) LEFT JOIN doc_attribution AS a USING (gap_id)
),
gap_lists AS (
    SELECT member_id,
           list_transform(list_sort(list(sortable_gap) FILTER (WHERE is_open)), lambda x: x.gap) AS open_gaps,
           list_transform(list_sort(list(sortable_gap) FILTER (WHERE NOT is_open)), lambda x: x.gap) AS closed_gaps,
           list_sort(list_distinct(list(measure_code) FILTER (WHERE is_open))) AS open_gap_measures
    FROM gaps GROUP BY 1
),
priorities AS (
    -- The member's open-gap measures in the order of the contract's levers (1 = moves the projected rating most).
    SELECT g.member_id,
           list_transform(list_sort(list({{'lever_rank': l.lever_rank, 'measure_code': g.measure_code,
                  'priority': {{'measure_code': g.measure_code, 'cms_measure_id': g.cms_measure_id, 'lever_rank': l.lever_rank,
                               'current_stars': l.current_stars, 'next_stars': l.next_stars, 'rounded_gain': l.rounded_gain,
                               'unrounded_gain': round(l.unrounded_gain, 6)}}}})), lambda x: x.priority) AS priority_measures
    FROM (SELECT DISTINCT member_id, contract_id, measure_code, cms_measure_id FROM gaps WHERE is_open) AS g
    JOIN doc_levers AS l ON l.contract_id = g.contract_id AND l.measure_id = g.cms_measure_id
    GROUP BY 1
),
channels AS (
    SELECT e.member_id, e.channel, count(*) AS touches, max(e.event_ts) AS last_touch_ts,
           arg_max(e.event_type, (e.event_ts, e.event_id)) AS last_outcome,
           min(e.event_ts) FILTER (WHERE e.event_type = 'OPTED_OUT') AS opted_out_ts
    FROM silver.outreach_events AS e SEMI JOIN candidates USING (member_id)
    GROUP BY 1, 2
),
touch_lists AS (
    -- One entry per channel, and each struct starts with the channel: sorting the structs orders them by channel.
    SELECT member_id,
           list_sort(list({{'channel': channel, 'last_touch_at': strftime(last_touch_ts, '{TIMESTAMP_FORMAT}'),
                           'outcome': last_outcome, 'touches': touches}})) AS last_touches,
           list_sort(list({{'channel': channel, 'since': strftime(opted_out_ts, '{TIMESTAMP_FORMAT}')}})
               FILTER (WHERE opted_out_ts IS NOT NULL)) AS opt_outs,
           list_sort(list(channel) FILTER (WHERE opted_out_ts IS NOT NULL)) AS opted_out_channels,
           max(last_touch_ts) AS last_touch_ts
    FROM channels GROUP BY 1
),
appointment_lists AS (
    SELECT a.member_id,
           list_transform(list_sort(list({{'start_ts': a.start_ts, 'appointment_key': a.appointment_key,
                  'appointment': {{'appointment_key': a.appointment_key, 'provider': a.provider, 'status': a.status,
                                  'measure_code': a.measure_code, 'start_at': strftime(a.start_ts, '{TIMESTAMP_FORMAT}'),
                                  'booked_at': strftime(a.booked_ts, '{TIMESTAMP_FORMAT}'), 'reschedules': a.reschedules}}}})),
                  lambda x: x.appointment) AS appointments
    FROM silver.appointments AS a SEMI JOIN candidates USING (member_id)
    GROUP BY 1
),
documents AS (
    SELECT m.member_id, m.mbi, m.contract_id, m.region, (m.enrollment_end IS NULL)::INTEGER AS enrolled,
           epoch(t.last_touch_ts)::BIGINT AS last_touch_epoch,
           coalesce(g.open_gap_measures, []::VARCHAR[]) AS open_gap_measures,
           coalesce(t.opted_out_channels, []::VARCHAR[]) AS opted_out_channels,
           to_json({{
               'member_id': m.member_id, 'mbi': m.mbi, 'contract_id': m.contract_id, 'region': m.region,
               'birth_date': m.birth_date, 'sex': m.sex,
               'enrollment': {{'start': m.enrollment_start, 'end': m.enrollment_end}},
               'cohort': {{'dual': m.dual_status, 'lis': m.lis_status, 'diabetes': m.has_diabetes,
                          'hypertension': m.has_hypertension, 'hyperlipidemia': m.has_hyperlipidemia}},
               'open_gaps': coalesce(g.open_gaps, []), 'closed_gaps': coalesce(g.closed_gaps, []),
               'last_touch_at': strftime(t.last_touch_ts, '{TIMESTAMP_FORMAT}'),
               'last_touches': coalesce(t.last_touches, []), 'opt_outs': coalesce(t.opt_outs, []),
               'appointments': {{
                   'upcoming': coalesce(list_filter(ap.appointments, lambda x: x.status IN {UPCOMING_APPOINTMENT_STATUSES}), []),
                   'past': coalesce(list_filter(ap.appointments, lambda x: x.status NOT IN {UPCOMING_APPOINTMENT_STATUSES}), [])}},
               'priority_measures': coalesce(p.priority_measures, [])
           }})::VARCHAR AS document
    FROM candidates AS m
    LEFT JOIN gap_lists AS g USING (member_id)
    LEFT JOIN priorities AS p USING (member_id)
    LEFT JOIN touch_lists AS t USING (member_id)
    LEFT JOIN appointment_lists AS ap USING (member_id)
)
SELECT *, md5(document) AS content_hash FROM documents
"""


@dataclass(frozen=True)
class DocumentBuild:
    mode: str  # "full" or "incremental"
    documents: pa.Table  # the rebuilt documents; the store writes those whose content changed
    reference_version: str


def _existing_tables(con: duckdb.DuckDBPyConnection, qualified: Iterable[str]) -> set[str]:
    """Which of the `schema.table` names exist."""
    return {name for name in qualified if table_columns(con, name) is not None}


def prepare_references(con: duckdb.DuckDBPyConnection) -> str:
    """Point the document SQL at the newest gold attribution and levers; returns their weeks as a version string."""
    existing = _existing_tables(con, REFERENCE_WEEKS_SQL)
    con.execute(ATTRIBUTION_SQL if "gold.care_gap_closure" in existing else NO_ATTRIBUTION_SQL)
    con.execute(LEVERS_SQL if "model.measure_levers" in existing else NO_LEVERS_SQL)
    # The weeks of both references in one statement (an incremental run pays for every round trip).
    weeks = [f"({REFERENCE_WEEKS_SQL[table]})" if table in existing else "NULL" for table in REFERENCE_WEEKS_SQL]
    values = con.execute(f"SELECT {', '.join(weeks)}").fetchall()[0]
    return ";".join(f"{table}={week}" for table, week in zip(REFERENCE_WEEKS_SQL, values))


def build_documents(
    con: duckdb.DuckDBPyConnection, days: list[date] | None, store: DocumentStore, reference_state: str = "reference_version"
) -> DocumentBuild:
    """Build the documents of the members changed on `days` (all members when `days` is None, the store is
    empty or the weekly references moved on)."""
    reference_version = prepare_references(con)
    full = days is None or not store.has_documents() or reference_version != store.state(reference_state)
    if full:
        con.execute(ALL_MEMBERS_SQL)
    else:
        con.execute(CHANGED_MEMBERS_SQL, {"days": days})
    documents = con.sql(DOCUMENTS_SQL).to_arrow_table()
    return DocumentBuild("full" if full else "incremental", documents, reference_version)
