"""silver.outreach_events: every outreach vendor's bronze rows as one canonical event model.

For one delivery date: normalize each provider's rows through its YAML mapping, resolve the
member, reject what is unusable (with a reason), drop duplicates (within the day and against
other days), then swap the partition in one transaction together with its quarantine rows
and its reconciliation counts.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timezone

import duckdb

from stars_assets.lib.providers import ProviderConfig
from stars_assets.lib.silver.expressions import key_expression, mapped_code, timestamp_utc
from stars_assets.lib.silver.identity import IDENTIFIER_PATTERNS
from stars_assets.lib.warehouse import in_transaction

SILVER_DDL = """
CREATE SCHEMA IF NOT EXISTS silver;
CREATE TABLE IF NOT EXISTS silver.outreach_events (
    event_id VARCHAR, provider VARCHAR, event_key VARCHAR, member_id VARCHAR, contract_id VARCHAR,
    region VARCHAR, channel VARCHAR, event_type VARCHAR, measure_codes VARCHAR[], event_ts TIMESTAMP,
    source_file VARCHAR, source_row BIGINT, partition_date DATE, record_hash VARCHAR, loaded_at TIMESTAMP
);
CREATE TABLE IF NOT EXISTS audit.silver_reconciliation (
    silver_table VARCHAR, provider VARCHAR, partition_date DATE, rows_delivered BIGINT,
    rows_loaded BIGINT, rows_quarantined BIGINT, duplicates_removed BIGINT, run_id VARCHAR, recorded_at TIMESTAMP
);
"""

# An event stamped later than this after the start of its delivery day cannot have happened
# yet: one day for the day itself plus one for the widest time-zone offset of a late evening.
FUTURE_AFTER_DAYS = 2

VALIDATE_SQL = """
CREATE OR REPLACE TEMP TABLE outreach_checked AS
SELECT c.*, m.member_id, m.contract_id, m.region,
       md5(c.provider || ':' || c.event_key) AS event_id,
       CASE
           WHEN c.member_ref IS NULL OR NOT regexp_full_match(c.member_ref,
                CASE c.identifier_type WHEN 'member_id' THEN $pattern_member_id
                                       WHEN 'mbi' THEN $pattern_mbi ELSE $pattern_vendor_ref END)
                THEN 'malformed_member_id'
           WHEN m.member_id IS NULL THEN 'unknown_member'
           WHEN c.event_ts IS NULL THEN 'invalid_timestamp'
           WHEN c.event_ts >= CAST($day AS TIMESTAMP) + to_days($future_after_days) THEN 'future_timestamp'
           WHEN c.channel IS NULL OR c.event_type IS NULL THEN 'unknown_code'
           WHEN c.event_key IS NULL OR c.event_key = '' THEN 'missing_event_key'
       END AS reason
FROM outreach_candidates AS c
LEFT JOIN silver.member_identifiers AS m ON m.id_type = c.identifier_type AND m.id_value = c.member_ref
"""

DEDUPLICATE_SQL = """
CREATE OR REPLACE TEMP TABLE outreach_ranked AS
SELECT *,
       row_number() OVER (PARTITION BY event_id ORDER BY source_file, source_row) AS copy_number,
       EXISTS (SELECT 1 FROM silver.outreach_events AS o
               WHERE o.event_id = k.event_id AND o.partition_date <> $day) AS seen_on_another_day
FROM outreach_checked AS k
WHERE reason IS NULL
"""

INSERT_EVENTS_SQL = """
INSERT INTO silver.outreach_events
SELECT event_id, provider, event_key, member_id, contract_id, region, channel, event_type, measure_codes,
       event_ts, source_file, source_row, $day, record_hash, $now
FROM outreach_ranked WHERE copy_number = 1 AND NOT seen_on_another_day
"""

INSERT_QUARANTINE_SQL = """
INSERT INTO audit.quarantine
SELECT 'silver', provider, 'outreach_events', $day, source_file, source_row, reason,
       CASE reason WHEN 'unknown_member' THEN identifier_type || ' not in the enrollment crosswalk'
                   WHEN 'malformed_member_id' THEN identifier_type || ' does not have the expected shape'
                   WHEN 'future_timestamp' THEN 'event time ' || CAST(event_ts AS VARCHAR) || ' UTC is after the delivery'
                   WHEN 'invalid_timestamp' THEN 'event time does not parse'
                   ELSE 'vendor code has no canonical mapping' END,
       raw_text, $run_id, $now
FROM outreach_checked WHERE reason IS NOT NULL
"""

RECONCILE_SQL = """
INSERT INTO audit.silver_reconciliation
SELECT 'outreach_events', c.provider, $day, count(*),
       count(*) FILTER (WHERE c.reason IS NULL AND r.copy_number = 1 AND NOT r.seen_on_another_day),
       count(*) FILTER (WHERE c.reason IS NOT NULL),
       count(*) FILTER (WHERE c.reason IS NULL AND (r.copy_number > 1 OR r.seen_on_another_day)),
       $run_id, $now
FROM outreach_checked AS c
LEFT JOIN outreach_ranked AS r ON r.source_file = c.source_file AND r.source_row = c.source_row AND r.provider = c.provider
GROUP BY c.provider
"""


@dataclass(frozen=True)
class ProviderCounts:
    provider: str
    delivered: int
    loaded: int
    quarantined: int
    duplicates: int


def candidates_sql(providers: list[ProviderConfig]) -> tuple[str, dict]:
    """One SELECT per outreach provider, normalized to the same columns, UNION ALL."""
    params: dict = {}
    selects = []
    for provider in providers:
        mapping = provider.outreach
        p = provider.name
        params[f"{p}_provider"] = p
        params[f"{p}_id_type"] = provider.identifier_type
        if mapping.measure_codes:
            params[f"{p}_separator"] = mapping.measure_codes_separator
            measures = (
                f"list_filter(list_transform(string_split(coalesce(b.{mapping.measure_codes}, ''), ${p}_separator), "
                "lambda x: upper(trim(x))), lambda x: x <> '')"
            )
        else:
            measures = "CAST([] AS VARCHAR[])"
        selects.append(
            f"""
            SELECT ${p}_provider AS provider,
                   {key_expression(mapping.event_key, f'{p}_key', params)} AS event_key,
                   trim(b.{mapping.member_ref}) AS member_ref,
                   ${p}_id_type AS identifier_type,
                   {mapped_code(mapping.channel, f'{p}_channel', params)} AS channel,
                   {mapped_code(mapping.event_type, f'{p}_type', params)} AS event_type,
                   {timestamp_utc(mapping.event_ts, f'{p}_ts', params)} AS event_ts,
                   {measures} AS measure_codes,
                   b._source_file AS source_file, b._source_row AS source_row, b._record_hash AS record_hash,
                   to_json(b) AS raw_text
            FROM bronze.{provider.dataset(mapping.dataset).name} AS b
            WHERE b._partition_date = $day
            """
        )
    return "CREATE OR REPLACE TEMP TABLE outreach_candidates AS " + "\nUNION ALL\n".join(selects), params


def build_outreach_partition(con: duckdb.DuckDBPyConnection, providers: list[ProviderConfig], day: date, run_id: str) -> list[ProviderCounts]:
    con.execute(SILVER_DDL)
    outreach = [p for p in providers if p.kind == "outreach"]
    sql, params = candidates_sql(outreach)
    con.execute(sql, {**params, "day": day})
    con.execute(
        VALIDATE_SQL,
        {"day": day, "future_after_days": FUTURE_AFTER_DAYS,
         **{f"pattern_{kind}": pattern for kind, pattern in IDENTIFIER_PATTERNS.items()}},
    )
    con.execute(DEDUPLICATE_SQL, {"day": day})
    now = datetime.now(timezone.utc).replace(tzinfo=None)
    params = {"day": day, "run_id": run_id, "now": now}
    with in_transaction(con):
        con.execute("DELETE FROM silver.outreach_events WHERE partition_date = $day", {"day": day})
        con.execute("DELETE FROM audit.quarantine WHERE layer = 'silver' AND dataset = 'outreach_events' AND partition_date = $day", {"day": day})
        con.execute("DELETE FROM audit.silver_reconciliation WHERE silver_table = 'outreach_events' AND partition_date = $day", {"day": day})
        con.execute(INSERT_EVENTS_SQL, {"day": day, "now": now})
        con.execute(INSERT_QUARANTINE_SQL, params)
        con.execute(RECONCILE_SQL, params)
    rows = con.execute(
        "SELECT provider, rows_delivered, rows_loaded, rows_quarantined, duplicates_removed "
        "FROM audit.silver_reconciliation WHERE silver_table = 'outreach_events' AND partition_date = $day ORDER BY provider",
        {"day": day},
    ).fetchall()
    return [ProviderCounts(*row) for row in rows]
