"""Contract checks on the silver tables: each runs its pandera Ibis model inside DuckDB.

The rules live in stars_assets.lib.silver.contracts; these checks only report what
`validate_table` returns. Checks on the tables gold reads are blocking: a broken contract stops
the run before gold is built from it. A check on a table with a partition_date column is
partitioned like its asset: it validates the run's delivery dates and records one evaluation per
date (a range run included), validating the range's changed dates in one query grouped by date;
otherwise it validates the whole table. The work stays in DuckDB, one scan for every row rule, and
outcomes are remembered with the state of the rows they covered (lib/silver/check_memo.py):
unchanged rows are not read twice, and after an append only the appended rows are.

A contract whose only failures are warning-level rules (raise_warning=True in the model) fails
with WARN severity, which Dagster never treats as blocking.
"""

from datetime import date

import dagster as dg
from dagster_duckdb import DuckDBResource

from stars_assets.defs.partitions import WAREHOUSE_POOL, daily_partitions, partition_check_evaluations
from stars_assets.lib.silver import check_memo, contracts
from stars_assets.lib.warehouse import configure_connection


def _verdict(outcome) -> tuple:
    warned = outcome.passed and bool(outcome.metadata.get("warnings_by_check"))
    return (
        outcome.passed and not warned,
        outcome.metadata,
        dg.AssetCheckSeverity.WARN if warned else dg.AssetCheckSeverity.ERROR,
    )


def _run_partitions(context: dg.AssetCheckExecutionContext) -> list[str] | None:
    """The delivery dates the check runs for, or None outside a partitioned run."""
    op_context = context.op_execution_context
    try:
        partitioned_run = op_context.has_partition_key or op_context.has_partition_key_range
        return list(op_context.partition_keys) if partitioned_run else None
    except Exception:  # invoked directly, with no run
        return None


def _contract_check(table: str, blocking: bool, what: str) -> dg.AssetChecksDefinition:
    contract = contracts.CONTRACTS[table]
    partitioned = "partition_date" in contract.columns
    key = dg.AssetCheckKey(dg.AssetKey(["silver", table]), f"check_contract_{table}")

    @dg.asset_check(
        asset=key.asset_key,
        name=key.name,
        blocking=blocking,
        # The check opens the warehouse read-write through the resource, so it queues with the writers.
        pool=WAREHOUSE_POOL,
        partitions_def=daily_partitions if partitioned else None,
        description=f"silver.{table} satisfies its pandera contract ({contract.name}), validated in DuckDB: {what}",
        metadata={"contract": f"stars_assets.lib.silver.contracts.{contract.name}"},
    )
    def contract_check(context: dg.AssetCheckExecutionContext, duckdb: DuckDBResource):
        # A regular function: a result for the whole table, or (partitioned, in a run) the generator of one
        # evaluation per delivery date. Invoked directly, outside a run, a partitioned check validates the whole table.
        partitions = _run_partitions(context) if partitioned else None
        with duckdb.get_connection() as conn:
            configure_connection(conn)
            if partitions is None:
                passed, metadata, severity = _verdict(check_memo.validate_remembered(conn, table, None))
                return dg.AssetCheckResult(passed=passed, severity=severity, metadata=metadata)
            # The run's days at once: one grouped validation of the days that changed, not one per day.
            outcomes = check_memo.validate_partitions(conn, table, [date.fromisoformat(p) for p in partitions])
        return partition_check_evaluations(context, key, {day.isoformat(): _verdict(o) for day, o in outcomes.items()})

    return contract_check


check_contract_outreach_events = _contract_check(
    "outreach_events",
    True,
    "md5 event ids, known providers, member and contract id shapes, canonical channel and event type, "
    "event time present, lineage to a source file and row.",
)
check_contract_appointment_events = _contract_check(
    "appointment_events",
    True,
    "md5 event ids, known EMRs, appointment keys qualified by their EMR, canonical status, start and event times present.",
)
check_contract_appointments = _contract_check(
    "appointments",
    False,
    "known EMRs and statuses, keys qualified by their EMR, event and reschedule counts consistent, md5 state hash.",
)
check_contract_members = _contract_check(
    "members",
    True,
    "one row per member id, member id / MBI / vendor reference shapes, contract id shape, readable booleans, "
    "enrollment end not before start.",
)
check_contract_care_gaps = _contract_check(
    "care_gaps",
    True,
    "one row per gap, known measure codes with their CMS measure ids, open date present, close date not before it.",
)
check_contract_rx_fills = _contract_check(
    "rx_fills", True, "one row per fill, adherence drug classes, fill date present, days supply within 1..365."
)
