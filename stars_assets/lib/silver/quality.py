"""Silver quality rules as plain functions over the warehouse; checks report what these return."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import duckdb

from stars_assets.lib import vocabulary as v
from stars_assets.lib.bronze.quality import RuleOutcome
from stars_assets.lib.masking import mask_identifier
from stars_assets.lib.silver.events import FUTURE_AFTER_DAYS, REPEATED_HASHES_SQL

# Share of delivered rows whose member identifier must resolve before the day is trusted.
MIN_MEMBER_ID_COVERAGE = 0.95
# A rate says little over a handful of rows: a day below the share fails the step only when it has
# at least this many rows with an invalid member id; with fewer it warns (two bad rows on a quiet day).
MIN_INVALID_ROWS_TO_FAIL = 20

COVERAGE_SQL = """
WITH delivered AS (
    SELECT partition_date, sum(rows_delivered) AS n FROM audit.silver_reconciliation
    WHERE silver_table = $table AND partition_date IN (SELECT unnest($days)) GROUP BY 1
), bad AS (
    SELECT partition_date, count(*) AS n FROM audit.quarantine
    WHERE layer = 'silver' AND dataset = $table AND reason IN (SELECT unnest($reasons))
      AND partition_date IN (SELECT unnest($days)) GROUP BY 1
)
SELECT partition_date, coalesce(d.n, 0), coalesce(b.n, 0)
FROM delivered AS d FULL JOIN bad AS b USING (partition_date) ORDER BY 1
"""


def member_id_coverage(con: duckdb.DuckDBPyConnection, table: str, days: list[date]) -> RuleOutcome:
    """Valid member-ID coverage per day: rows whose identifier is well formed and resolves (to one
    member), over rows delivered. Below the minimum share a day fails, or only warns when it has
    fewer than MIN_INVALID_ROWS_TO_FAIL such rows."""
    per_day = con.execute(COVERAGE_SQL, {"days": days, "table": table, "reasons": list(v.MEMBER_REASONS)}).fetchall()
    delivered = sum(int(n) for _, n, _ in per_day)
    bad = sum(int(n) for _, _, n in per_day)
    below = [(day, int(n), int(b)) for day, n, b in per_day if n and (n - b) / n < MIN_MEMBER_ID_COVERAGE]
    failing = [day for day, _, b in below if b >= MIN_INVALID_ROWS_TO_FAIL]
    coverage = 1.0 if delivered == 0 else (delivered - bad) / delivered
    return RuleOutcome(
        passed=not below,
        warn_only=bool(below) and not failing,
        metadata={
            "rows_delivered": delivered,
            "rows_with_invalid_member_id": bad,
            "coverage": round(coverage, 6),
            "minimum": MIN_MEMBER_ID_COVERAGE,
            "min_invalid_rows_to_fail": MIN_INVALID_ROWS_TO_FAIL,
            "days_below_minimum": {str(day): f"{n - b}/{n}" for day, n, b in below},
            "days_failing": [str(day) for day in failing],
        },
    )


# Partitions whose row count differs from what the pipeline's writes recorded: rows added or
# removed outside the pipeline (never deduplicated).
UNACCOUNTED_SQL = """
WITH actual AS (SELECT partition_date, count(*) AS n FROM silver.{table} GROUP BY 1),
recorded AS (SELECT partition_date, sum(rows_loaded) AS n FROM audit.silver_reconciliation
             WHERE silver_table = $table GROUP BY 1)
SELECT partition_date, coalesce(a.n, 0), coalesce(r.n, 0)
FROM actual AS a FULL JOIN recorded AS r USING (partition_date)
WHERE coalesce(a.n, 0) <> coalesce(r.n, 0)
ORDER BY 1
"""

# event_ids of the checked partitions that appear twice among them or in the dedup window
# around them. The stored event_hash (a function of the same provider:event_key as event_id, so
# equal event_ids have equal hashes) narrows the rows down without hashing every key of the
# window, repeated hashes are found as silver finds them, and event_id decides.
DUPLICATES_NEAR_SQL = f"""
WITH checked AS (SELECT event_hash FROM silver.{{table}}
                 WHERE partition_date IN (SELECT unnest($days)) AND ($since IS NULL OR loaded_at >= $since)),
near AS (SELECT event_hash AS h FROM silver.{{table}}
         WHERE partition_date BETWEEN $start AND $end AND event_hash IN (SELECT event_hash FROM checked)),
suspects AS ({REPEATED_HASHES_SQL.format(rows="SELECT h FROM near")})
SELECT event_id, count(*) AS copies FROM silver.{{table}}
WHERE partition_date BETWEEN $start AND $end AND event_hash IN (SELECT h FROM suspects)
GROUP BY 1 HAVING count(*) > 1 ORDER BY 2 DESC, 1
"""

# event_ids of some partitions that appear anywhere else in the table.
DUPLICATES_ANYWHERE_SQL = """
SELECT event_id, count(*) AS copies FROM silver.{table}
WHERE event_id IN (SELECT event_id FROM silver.{table} WHERE partition_date IN (SELECT unnest($days)))
GROUP BY 1 HAVING count(*) > 1 ORDER BY 2 DESC, 1
"""


def unique_event_ids(
    con: duckdb.DuckDBPyConnection, table: str, days: list[date], window_days: int, written_since: datetime | None = None
) -> RuleOutcome:
    """No event_id appears twice in the silver event table, within the deduplication window.

    Proven in three parts, none of which reads the whole history: every partition holds exactly
    the rows the pipeline's deduplicating writes recorded (else rows were added outside it, and
    those partitions are checked against the whole table); and `days`, the partitions written in
    this run (their rows written since `written_since`, when given), hold no event_id twice, nor
    one that another partition within `window_days` holds.
    A partition no run has rewritten was verified when it was written and has not changed since.
    """
    unaccounted = con.execute(UNACCOUNTED_SQL.format(table=table), {"table": table}).fetchall()
    duplicated: dict[str, int] = {}
    if days:
        span = {
            "days": days,
            "since": written_since,
            "start": min(days) - timedelta(days=window_days),
            "end": max(days) + timedelta(days=window_days),
        }
        duplicated.update(con.execute(DUPLICATES_NEAR_SQL.format(table=table), span).fetchall())
    if unaccounted:
        rogue = [row[0] for row in unaccounted if row[1] > 0]
        duplicated.update(con.execute(DUPLICATES_ANYWHERE_SQL.format(table=table), {"days": rogue}).fetchall())
    examples = sorted(duplicated.items(), key=lambda item: (-item[1], item[0]))[:10]
    return RuleOutcome(
        passed=not duplicated and not unaccounted,
        metadata={
            "duplicated_event_ids": len(duplicated),
            "examples": [f"{e[:12]}… x{n}" for e, n in examples],
            "partitions_verified": [str(d) for d in days],
            "partitions_not_matching_their_writes": [f"{d}: {n} rows, writes recorded {w}" for d, n, w in unaccounted[:20]],
            "window_days": window_days,
        },
    )


# Rows a check reads: the days' partitions, and of those only the rows written since a time when
# the caller gives one (rows an earlier run wrote were checked by that run and have not changed:
# a partition is only ever rewritten or appended to by the pipeline, which stamps loaded_at).
WRITTEN_SINCE = "($since IS NULL OR {alias}loaded_at >= $since)"


def event_time_integrity(con: duckdb.DuckDBPyConnection, days: list[date], written_since: datetime | None = None) -> RuleOutcome:
    """No event in silver is stamped after its delivery (or lacks a time)."""
    bad, quarantined = con.execute(
        f"""
        SELECT (SELECT count(*) FROM silver.outreach_events WHERE partition_date IN (SELECT unnest($days))
                AND {WRITTEN_SINCE.format(alias="")}
                AND (event_ts IS NULL OR event_ts >= CAST(partition_date AS TIMESTAMP) + INTERVAL {FUTURE_AFTER_DAYS} DAY)),
               (SELECT count(*) FROM audit.quarantine WHERE layer = 'silver' AND dataset = 'outreach_events'
                AND reason IN {v.sql_list(("future_timestamp", "invalid_timestamp"))} AND partition_date IN (SELECT unnest($days)))
        """,
        {"days": days, "since": written_since},
    ).fetchone()
    return RuleOutcome(
        passed=bad == 0, metadata={"events_after_delivery_in_silver": int(bad), "rows_quarantined_for_time": int(quarantined)}
    )


def referential_integrity(
    con: duckdb.DuckDBPyConnection, table: str, days: list[date], written_since: datetime | None = None
) -> RuleOutcome:
    """Every event's member is in silver.members and its contract is a contract members belong to."""
    unknown_members, unknown_contracts, examples = con.execute(
        f"""
        SELECT count(*) FILTER (WHERE m.member_id IS NULL),
               count(*) FILTER (WHERE e.contract_id IS NULL OR e.contract_id NOT IN (SELECT DISTINCT contract_id FROM silver.members)),
               list(e.member_id) FILTER (WHERE m.member_id IS NULL)[1:5]
        FROM silver.{table} AS e LEFT JOIN silver.members AS m USING (member_id)
        WHERE e.partition_date IN (SELECT unnest($days)) AND {WRITTEN_SINCE.format(alias="e.")}
        """,
        {"days": days, "since": written_since},
    ).fetchone()
    return RuleOutcome(
        passed=unknown_members == 0 and unknown_contracts == 0,
        metadata={
            "events_with_unknown_member": int(unknown_members),
            "events_with_unknown_contract": int(unknown_contracts),
            "examples": [mask_identifier(m) for m in (examples or [])],
        },
    )


def reconciliation(con: duckdb.DuckDBPyConnection, table: str, sources: list[tuple[str, str]], days: list[date]) -> RuleOutcome:
    """Per provider and day: rows delivered (bronze) = rows in silver + rows quarantined + duplicates removed."""
    problems = []
    totals = {"delivered": 0, "loaded": 0, "quarantined": 0, "duplicates": 0}
    for provider, bronze_table in sources:
        for day in days:
            delivered = con.execute(
                f"SELECT count(*) FROM bronze.{bronze_table} WHERE _partition_date = $day", {"day": day}
            ).fetchone()[0]
            scope = {"p": provider, "day": day, "table": table}
            loaded = con.execute(
                f"SELECT count(*) FROM silver.{table} WHERE provider = $p AND partition_date = $day", {"p": provider, "day": day}
            ).fetchone()[0]
            quarantined = con.execute(
                "SELECT count(*) FROM audit.quarantine WHERE layer = 'silver' AND dataset = $table "
                "AND provider = $p AND partition_date = $day",
                scope,
            ).fetchone()[0]
            duplicates = con.execute(
                "SELECT coalesce(sum(duplicates_removed), 0) FROM audit.silver_reconciliation "
                "WHERE silver_table = $table AND provider = $p AND partition_date = $day",
                scope,
            ).fetchone()[0]
            for key, value in zip(totals, (delivered, loaded, quarantined, duplicates)):
                totals[key] += int(value)
            if delivered != loaded + quarantined + duplicates:
                problems.append(f"{provider} {day}: delivered {delivered} != {loaded} + {quarantined} + {duplicates}")
    return RuleOutcome(passed=not problems, metadata={**{f"rows_{k}": v for k, v in totals.items()}, "mismatches": problems[:20]})


def appointment_time_integrity(con: duckdb.DuckDBPyConnection, days: list[date]) -> RuleOutcome:
    """No appointment event in silver starts before its booking or is stamped after its delivery."""
    before_booking, after_delivery, quarantined = con.execute(
        f"""
        SELECT count(*) FILTER (WHERE start_ts < booked_ts),
               count(*) FILTER (WHERE event_ts >= CAST(partition_date AS TIMESTAMP) + INTERVAL {FUTURE_AFTER_DAYS} DAY),
               (SELECT count(*) FROM audit.quarantine WHERE layer = 'silver' AND dataset = 'appointment_events'
                AND reason IN {v.sql_list(v.TIME_REASONS)}
                AND partition_date IN (SELECT unnest($days)))
        FROM silver.appointment_events WHERE partition_date IN (SELECT unnest($days))
        """,
        {"days": days},
    ).fetchone()
    return RuleOutcome(
        passed=before_booking == 0 and after_delivery == 0,
        metadata={
            "starts_before_booking_in_silver": int(before_booking),
            "events_after_delivery_in_silver": int(after_delivery),
            "rows_quarantined_for_time": int(quarantined),
        },
    )
