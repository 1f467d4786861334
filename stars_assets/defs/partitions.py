"""Partitions shared across layers: delivery date for bronze and silver, week for snapshots."""

from datetime import date, timedelta

import dagster as dg

from stars_assets import settings

FIRST_DELIVERY_DATE = date.fromisoformat(settings.first_delivery_date())

# end_offset=1 keeps today's partition open: hourly micro-batches arrive during the day.
daily_partitions = dg.DailyPartitionsDefinition(start_date=FIRST_DELIVERY_DATE.isoformat(), end_offset=1)

# Weekly "as of week end" snapshots; weeks start on Sunday (the one on or before the first delivery) and the
# snapshot is as of Saturday.
weekly_partitions = dg.WeeklyPartitionsDefinition(
    start_date=(FIRST_DELIVERY_DATE - timedelta(days=(FIRST_DELIVERY_DATE.weekday() + 1) % 7)).isoformat()
)


def week_metadata(as_of, rows: int) -> dict:
    """What every weekly snapshot's materialization records first: its week end and its row count."""
    return {"as_of_week_end": str(as_of), "dagster/row_count": dg.MetadataValue.int(rows)}


# DuckDB admits one writing process per file: every asset that writes the warehouse runs in
# this pool, whose limit (dagster.yaml, concurrency.pools.default_limit) is 1.
WAREHOUSE_POOL = "duckdb_warehouse"


def blocking_check_specs(
    key: dg.AssetKey, checks: dict[str, str], partitions_def: dg.PartitionsDefinition | None = None
) -> list[dg.AssetCheckSpec]:
    """One blocking check spec per (name, description) in `checks`."""
    return [
        dg.AssetCheckSpec(name, asset=key, blocking=True, description=text, partitions_def=partitions_def)
        for name, text in checks.items()
    ]


def range_run(
    partitions_def: dg.PartitionsDefinition, key: dg.AssetKey | None = None, checks: dict[str, str] | None = None
) -> dict:
    """How an asset that writes the warehouse runs: a partition range in one run (single-run backfill), one writer
    at a time through the warehouse pool, and its blocking checks (if any) evaluated per partition."""
    arguments = {"partitions_def": partitions_def, "backfill_policy": dg.BackfillPolicy.single_run(), "pool": WAREHOUSE_POOL}
    if checks:
        arguments["check_specs"] = blocking_check_specs(key, checks, partitions_def)
    return arguments


def partition_check_evaluations(
    context,
    check_key: dg.AssetCheckKey,
    outcomes: dict[str, tuple],
    severity: dg.AssetCheckSeverity = dg.AssetCheckSeverity.ERROR,
):
    """One evaluation per partition for a check whose spec is partitioned like its asset.

    `outcomes` maps each partition key to (passed, metadata) or (passed, metadata, severity).

    A range run (single-run backfill) executes every partition in one step; Dagster's
    AssetCheckResult would record one evaluation without a partition, so each partition's
    outcome is reported as its own AssetCheckEvaluation. The check's op output is emitted once,
    as AssetCheckResult does, so downstream steps can depend on it; a failed blocking evaluation
    stops downstream steps exactly like a failed AssetCheckResult.
    """
    op_context = getattr(context, "op_execution_context", context)
    if check_key not in op_context.assets_def.check_keys:  # not selected in this run
        return
    output, spec = next(
        (name, spec) for name, spec in op_context.assets_def.check_specs_by_output_name.items() if spec.key == check_key
    )
    for partition, (passed, metadata, *own_severity) in outcomes.items():
        yield dg.AssetCheckEvaluation(
            asset_key=check_key.asset_key,
            check_name=check_key.name,
            passed=passed,
            metadata=metadata,
            severity=own_severity[0] if own_severity else severity,
            blocking=spec.blocking,
            partition=partition,
        )
    yield dg.Output(None, output_name=output)


def each_partition(context: dg.AssetExecutionContext, materialize_one):
    """Run an asset body once per partition of the run, so a range of weeks is one run (a single-run backfill).

    `materialize_one(partition_key)` yields the MaterializeResults of one partition, as an asset run for that
    partition alone would (metadata and check results included). Each result's metadata goes to that
    partition's own materialization and each check result becomes that partition's evaluation (the checks are
    partitioned like the asset); then every asset materializes once for the run, as Dagster expects of a
    single-run backfill.
    """
    outcomes: dict[dg.AssetCheckKey, dict[str, tuple]] = {}
    keys: list[dg.AssetKey] = []
    for partition in context.partition_keys:
        for result in materialize_one(partition):
            key = result.asset_key or context.assets_def.key
            keys += [key] if key not in keys else []
            context.add_asset_metadata(dict(result.metadata or {}), asset_key=key, partition_key=partition)
            for check in result.check_results or []:
                check_key = dg.AssetCheckKey(check.asset_key or key, check.check_name)
                outcomes.setdefault(check_key, {})[partition] = (check.passed, check.metadata, check.severity)
    for key in keys:
        yield dg.MaterializeResult(asset_key=key)
    for check_key, by_partition in outcomes.items():
        yield from partition_check_evaluations(context, check_key, by_partition)
