"""The kinds of silver event, as specs for the event engine (events.py): outreach touches and
appointment messages. A kind says which columns a provider's YAML mapping gives it, why a row is
rejected, and (appointments) what it keeps beside the history.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

import duckdb

from stars_assets.lib import vocabulary as v
from stars_assets.lib.providers import ProviderConfig
from stars_assets.lib.silver.events import STATE_KEYS_TABLE, EventSpec, Rule
from stars_assets.lib.silver.expressions import key_expression, local_time_note, mapped_code, timestamp_utc
from stars_assets.lib.silver.tables import APPOINTMENT_EVENTS, APPOINTMENTS, OUTREACH_EVENTS

FUTURE = "CAST($day AS TIMESTAMP) + to_days($future_after_days)"
FUTURE_EVENT = Rule(
    "future_timestamp", f"c.event_ts >= {FUTURE}", "'event time ' || CAST(r.event_ts AS VARCHAR) || ' UTC is after the delivery'"
)
# The plausible window of an event time: from January 1 of the year before the delivery (a late
# file in early January still carries December's events) to FUTURE. Outside it a time is wrong
# whatever its unit: epoch seconds read as milliseconds fall in January 1970, an absurd epoch
# number is clamped to year 1 or 9999.
PAST = "CAST(make_date(year($day) - 1, 1, 1) AS TIMESTAMP)"
MISSING_EVENT_KEY = Rule("missing_event_key", "c.event_key IS NULL OR c.event_key = ''", "'the vendor event key is empty'")


def nonexistent_local_time(*columns: str) -> Rule:
    condition = " OR ".join(f"c.{c}_note = 'nonexistent'" for c in columns)
    return Rule("nonexistent_local_time", condition, "'a local time falls in the time the spring daylight-saving change skips'")


def ambiguous_local_time(*columns: str) -> Rule:
    condition = " OR ".join(f"r.{c}_note = 'ambiguous'" for c in columns)
    return Rule(
        "ambiguous_local_time",
        condition,
        "'a local time falls in the time the autumn daylight-saving change repeats; read by the provider''s ambiguous rule'",
    )


def past_timestamp(column: str) -> Rule:
    return Rule(
        "past_timestamp",
        f"c.{column} < {PAST}",
        f"'{column.replace('_ts', ' time')} ' || CAST(r.{column} AS VARCHAR) || ' UTC is before the program year'",
    )


NO_MEASURES = "CAST([] AS VARCHAR[])"


def _outreach_columns(provider: ProviderConfig, params: dict) -> dict[str, str]:
    mapping, p = provider.outreach, provider.name
    if mapping.measure_codes:
        params[f"{p}_separator"] = mapping.measure_codes_separator
        # Most touches name no measure: the lambdas only run for the rows that do.
        column = f"b.{mapping.measure_codes}"
        measures = (
            f"CASE WHEN trim({column}) <> '' THEN list_filter(list_transform(string_split({column}, ${p}_separator), "
            f"lambda x: upper(trim(x))), lambda x: x <> '') ELSE {NO_MEASURES} END"
        )
    else:
        measures = NO_MEASURES
    return {
        "channel": mapped_code(mapping.channel, f"{p}_channel", params),
        "event_type": mapped_code(mapping.event_type, f"{p}_type", params),
        "event_ts": timestamp_utc(mapping.event_ts, f"{p}_ts", params),
        "event_ts_note": local_time_note(mapping.event_ts, f"{p}_ts", params),
        "measure_codes": measures,
    }


OUTREACH = EventSpec(
    OUTREACH_EVENTS,
    "outreach",
    _outreach_columns,
    rules=(
        nonexistent_local_time("event_ts"),
        Rule("invalid_timestamp", "c.event_ts IS NULL", "'event time does not parse'"),
        FUTURE_EVENT,
        past_timestamp("event_ts"),
        Rule("unknown_code", "c.channel IS NULL OR c.event_type IS NULL", "'vendor code has no canonical mapping'"),
        MISSING_EVENT_KEY,
    ),
    flags=(ambiguous_local_time("event_ts"),),
)


def _appointment_columns(provider: ProviderConfig, params: dict) -> dict[str, str]:
    mapping, p = provider.appointments, provider.name
    return {
        "appointment_key": key_expression(mapping.appointment_key, f"{p}_appt", params),
        "status": mapped_code(mapping.status, f"{p}_status", params),
        "event_ts": timestamp_utc(mapping.event_ts, f"{p}_event", params),
        "event_ts_note": local_time_note(mapping.event_ts, f"{p}_event", params),
        "start_ts": timestamp_utc(mapping.start_ts, f"{p}_start", params),
        "start_ts_note": local_time_note(mapping.start_ts, f"{p}_start", params),
        "booked_ts": timestamp_utc(mapping.booked_ts, f"{p}_booked", params) if mapping.booked_ts else "CAST(NULL AS TIMESTAMP)",
        "measure_code": f"upper(trim(b.{mapping.measure_code}))" if mapping.measure_code else "CAST(NULL AS VARCHAR)",
    }


# When a feed does not carry the booking time on every message (HL7 SIU), the booking is the time
# of the appointment's first BOOKED event, from this run's rows or the rows already loaded. Only the
# appointments the run's rows name are looked up in the history, so a day's cost does not grow with it.
BOOKINGS_JOIN = f"""
LEFT JOIN (
    WITH run_rows AS MATERIALIZED (SELECT appointment_key, status, event_ts FROM ({{candidates}}))
    SELECT appointment_key, min(event_ts) AS first_booked_ts FROM (
        SELECT appointment_key, event_ts FROM run_rows WHERE status = '{v.BOOKED}'
        UNION ALL
        SELECT o.appointment_key, o.event_ts FROM {APPOINTMENT_EVENTS.qualified_name} AS o
        WHERE o.status = '{v.BOOKED}' AND NOT (o.partition_date = $day AND o.source_file IN (SELECT unnest($files)))
          AND o.appointment_key IN (SELECT appointment_key FROM run_rows)
    ) GROUP BY 1
) AS bookings ON bookings.appointment_key = c.appointment_key
"""
BOOKED_TS = "coalesce(c.booked_ts, bookings.first_booked_ts)"

# Latest state of every appointment the day touched, from its whole history: the appointments the day
# holds, and those it held before this build (a rebuild or an append may have taken their events out).
STATES_SQL = f"""
CREATE OR REPLACE TEMP TABLE appointment_states AS
WITH touched AS (
    SELECT appointment_key FROM {APPOINTMENT_EVENTS.qualified_name} WHERE partition_date = $day
    UNION SELECT state_key FROM {STATE_KEYS_TABLE}
),
history AS (
    SELECT e.* FROM {APPOINTMENT_EVENTS.qualified_name} AS e JOIN touched USING (appointment_key)
),
latest AS (
    SELECT * FROM history
    QUALIFY row_number() OVER (PARTITION BY appointment_key ORDER BY event_ts DESC, partition_date DESC, source_row DESC) = 1
),
counts AS (
    SELECT appointment_key, count(*) AS events, count(*) FILTER (WHERE status = '{v.RESCHEDULED}') AS reschedules,
           min(booked_ts) AS booked_ts
    FROM history GROUP BY 1
)
SELECT l.appointment_key, l.provider, l.member_id, l.contract_id, l.region, l.status, l.start_ts,
       c.booked_ts, l.event_ts AS last_event_ts, l.measure_code, c.events, c.reschedules,
       md5(concat_ws('|', l.member_id, l.status, CAST(l.start_ts AS VARCHAR), CAST(c.booked_ts AS VARCHAR),
                     CAST(l.event_ts AS VARCHAR), l.measure_code, CAST(c.events AS VARCHAR))) AS state_hash
FROM latest AS l JOIN counts AS c USING (appointment_key)
"""
STATE_CHANGES_SQL = f"""
SELECT count(*), count(*) FILTER (WHERE a.appointment_key IS NULL),
       count(*) FILTER (WHERE a.appointment_key IS NOT NULL AND a.state_hash <> s.state_hash)
FROM appointment_states AS s LEFT JOIN {APPOINTMENTS.qualified_name} AS a USING (appointment_key)
"""
# An appointment the day held whose every event has left silver has no state left either.
REMOVE_STATELESS_SQL = f"""
DELETE FROM {APPOINTMENTS.qualified_name}
WHERE appointment_key IN (SELECT state_key FROM {STATE_KEYS_TABLE})
  AND appointment_key NOT IN (SELECT appointment_key FROM appointment_states)
"""
UPSERT_CHANGED_SQL = f"""
INSERT OR REPLACE INTO {APPOINTMENTS.qualified_name}
SELECT s.*, $now FROM appointment_states AS s
LEFT JOIN {APPOINTMENTS.qualified_name} AS a USING (appointment_key)
WHERE a.state_hash IS DISTINCT FROM s.state_hash
"""


@dataclass(frozen=True)
class StateChanges:
    touched: int
    inserted: int
    updated: int
    removed: int = 0

    @property
    def unchanged(self) -> int:
        return self.touched - self.inserted - self.updated


def write_latest_states(con: duckdb.DuckDBPyConnection, day: date, now: datetime) -> StateChanges:
    """Recompute the appointments the day touched (it holds, or held before this build); write only those whose
    state hash changed, and take out the state of one left with no event."""
    con.execute(STATES_SQL, {"day": day})
    touched, inserted, updated = con.execute(STATE_CHANGES_SQL).fetchone()
    removed = con.execute(REMOVE_STATELESS_SQL).fetchone()[0]
    changes = StateChanges(touched, inserted, updated, removed)
    con.execute(UPSERT_CHANGED_SQL, {"now": now})
    con.execute("DROP TABLE IF EXISTS temp.main.appointment_states")
    return changes


APPOINTMENT = EventSpec(
    table=APPOINTMENT_EVENTS,
    provider_kind="appointments",
    columns=_appointment_columns,
    rules=(
        nonexistent_local_time("event_ts", "start_ts"),
        Rule("invalid_timestamp", "c.event_ts IS NULL OR c.start_ts IS NULL", "'event or start time does not parse'"),
        FUTURE_EVENT,
        past_timestamp("event_ts"),
        past_timestamp("start_ts"),
        Rule(
            "start_before_booking",
            f"c.start_ts < {BOOKED_TS}",
            "'start ' || CAST(r.start_ts AS VARCHAR) || ' is before booking ' || CAST(r.booked_ts AS VARCHAR)",
        ),
        Rule("unknown_code", "c.status IS NULL", "'status code has no canonical mapping'"),
        MISSING_EVENT_KEY,
    ),
    # A booking event later than the appointment's booking time moves it: a reschedule, whatever
    # the feed calls it (a FHIR version 2 with status "booked" is one).
    derived={
        "booked_ts": BOOKED_TS,
        "status": f"CASE WHEN c.status = '{v.BOOKED}' AND c.event_ts > {BOOKED_TS} THEN '{v.RESCHEDULED}' ELSE c.status END",
    },
    joins=BOOKINGS_JOIN,
    after_write=write_latest_states,
    tables=(APPOINTMENTS,),
    flags=(ambiguous_local_time("event_ts", "start_ts"),),
    state_key="appointment_key",
)

EVENT_KINDS = {spec.name: spec for spec in (OUTREACH, APPOINTMENT)}
