"""silver.appointment_events and silver.appointments from the regional EMR feeds.

appointment_events keeps the full history (one row per HL7 message or FHIR version), built per
delivery date like outreach events. appointments holds the latest state of each appointment;
a run recomputes only the appointments its day touched and writes only those whose state
hash changed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timezone

import duckdb

from stars_assets.lib.providers import ProviderConfig
from stars_assets.lib.silver.expressions import key_expression, mapped_code, timestamp_utc
from stars_assets.lib.silver import inputs
from stars_assets.lib.silver.identity import MEMBER_REF_IS_WELL_FORMED, identifier_pattern_params
from stars_assets.lib.silver.dimensions import MEMBER_TABLES_DDL
from stars_assets.lib.silver.outreach import FUTURE_AFTER_DAYS, SILVER_DDL, ProviderCounts, crosswalk_version
from stars_assets.lib.warehouse import in_transaction

APPOINTMENTS_DDL = """
CREATE TABLE IF NOT EXISTS silver.appointment_events (
    event_id VARCHAR, provider VARCHAR, event_key VARCHAR, appointment_key VARCHAR, member_id VARCHAR,
    contract_id VARCHAR, region VARCHAR, status VARCHAR, event_ts TIMESTAMP, start_ts TIMESTAMP,
    booked_ts TIMESTAMP, measure_code VARCHAR, source_file VARCHAR, source_row BIGINT,
    partition_date DATE, record_hash VARCHAR, loaded_at TIMESTAMP
);
CREATE TABLE IF NOT EXISTS silver.appointments (
    appointment_key VARCHAR PRIMARY KEY, provider VARCHAR, member_id VARCHAR, contract_id VARCHAR,
    region VARCHAR, status VARCHAR, start_ts TIMESTAMP, booked_ts TIMESTAMP, last_event_ts TIMESTAMP,
    measure_code VARCHAR, events BIGINT, reschedules BIGINT, state_hash VARCHAR, updated_at TIMESTAMP
);
"""

VALIDATE_SQL = """
CREATE OR REPLACE TEMP TABLE appointment_checked AS
WITH bookings AS (
    -- When a feed does not carry the booking time on every message (HL7 SIU), the booking is
    -- the time of the appointment's first BOOKED event, from this batch or earlier days.
    SELECT appointment_key, min(event_ts) AS first_booked_ts FROM (
        SELECT appointment_key, event_ts FROM appointment_candidates WHERE status = 'BOOKED'
        UNION ALL
        SELECT appointment_key, event_ts FROM silver.appointment_events WHERE status = 'BOOKED' AND partition_date <> $day
    ) GROUP BY 1
)
SELECT c.* EXCLUDE (booked_ts, status), coalesce(c.booked_ts, b.first_booked_ts) AS booked_ts,
       -- A booking event later than the appointment's booking time moves it: a reschedule,
       -- whatever the feed calls it (a FHIR version 2 with status "booked" is one).
       CASE WHEN c.status = 'BOOKED' AND c.event_ts > coalesce(c.booked_ts, b.first_booked_ts)
            THEN 'RESCHEDULED' ELSE c.status END AS status,
       m.member_id, m.contract_id, m.region,
       md5(c.provider || ':' || c.event_key) AS event_id,
       CASE
           WHEN c.member_ref IS NULL OR NOT {well_formed} THEN 'malformed_member_id'
           WHEN m.member_id IS NULL THEN 'unknown_member'
           WHEN c.event_ts IS NULL OR c.start_ts IS NULL THEN 'invalid_timestamp'
           WHEN c.event_ts >= CAST($day AS TIMESTAMP) + to_days($future_after_days) THEN 'future_timestamp'
           WHEN c.start_ts < coalesce(c.booked_ts, b.first_booked_ts) THEN 'start_before_booking'
           WHEN c.status IS NULL THEN 'unknown_code'
       END AS reason
FROM appointment_candidates AS c
LEFT JOIN bookings AS b USING (appointment_key)
LEFT JOIN silver.member_identifiers AS m ON m.id_type = c.identifier_type AND m.id_value = c.member_ref
""".format(well_formed=MEMBER_REF_IS_WELL_FORMED)

DEDUPLICATE_SQL = """
CREATE OR REPLACE TEMP TABLE appointment_ranked AS
SELECT *,
       row_number() OVER (PARTITION BY event_id ORDER BY source_file, source_row) AS copy_number,
       EXISTS (SELECT 1 FROM silver.appointment_events AS o
               WHERE o.event_id = k.event_id AND o.partition_date <> $day) AS seen_on_another_day
FROM appointment_checked AS k
WHERE reason IS NULL
"""

INSERT_EVENTS_SQL = """
INSERT INTO silver.appointment_events
SELECT event_id, provider, event_key, appointment_key, member_id, contract_id, region, status, event_ts,
       start_ts, booked_ts, measure_code, source_file, source_row, $day, record_hash, $now
FROM appointment_ranked WHERE copy_number = 1 AND NOT seen_on_another_day
"""

INSERT_QUARANTINE_SQL = """
INSERT INTO audit.quarantine
SELECT 'silver', provider, 'appointment_events', $day, source_file, source_row, reason,
       CASE reason WHEN 'unknown_member' THEN identifier_type || ' not in the enrollment crosswalk'
                   WHEN 'malformed_member_id' THEN identifier_type || ' does not have the expected shape'
                   WHEN 'future_timestamp' THEN 'event time ' || CAST(event_ts AS VARCHAR) || ' UTC is after the delivery'
                   WHEN 'start_before_booking' THEN 'start ' || CAST(start_ts AS VARCHAR) || ' is before booking ' || CAST(booked_ts AS VARCHAR)
                   WHEN 'invalid_timestamp' THEN 'event or start time does not parse'
                   ELSE 'status code has no canonical mapping' END,
       raw_text, $run_id, $now
FROM appointment_checked WHERE reason IS NOT NULL
"""

RECONCILE_SQL = """
INSERT INTO audit.silver_reconciliation
SELECT 'appointment_events', c.provider, $day, count(*),
       count(*) FILTER (WHERE c.reason IS NULL AND r.copy_number = 1 AND NOT r.seen_on_another_day),
       count(*) FILTER (WHERE c.reason IS NOT NULL),
       count(*) FILTER (WHERE c.reason IS NULL AND (r.copy_number > 1 OR r.seen_on_another_day)),
       $run_id, $now
FROM appointment_checked AS c
LEFT JOIN appointment_ranked AS r ON r.source_file = c.source_file AND r.source_row = c.source_row AND r.provider = c.provider
GROUP BY c.provider
"""

# Latest state of every appointment the day touched, from its whole history.
STATES_SQL = """
CREATE OR REPLACE TEMP TABLE appointment_states AS
WITH touched AS (SELECT DISTINCT appointment_key FROM silver.appointment_events WHERE partition_date = $day),
history AS (
    SELECT e.* FROM silver.appointment_events AS e JOIN touched USING (appointment_key)
),
latest AS (
    SELECT * FROM history
    QUALIFY row_number() OVER (PARTITION BY appointment_key ORDER BY event_ts DESC, partition_date DESC, source_row DESC) = 1
),
counts AS (
    SELECT appointment_key, count(*) AS events, count(*) FILTER (WHERE status = 'RESCHEDULED') AS reschedules,
           min(booked_ts) AS booked_ts
    FROM history GROUP BY 1
)
SELECT l.appointment_key, l.provider, l.member_id, l.contract_id, l.region, l.status, l.start_ts,
       c.booked_ts, l.event_ts AS last_event_ts, l.measure_code, c.events, c.reschedules,
       md5(concat_ws('|', l.member_id, l.status, CAST(l.start_ts AS VARCHAR), CAST(c.booked_ts AS VARCHAR),
                     CAST(l.event_ts AS VARCHAR), l.measure_code, CAST(c.events AS VARCHAR))) AS state_hash
FROM latest AS l JOIN counts AS c USING (appointment_key)
"""

UPSERT_CHANGED_SQL = """
INSERT OR REPLACE INTO silver.appointments
SELECT s.*, $now FROM appointment_states AS s
LEFT JOIN silver.appointments AS a USING (appointment_key)
WHERE a.state_hash IS DISTINCT FROM s.state_hash
"""


@dataclass(frozen=True)
class StateChanges:
    touched: int
    inserted: int
    updated: int

    @property
    def unchanged(self) -> int:
        return self.touched - self.inserted - self.updated


def candidates_sql(providers: list[ProviderConfig]) -> tuple[str, dict]:
    params: dict = {}
    selects = []
    for provider in providers:
        mapping = provider.appointments
        p = provider.name
        params[f"{p}_provider"] = p
        params[f"{p}_id_type"] = provider.identifier_type
        booked = timestamp_utc(mapping.booked_ts, f"{p}_booked", params) if mapping.booked_ts else "CAST(NULL AS TIMESTAMP)"
        measure = f"upper(trim(b.{mapping.measure_code}))" if mapping.measure_code else "CAST(NULL AS VARCHAR)"
        selects.append(
            f"""
            SELECT ${p}_provider AS provider,
                   {key_expression(mapping.event_key, f'{p}_key', params)} AS event_key,
                   {key_expression(mapping.appointment_key, f'{p}_appt', params)} AS appointment_key,
                   trim(b.{mapping.member_ref}) AS member_ref,
                   ${p}_id_type AS identifier_type,
                   {mapped_code(mapping.status, f'{p}_status', params)} AS status,
                   {timestamp_utc(mapping.event_ts, f'{p}_event', params)} AS event_ts,
                   {timestamp_utc(mapping.start_ts, f'{p}_start', params)} AS start_ts,
                   {booked} AS booked_ts,
                   {measure} AS measure_code,
                   b._source_file AS source_file, b._source_row AS source_row, b._record_hash AS record_hash,
                   to_json(b) AS raw_text
            FROM bronze.{provider.dataset(mapping.dataset).name} AS b
            WHERE b._partition_date = $day
            """
        )
    return "CREATE OR REPLACE TEMP TABLE appointment_candidates AS " + "\nUNION ALL\n".join(selects), params


def build_appointment_partition(
    con: duckdb.DuckDBPyConnection, providers: list[ProviderConfig], day: date, run_id: str
) -> tuple[list[ProviderCounts], StateChanges]:
    con.execute(SILVER_DDL)
    con.execute(MEMBER_TABLES_DDL)
    con.execute(APPOINTMENTS_DDL)
    emrs = [p for p in providers if p.kind == "appointments"]
    # EMR feeds are small: a changed day is rebuilt whole; an unchanged one is skipped.
    current = inputs.current_inputs(con, [p.name for p in emrs], day, crosswalk_version(con))
    if inputs.plan(con, "appointment_events", day, current).mode == "unchanged":
        return partition_counts(con, day), StateChanges(0, 0, 0)
    sql, params = candidates_sql(emrs)
    con.execute(sql, {**params, "day": day})
    con.execute(
        VALIDATE_SQL,
        {"day": day, "future_after_days": FUTURE_AFTER_DAYS,
         **identifier_pattern_params()},
    )
    con.execute(DEDUPLICATE_SQL, {"day": day})
    now = datetime.now(timezone.utc).replace(tzinfo=None)
    params = {"day": day, "run_id": run_id, "now": now}
    with in_transaction(con):
        con.execute("DELETE FROM silver.appointment_events WHERE partition_date = $day", {"day": day})
        con.execute("DELETE FROM audit.quarantine WHERE layer = 'silver' AND dataset = 'appointment_events' AND partition_date = $day", {"day": day})
        con.execute("DELETE FROM audit.silver_reconciliation WHERE silver_table = 'appointment_events' AND partition_date = $day", {"day": day})
        con.execute(INSERT_EVENTS_SQL, {"day": day, "now": now})
        con.execute(INSERT_QUARANTINE_SQL, params)
        con.execute(RECONCILE_SQL, params)
        con.execute(STATES_SQL, {"day": day})
        touched, inserted, updated = con.execute(
            """
            SELECT count(*), count(*) FILTER (WHERE a.appointment_key IS NULL),
                   count(*) FILTER (WHERE a.appointment_key IS NOT NULL AND a.state_hash <> s.state_hash)
            FROM appointment_states AS s LEFT JOIN silver.appointments AS a USING (appointment_key)
            """
        ).fetchone()
        con.execute(UPSERT_CHANGED_SQL, {"now": now})
        inputs.record(con, "appointment_events", day, current, run_id)
    return partition_counts(con, day), StateChanges(touched, inserted, updated)


def partition_counts(con: duckdb.DuckDBPyConnection, day: date) -> list[ProviderCounts]:
    rows = con.execute(
        "SELECT provider, rows_delivered, rows_loaded, rows_quarantined, duplicates_removed "
        "FROM audit.silver_reconciliation WHERE silver_table = 'appointment_events' AND partition_date = $day ORDER BY provider",
        {"day": day},
    ).fetchall()
    return [ProviderCounts(*row) for row in rows]
