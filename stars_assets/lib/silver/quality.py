"""Silver quality rules as plain functions over the warehouse; checks report what these return."""

from __future__ import annotations

from datetime import date

import duckdb

from stars_assets.lib.bronze.quality import RuleOutcome
from stars_assets.lib.masking import mask_identifier
from stars_assets.lib.silver.outreach import FUTURE_AFTER_DAYS

# Share of delivered rows whose member identifier must resolve before the day is trusted.
MIN_MEMBER_ID_COVERAGE = 0.95


def member_id_coverage(con: duckdb.DuckDBPyConnection, table: str, days: list[date]) -> RuleOutcome:
    """Valid member-ID coverage: rows whose identifier is well formed and resolves, over rows delivered."""
    delivered, bad = con.execute(
        """
        SELECT (SELECT coalesce(sum(rows_delivered), 0) FROM audit.silver_reconciliation
                WHERE silver_table = $table AND partition_date IN (SELECT unnest($days))),
               (SELECT count(*) FROM audit.quarantine WHERE layer = 'silver' AND dataset = $table
                AND reason IN ('unknown_member', 'malformed_member_id') AND partition_date IN (SELECT unnest($days)))
        """,
        {"days": days, "table": table},
    ).fetchone()
    coverage = 1.0 if delivered == 0 else (delivered - bad) / delivered
    return RuleOutcome(
        passed=coverage >= MIN_MEMBER_ID_COVERAGE,
        metadata={"rows_delivered": int(delivered), "rows_with_invalid_member_id": int(bad),
                  "coverage": round(coverage, 6), "minimum": MIN_MEMBER_ID_COVERAGE},
    )


def unique_event_ids(con: duckdb.DuckDBPyConnection, table: str) -> RuleOutcome:
    """No event_id appears twice anywhere in the silver event table (across every day)."""
    rows = con.execute(
        f"SELECT event_id, count(*) FROM silver.{table} GROUP BY 1 HAVING count(*) > 1 ORDER BY 2 DESC LIMIT 10"
    ).fetchall()
    total = con.execute(
        f"SELECT count(*) FROM (SELECT event_id FROM silver.{table} GROUP BY 1 HAVING count(*) > 1)"
    ).fetchone()[0]
    return RuleOutcome(passed=total == 0, metadata={"duplicated_event_ids": int(total),
                                                    "examples": [f"{e[:12]}… x{n}" for e, n in rows]})


def event_time_integrity(con: duckdb.DuckDBPyConnection, days: list[date]) -> RuleOutcome:
    """No event in silver is stamped after its delivery (or lacks a time)."""
    bad, quarantined = con.execute(
        f"""
        SELECT (SELECT count(*) FROM silver.outreach_events WHERE partition_date IN (SELECT unnest($days))
                AND (event_ts IS NULL OR event_ts >= CAST(partition_date AS TIMESTAMP) + INTERVAL {FUTURE_AFTER_DAYS} DAY)),
               (SELECT count(*) FROM audit.quarantine WHERE layer = 'silver' AND dataset = 'outreach_events'
                AND reason IN ('future_timestamp', 'invalid_timestamp') AND partition_date IN (SELECT unnest($days)))
        """,
        {"days": days},
    ).fetchone()
    return RuleOutcome(passed=bad == 0, metadata={"events_after_delivery_in_silver": int(bad),
                                                   "rows_quarantined_for_time": int(quarantined)})


def referential_integrity(con: duckdb.DuckDBPyConnection, table: str, days: list[date]) -> RuleOutcome:
    """Every event's member is in silver.members and its contract is a contract members belong to."""
    unknown_members, unknown_contracts, examples = con.execute(
        f"""
        SELECT count(*) FILTER (WHERE m.member_id IS NULL),
               count(*) FILTER (WHERE e.contract_id IS NULL OR e.contract_id NOT IN (SELECT DISTINCT contract_id FROM silver.members)),
               list(e.member_id) FILTER (WHERE m.member_id IS NULL)[1:5]
        FROM silver.{table} AS e LEFT JOIN silver.members AS m USING (member_id)
        WHERE e.partition_date IN (SELECT unnest($days))
        """,
        {"days": days},
    ).fetchone()
    return RuleOutcome(
        passed=unknown_members == 0 and unknown_contracts == 0,
        metadata={"events_with_unknown_member": int(unknown_members),
                  "events_with_unknown_contract": int(unknown_contracts),
                  "examples": [mask_identifier(m) for m in (examples or [])]},
    )


def reconciliation(con: duckdb.DuckDBPyConnection, table: str, sources: list[tuple[str, str]], days: list[date]) -> RuleOutcome:
    """Per provider and day: rows delivered (bronze) = rows in silver + rows quarantined + duplicates removed."""
    problems = []
    totals = {"delivered": 0, "loaded": 0, "quarantined": 0, "duplicates": 0}
    for provider, bronze_table in sources:
        for day in days:
            delivered = con.execute(f"SELECT count(*) FROM bronze.{bronze_table} WHERE _partition_date = $day", {"day": day}).fetchone()[0]
            scope = {"p": provider, "day": day, "table": table}
            loaded = con.execute(
                f"SELECT count(*) FROM silver.{table} WHERE provider = $p AND partition_date = $day", {"p": provider, "day": day}
            ).fetchone()[0]
            quarantined = con.execute(
                "SELECT count(*) FROM audit.quarantine WHERE layer = 'silver' AND dataset = $table "
                "AND provider = $p AND partition_date = $day", scope
            ).fetchone()[0]
            duplicates = con.execute(
                "SELECT coalesce(sum(duplicates_removed), 0) FROM audit.silver_reconciliation "
                "WHERE silver_table = $table AND provider = $p AND partition_date = $day", scope
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
                AND reason IN ('start_before_booking', 'future_timestamp', 'invalid_timestamp')
                AND partition_date IN (SELECT unnest($days)))
        FROM silver.appointment_events WHERE partition_date IN (SELECT unnest($days))
        """,
        {"days": days},
    ).fetchone()
    return RuleOutcome(
        passed=before_booking == 0 and after_delivery == 0,
        metadata={"starts_before_booking_in_silver": int(before_booking),
                  "events_after_delivery_in_silver": int(after_delivery),
                  "rows_quarantined_for_time": int(quarantined)},
    )
