"""silver.outreach_events: every outreach vendor's bronze rows as one canonical event model.

For one delivery date: normalize each provider's rows through its YAML mapping, resolve the
member, reject what is unusable (with a reason), drop duplicates (within the day and against
the other days of the dedup window), then write the partition in one transaction together with
its quarantine rows and its reconciliation counts.

The day is parsed once into a staging table; duplicates are found on 64-bit hashes of event_id
first (cheap to group and join at tens of millions of rows) and confirmed on event_id itself;
the raw text of a row is only rendered for the rows that go to quarantine. `audit.silver_inputs`
(see inputs.py) lets a run skip an unchanged day, or add only the rows of new bronze files.

Deduplication against other days is bounded to DEDUP_WINDOW_DAYS on either side of the day: an
event re-sent by a vendor more than that many days later is loaded again (at-least-once delivery
repeats events within hours; late files arrive within days). The bound keeps each day's work
proportional to the window, not to the whole history.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone

import duckdb

from stars_assets.lib.providers import ProviderConfig
from stars_assets.lib.silver import inputs
from stars_assets.lib.silver.expressions import key_expression, mapped_code, timestamp_utc
from stars_assets.lib.silver.identity import MEMBER_REF_IS_WELL_FORMED, identifier_pattern_params
from stars_assets.lib.silver.dimensions import MEMBER_TABLES_DDL
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
# A day's events are deduplicated against the partitions this many days before and after it.
DEDUP_WINDOW_DAYS = 31

# Each provider's bronze rows of the day (or of some of its files), canonical and validated:
# {candidates} is the UNION ALL of candidates_sql. Member identifiers are checked against one
# constant pattern per identifier type (a pattern chosen per row would be compiled per row).
VALIDATED_SQL = """
SELECT c.*, m.member_id, m.contract_id, m.region,
       CASE
           WHEN c.member_ref IS NULL OR NOT {well_formed} THEN 'malformed_member_id'
           WHEN m.member_id IS NULL THEN 'unknown_member'
           WHEN c.event_ts IS NULL THEN 'invalid_timestamp'
           WHEN c.event_ts >= CAST($day AS TIMESTAMP) + to_days($future_after_days) THEN 'future_timestamp'
           WHEN c.channel IS NULL OR c.event_type IS NULL THEN 'unknown_code'
           WHEN c.event_key IS NULL OR c.event_key = '' THEN 'missing_event_key'
       END AS reason
FROM ({candidates}) AS c
LEFT JOIN silver.member_identifiers AS m ON m.id_type = c.identifier_type AND m.id_value = c.member_ref
"""

# Duplicates are found before anything is written (deleting rows a transaction has just
# appended makes DuckDB rewrite them all at commit). 64-bit hashes of provider:event_key narrow
# the rows down cheaply, from the canonical rows alone; event_id decides, among valid rows only.
#   1. suspects: hashes that occur twice among the day's rows of the files read, or that belong
#      to an event already written to an older row (another day of the window, or an earlier
#      file of this day, when there are any: this is the part whose cost grows with the window)
#   2. duplicates: of the suspect rows that are valid, the copies after the first (in file and
#      row order) and the events an older row already holds
#   3. the valid rows that are not duplicates are inserted
OLDER_ROWS = """
    o.partition_date BETWEEN $window_start AND $window_end
    AND NOT (o.partition_date = $day AND o.source_file IN (SELECT unnest($files)))
"""
HAS_OLDER_ROWS_SQL = f"SELECT count(*) > 0 FROM (SELECT 1 FROM silver.outreach_events AS o WHERE {OLDER_ROWS} LIMIT 1)"
SUSPECTS_SQL = """
CREATE OR REPLACE TEMP TABLE outreach_suspects AS
SELECT hash(provider || ':' || event_key) AS h FROM ({candidates}) GROUP BY 1 HAVING count(*) > 1
"""
SUSPECTS_SEEN_BEFORE_SQL = f"""
INSERT INTO outreach_suspects
SELECT DISTINCT hash(o.provider || ':' || o.event_key) FROM silver.outreach_events AS o
WHERE {OLDER_ROWS}
  AND hash(o.provider || ':' || o.event_key) IN (SELECT hash(provider || ':' || event_key) FROM ({{candidates}}))
"""
# {suspect_candidates}: the candidate rows whose hash is a suspect's, so only those are validated.
SUSPECT_CANDIDATES_SQL = """
SELECT * FROM ({candidates}) WHERE hash(provider || ':' || event_key) IN (SELECT h FROM outreach_suspects)
"""
DUPLICATES_SQL = f"""
CREATE OR REPLACE TEMP TABLE outreach_duplicates AS
WITH suspect_rows AS (
    SELECT v.provider, v.source_file, v.source_row, md5(v.provider || ':' || v.event_key) AS event_id,
           row_number() OVER (PARTITION BY v.provider, v.event_key ORDER BY v.source_file, v.source_row) AS copy_number
    FROM ({{validated_suspects}}) AS v
    WHERE v.reason IS NULL
)
SELECT provider, source_file, source_row FROM suspect_rows
WHERE copy_number > 1
   OR event_id IN (SELECT o.event_id FROM silver.outreach_events AS o
                   WHERE {OLDER_ROWS} AND o.event_id IN (SELECT event_id FROM suspect_rows))
"""

INSERT_EVENTS_SQL = """
INSERT INTO silver.outreach_events
SELECT md5(v.provider || ':' || v.event_key), v.provider, v.event_key, v.member_id, v.contract_id, v.region,
       v.channel, v.event_type, v.measure_codes, v.event_ts, v.source_file, v.source_row, $day, v.record_hash, $now
FROM ({validated}) AS v
WHERE v.reason IS NULL
  AND NOT EXISTS (SELECT 1 FROM outreach_duplicates AS d
                  WHERE d.source_file = v.source_file AND d.source_row = v.source_row AND d.provider = v.provider)
"""

REJECTS_SQL = """
CREATE OR REPLACE TEMP TABLE outreach_rejects AS
SELECT provider, identifier_type, event_ts, source_file, source_row, reason FROM ({validated}) WHERE reason IS NOT NULL
"""

# The raw bronze row of each rejected row of one provider: {bronze} is its bronze table.
INSERT_QUARANTINE_SQL = """
INSERT INTO audit.quarantine
SELECT 'silver', r.provider, 'outreach_events', $day, r.source_file, r.source_row, r.reason,
       CASE r.reason WHEN 'unknown_member' THEN r.identifier_type || ' not in the enrollment crosswalk'
                     WHEN 'malformed_member_id' THEN r.identifier_type || ' does not have the expected shape'
                     WHEN 'future_timestamp' THEN 'event time ' || CAST(r.event_ts AS VARCHAR) || ' UTC is after the delivery'
                     WHEN 'invalid_timestamp' THEN 'event time does not parse'
                     ELSE 'vendor code has no canonical mapping' END,
       to_json(b), $run_id, $now
FROM outreach_rejects AS r
JOIN {bronze} AS b ON b._partition_date = $day AND b._source_file = r.source_file AND b._source_row = r.source_row
WHERE r.provider = $provider
"""

# Per provider, for the files read: rows delivered (bronze) = loaded + quarantined + duplicates.
# {delivered} is a UNION ALL of one count per provider's bronze table.
COUNTS_SQL = """
CREATE OR REPLACE TEMP TABLE outreach_counts AS
WITH delivered AS ({delivered}),
loaded AS (SELECT provider, count(*) AS n FROM silver.outreach_events
           WHERE partition_date = $day AND source_file IN (SELECT unnest($files)) GROUP BY 1),
quarantined AS (SELECT provider, count(*) AS n FROM outreach_rejects GROUP BY 1),
duplicates AS (SELECT provider, count(*) AS n FROM outreach_duplicates GROUP BY 1)
SELECT d.provider, d.n AS delivered, coalesce(l.n, 0) AS loaded, coalesce(q.n, 0) AS quarantined,
       coalesce(x.n, 0) AS duplicates
FROM delivered AS d LEFT JOIN loaded AS l USING (provider) LEFT JOIN quarantined AS q USING (provider)
LEFT JOIN duplicates AS x USING (provider)
WHERE d.n > 0
"""
DELIVERED_SQL = """
SELECT $provider_{n} AS provider, count(*) AS n FROM {bronze}
WHERE _partition_date = $day AND _source_file IN (SELECT unnest($files))
"""

# Counts of this run added to what the partition already had (an append adds to them).
RECONCILE_SQL = """
CREATE OR REPLACE TEMP TABLE outreach_reconciled AS
SELECT provider, sum(delivered) AS delivered, sum(loaded) AS loaded, sum(quarantined) AS quarantined,
       sum(duplicates) AS duplicates
FROM (
    SELECT provider, rows_delivered, rows_loaded, rows_quarantined, duplicates_removed
    FROM audit.silver_reconciliation WHERE silver_table = 'outreach_events' AND partition_date = $day
    UNION ALL SELECT provider, delivered, loaded, quarantined, duplicates FROM outreach_counts
) AS t (provider, delivered, loaded, quarantined, duplicates)
GROUP BY provider
"""
WRITE_RECONCILIATION_SQL = """
INSERT INTO audit.silver_reconciliation
SELECT 'outreach_events', provider, $day, delivered, loaded, quarantined, duplicates, $run_id, $now FROM outreach_reconciled
"""

DELETE_RECONCILIATION_SQL = "DELETE FROM audit.silver_reconciliation WHERE silver_table = 'outreach_events' AND partition_date = $day"
DELETE_PARTITION_SQL = (
    "DELETE FROM silver.outreach_events WHERE partition_date = $day",
    "DELETE FROM audit.quarantine WHERE layer = 'silver' AND dataset = 'outreach_events' AND partition_date = $day",
    DELETE_RECONCILIATION_SQL,
)

PARTITION_COUNTS_SQL = """
SELECT provider, rows_delivered, rows_loaded, rows_quarantined, duplicates_removed
FROM audit.silver_reconciliation WHERE silver_table = 'outreach_events' AND partition_date = $day ORDER BY provider
"""


@dataclass(frozen=True)
class ProviderCounts:
    provider: str
    delivered: int
    loaded: int
    quarantined: int
    duplicates: int


@dataclass(frozen=True)
class PartitionBuild:
    """What a silver partition build did: its mode (unchanged, append, replace) and its counts."""

    mode: str
    counts: list[ProviderCounts]
    files_read: int = 0


def candidates_sql(providers: list[ProviderConfig]) -> tuple[str, dict]:
    """One SELECT per outreach provider, normalized to the same columns, UNION ALL.

    Rows are the provider's bronze rows of $day whose file is in $files."""
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
                   b._source_file AS source_file, b._source_row AS source_row, b._record_hash AS record_hash
            FROM bronze.{provider.dataset(mapping.dataset).name} AS b
            WHERE b._partition_date = $day AND b._source_file IN (SELECT unnest($files))
            """
        )
    return "\nUNION ALL\n".join(selects), params


def crosswalk_version(con: duckdb.DuckDBPyConnection) -> str:
    """The member crosswalk every outreach and appointment partition resolves members through."""
    return inputs.recorded_fingerprint(con, "members")


def build_outreach_partition(con: duckdb.DuckDBPyConnection, providers: list[ProviderConfig], day: date, run_id: str) -> PartitionBuild:
    con.execute(SILVER_DDL)
    con.execute(MEMBER_TABLES_DDL)
    outreach = [p for p in providers if p.kind == "outreach"]
    current = inputs.current_inputs(con, [p.name for p in outreach], day, crosswalk_version(con))
    plan = inputs.plan(con, "outreach_events", day, current)
    if plan.mode == "unchanged":
        return PartitionBuild("unchanged", partition_counts(con, day))
    files = list(plan.new_files) if plan.mode == "append" else [entry.rsplit(":", 1)[0] for entry in current.files]

    union, params = candidates_sql(outreach)
    validated = VALIDATED_SQL.format(candidates=union, well_formed=MEMBER_REF_IS_WELL_FORMED)
    now = datetime.now(timezone.utc).replace(tzinfo=None)
    scope = {"day": day, "files": files}
    validation = {**params, **scope, "future_after_days": FUTURE_AFTER_DAYS, **identifier_pattern_params()}
    window = {**scope, "window_start": day - timedelta(days=DEDUP_WINDOW_DAYS), "window_end": day + timedelta(days=DEDUP_WINDOW_DAYS)}
    audit = {"day": day, "run_id": run_id, "now": now}
    delivered = "\nUNION ALL\n".join(
        DELIVERED_SQL.format(n=n, bronze=f"bronze.{p.dataset(p.outreach.dataset).name}") for n, p in enumerate(outreach))
    with in_transaction(con):
        if plan.mode == "replace":
            for statement in DELETE_PARTITION_SQL:
                con.execute(statement, {"day": day})
        con.execute(REJECTS_SQL.format(validated=validated), validation)
        for provider in outreach:
            con.execute(INSERT_QUARANTINE_SQL.format(bronze=f"bronze.{provider.dataset(provider.outreach.dataset).name}"),
                        {**audit, "provider": provider.name})
        con.execute(SUSPECTS_SQL.format(candidates=union), {**params, **scope})
        if con.execute(HAS_OLDER_ROWS_SQL, window).fetchone()[0]:
            con.execute(SUSPECTS_SEEN_BEFORE_SQL.format(candidates=union), {**params, **window})
        suspects = VALIDATED_SQL.format(candidates=SUSPECT_CANDIDATES_SQL.format(candidates=union), well_formed=MEMBER_REF_IS_WELL_FORMED)
        con.execute(DUPLICATES_SQL.format(validated_suspects=suspects), {**validation, **window})
        con.execute(INSERT_EVENTS_SQL.format(validated=validated), {**validation, "now": now})
        con.execute(COUNTS_SQL.format(delivered=delivered), {**scope, **{f"provider_{n}": p.name for n, p in enumerate(outreach)}})
        con.execute(RECONCILE_SQL, {"day": day})
        con.execute(DELETE_RECONCILIATION_SQL, {"day": day})
        con.execute(WRITE_RECONCILIATION_SQL, audit)
        inputs.record(con, "outreach_events", day, current, run_id)
    for table in ("outreach_rejects", "outreach_suspects", "outreach_duplicates", "outreach_counts", "outreach_reconciled"):
        con.execute(f"DROP TABLE IF EXISTS temp.main.{table}")
    return PartitionBuild(plan.mode, partition_counts(con, day), files_read=len(files))


def partition_counts(con: duckdb.DuckDBPyConnection, day: date) -> list[ProviderCounts]:
    return [ProviderCounts(*row) for row in con.execute(PARTITION_COUNTS_SQL, {"day": day}).fetchall()]
