"""Publish: one asset per lake table (tables.py), writing its partitions to Delta Lake after its warehouse upstream.

Each asset reads the warehouse inside the warehouse pool (DuckDB admits one process per file), replaces
exactly its partitions in one Delta commit (none when nothing changed), and proves with
check_reconciliation_lake_rows that the lake's rows in those partitions equal the warehouse's.
"""

import time
from datetime import UTC, datetime

import dagster as dg
import duckdb as duckdb_module
import pyarrow as pa
from dagster_duckdb import DuckDBResource

from stars_assets.defs.partitions import WAREHOUSE_POOL
from stars_assets.defs.publish.tables import CHECK_OUTCOMES, LAKE_TABLES, LakeTable
from stars_assets.defs.resources import LandingZone
from stars_assets.lib import lake
from stars_assets.lib.lake.publish import EMPTY, lake_fingerprints
from stars_assets.lib.ops.freshness import latest_delivery
from stars_assets.lib.providers import load_registry
from stars_assets.lib.warehouse import configure_connection

OWNERS = ["team:stars-data-engineering"]
PUBLISHED_CHECK = "check_reconciliation_lake_rows"
# Arrow-built tables are registered under this name in an in-memory DuckDB and published from there.
INCOMING = "incoming"
RECENT_CHECK_EVALUATIONS = 20_000


def delivery_freshness_rows(context: dg.AssetExecutionContext, landing: LandingZone) -> pa.Table:
    now = time.time()
    evaluated_at = datetime.fromtimestamp(now, tz=UTC).replace(tzinfo=None)
    rows = []
    for provider in load_registry():
        latest = latest_delivery(provider, landing.provider_dir(provider.name))
        hours_since = None if latest.landed_at is None else (now - latest.landed_at) / 3600
        rows.append(
            {
                "provider": provider.name,
                "newest_file_at": None
                if latest.landed_at is None
                else datetime.fromtimestamp(latest.landed_at, tz=UTC).replace(tzinfo=None),
                "sla_hours": float(provider.delivery_sla_hours),
                "hours_since": hours_since,
                "is_fresh": hours_since is not None and hours_since <= provider.delivery_sla_hours,
                "evaluated_at": evaluated_at,
            }
        )
    return pa.Table.from_pylist(
        rows,
        schema=pa.schema(
            [
                ("provider", pa.string()),
                ("newest_file_at", pa.timestamp("us")),
                ("sla_hours", pa.float64()),
                ("hours_since", pa.float64()),
                ("is_fresh", pa.bool_()),
                ("evaluated_at", pa.timestamp("us")),
            ]
        ),
    )


def check_outcome_rows(context: dg.AssetExecutionContext, landing: LandingZone) -> pa.Table:
    """The latest outcome of each check and partition among the instance's most recent evaluations."""
    records = context.instance.event_log_storage.get_event_records(
        dg.EventRecordsFilter(event_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION),
        limit=RECENT_CHECK_EVALUATIONS,
        ascending=False,
    )
    latest = {}
    for record in records:
        evaluation = record.event_log_entry.dagster_event.event_specific_data
        latest.setdefault(
            (evaluation.asset_key.to_user_string(), evaluation.check_name, evaluation.partition), (record, evaluation)
        )
    rows = [
        {
            "asset_key": asset_key,
            "check_name": check_name,
            "partition": partition,
            "passed": evaluation.passed,
            "severity": evaluation.severity.value,
            "evaluated_at": datetime.fromtimestamp(record.timestamp, tz=UTC).replace(tzinfo=None),
            "run_id": record.run_id,
            "description": evaluation.description,
        }
        for (asset_key, check_name, partition), (record, evaluation) in sorted(latest.items(), key=lambda item: str(item[0]))
    ]
    return pa.Table.from_pylist(
        rows,
        schema=pa.schema(
            [
                ("asset_key", pa.string()),
                ("check_name", pa.string()),
                ("partition", pa.string()),
                ("passed", pa.bool_()),
                ("severity", pa.string()),
                ("evaluated_at", pa.timestamp("us")),
                ("run_id", pa.string()),
                ("description", pa.string()),
            ]
        ),
    )


BUILDERS = {"delivery_freshness": delivery_freshness_rows, "check_outcomes": check_outcome_rows}


def reconcile(conn, spec: LakeTable, source: str, result: lake.PublishResult, partitions: list) -> dg.AssetCheckResult:
    """The lake table at the version just published holds, partition by partition, exactly the warehouse's rows."""
    published = lake.open_table(spec.layer, spec.table, version=result.version) if result.version >= 0 else None
    in_lake = (
        lake_fingerprints(conn, source, published, partition_column=spec.partition_column, partitions=partitions)
        if published
        else {p: (0, EMPTY) for p in result.fingerprints}
    )
    differing = [p for p, fingerprint in result.fingerprints.items() if in_lake[p][1] != fingerprint]
    return dg.AssetCheckResult(
        check_name=PUBLISHED_CHECK,
        passed=not differing,
        metadata={
            "partitions_compared": len(result.fingerprints),
            "partitions_differing": dg.MetadataValue.json(differing),
            "warehouse_rows": sum(result.rows.values()),
            "lake_rows": sum(rows for rows, _ in in_lake.values()),
            "lake_version": result.version,
        },
    )


def build_publish_asset(spec: LakeTable) -> dg.AssetsDefinition:
    # Publishes follow silver's and gold's single-run backfills: one Delta commit for a range of days or weeks.
    single_run = spec.partitions_def is not None

    @dg.asset(
        key=spec.key,
        group_name="publish",
        description=f"Publishes {spec.name} to the lake (Delta Lake, <lake root>/{spec.layer}/{spec.table}). {spec.description} "
        f"Contains PHI: {'yes' if spec.contains_phi else 'no'}.",
        deps=list(spec.deps),
        partitions_def=spec.partitions_def,
        backfill_policy=dg.BackfillPolicy.single_run() if single_run else None,
        kinds={"deltalake", "duckdb"},
        owners=OWNERS,
        pool=WAREHOUSE_POOL,
        metadata={
            "contains_phi": spec.contains_phi,
            "lake_table": spec.name,
            "partition_column": spec.partition_column or "(whole table)",
        },
        check_specs=[
            dg.AssetCheckSpec(
                PUBLISHED_CHECK,
                asset=spec.key,
                blocking=True,
                description="The lake's rows equal the warehouse's in every partition this run published.",
            )
        ],
    )
    def publish(context: dg.AssetExecutionContext, duckdb: DuckDBResource, landing: LandingZone):
        partitions = [spec.partition_value(k) for k in context.partition_keys] if spec.partition_column else []
        metadata = {"stars.run_id": context.run.run_id}
        if spec.builder:
            conn_context = duckdb_module.connect()
            conn_context.register(INCOMING, BUILDERS[spec.builder](context, landing))
            source = f"SELECT * FROM {INCOMING}"
        else:
            conn_context = duckdb.get_connection()
            source = spec.source
        with conn_context as conn:
            if not spec.builder:
                configure_connection(conn)
            result = lake.publish_query(
                conn,
                source,
                spec.layer,
                spec.table,
                contains_phi=spec.contains_phi,
                partition_column=spec.partition_column,
                partitions=partitions,
                source_name=spec.name,
                commit_metadata=metadata,
                unique_columns=spec.unique_columns,
            )
            check = reconcile(conn, spec, source, result, partitions)
        if result.committed:
            context.log.info(
                f"{spec.name}: Delta version {result.version}, replaced {len(result.partitions_written)} partition(s) "
                f"with {result.rows_written} rows; {len(result.partitions_unchanged)} unchanged"
            )
        else:
            context.log.info(f"{spec.name}: unchanged in the warehouse since the last publish; no Delta commit")
        yield dg.MaterializeResult(
            metadata={
                "lake_version": result.version,
                "table_uri": result.uri,
                "committed": result.committed,
                "partitions_written": dg.MetadataValue.json(result.partitions_written),
                "partitions_unchanged": len(result.partitions_unchanged),
                "rows_written": result.rows_written,
                "rows": sum(result.rows.values()),
                "contains_phi": spec.contains_phi,
                **({"columns_added": dg.MetadataValue.json(result.columns_added)} if result.columns_added else {}),
            },
            check_results=[check],
        )

    return publish


publish_assets = [build_publish_asset(spec) for spec in LAKE_TABLES]
PUBLISH = dg.AssetSelection.groups("publish")


def with_publishing(selection: dg.AssetSelection) -> dg.AssetSelection:
    """A job's assets plus the lake tables published from them, and the check outcomes last."""
    return selection | (selection.downstream(depth=1) & PUBLISH) | dg.AssetSelection.assets(CHECK_OUTCOMES.key)
