"""Bronze: one asset per provider YAML, partitioned by delivery date, built by a factory."""

import time
from datetime import date
from pathlib import Path

import dagster as dg
from dagster_duckdb import DuckDBResource

from stars_assets.defs.partitions import daily_partitions, partition_check_evaluations, range_run
from stars_assets.defs.resources import LandingZone
from stars_assets.defs.tables import table_columns
from stars_assets.lib.bronze.landing import inventory
from stars_assets.lib.bronze.load import PartitionLoad, load_partition
from stars_assets.lib.bronze.quality import (
    quarantine_rate_result,
    reconciliation_result,
)
from stars_assets.lib.bronze.tables import BRONZE_LINEAGE
from stars_assets.lib.masking import markdown_preview
from stars_assets.lib.providers import ProviderConfig, load_registry
from stars_assets.lib.warehouse import configure_connection

RECONCILIATION_CHECK = "check_reconciliation_files"
QUARANTINE_CHECK = "check_validity_rows_quarantined"


def bronze_key(provider: str) -> dg.AssetKey:
    return dg.AssetKey(["bronze", provider])


def landing_key(provider: str) -> dg.AssetKey:
    """The provider's landing folder, an external asset observed by defs/ops (what bronze loads from)."""
    return dg.AssetKey(["landing", provider])


def _column_schema(provider: ProviderConfig) -> dg.TableSchema:
    columns = []
    for dataset in provider.datasets:
        prefix = f"{dataset.name}." if len(provider.datasets) > 1 else ""
        columns += [
            dg.TableColumn(
                f"{prefix}{c.column}", "VARCHAR", description=f"vendor field {c.source!r}" + (" (required)" if c.required else "")
            )
            for c in dataset.columns
        ]
    columns += table_columns(BRONZE_LINEAGE)
    return dg.TableSchema(columns=columns)


def _partition_metadata(load: PartitionLoad) -> dict:
    """What one delivery date's load did: a range run records this on each partition's own materialization."""
    return {
        "dagster/row_count": dg.MetadataValue.int(load.rows_loaded),
        "mode": load.mode,
        "files_read": dg.MetadataValue.int(load.files_read),
        "rows_read": dg.MetadataValue.int(load.rows_read),
        "rows_loaded": dg.MetadataValue.int(load.rows_loaded),
        "rows_quarantined": dg.MetadataValue.int(load.rows_rejected),
        "bytes_read": dg.MetadataValue.int(load.bytes_read),
        "files_loaded": dg.MetadataValue.int(sum(f.status == "loaded" for f in load.files)),
        "files_quarantined": dg.MetadataValue.int(sum(f.status == "quarantined" for f in load.files)),
        "files_skipped_duplicate": dg.MetadataValue.int(sum(f.status == "skipped_duplicate" for f in load.files)),
        "files_not_read": dg.MetadataValue.int(load.files_not_read),
        "file_reasons": dg.MetadataValue.json(load.reason_counts()),
        "schema_drift_columns": dg.MetadataValue.json(sorted({c for f in load.files for c in f.extra_columns})),
        "files": dg.MetadataValue.md(
            markdown_preview(
                ["file", "status", "reason", "rows", "rejected"],
                [(f.file_path, f.status, f.reason or "", f.rows_loaded, f.rows_rejected) for f in load.files],
            )
        ),
    }


def _preview(conn, provider: ProviderConfig, partition_dates: list[date]) -> str:
    dataset = provider.datasets[0]
    # The vendor's own name for its member identifier; the specs' PHI columns are masked anyway.
    identifiers = set()
    for mapping in (provider.outreach, provider.appointments):
        if mapping is not None:
            identifiers.add(mapping.member_ref)
    columns = [c.column for c in dataset.columns] + ["_source_file", "_source_row"]
    # The first rows of the first files: `_source_row <= 10` lets DuckDB skip every row group
    # but the first of each file (zone maps), so the preview does not sort the partition.
    rows = conn.execute(
        f"SELECT {', '.join(columns)} FROM bronze.{dataset.name} WHERE _partition_date IN (SELECT unnest($days)) "
        "AND _source_row <= 10 ORDER BY _source_file, _source_row LIMIT 5",
        {"days": partition_dates},
    ).fetchall()
    return markdown_preview(columns, rows, identifiers)


def build_bronze_asset(provider: ProviderConfig) -> dg.AssetsDefinition:
    key = bronze_key(provider.name)

    @dg.asset(
        key=key,
        group_name="bronze",
        description=provider.description,
        deps=[landing_key(provider.name)],
        kinds={"duckdb", provider.format},
        owners=list(provider.owners),
        **range_run(daily_partitions),
        tags={"layer": "bronze", "provider": provider.name},
        metadata={
            "dagster/column_schema": _column_schema(provider),
            "provider_format": provider.format,
            "file_patterns": ", ".join(d.file_pattern for d in provider.datasets),
            "bronze_tables": ", ".join(f"bronze.{d.name}" for d in provider.datasets),
            "delivery_sla_hours": provider.delivery_sla_hours,
        },
        check_specs=[
            dg.AssetCheckSpec(
                RECONCILIATION_CHECK,
                asset=key,
                blocking=True,
                partitions_def=daily_partitions,
                description="Every landed file of the partition is in the manifest, and bronze holds exactly the rows the manifest says were loaded.",
            ),
            dg.AssetCheckSpec(
                QUARANTINE_CHECK,
                asset=key,
                partitions_def=daily_partitions,
                description="Warns when files or rows were quarantined (the share of rejected rows and the reasons are in the metadata).",
            ),
        ],
    )
    def bronze_asset(context: dg.AssetExecutionContext, duckdb: DuckDBResource, landing: LandingZone):
        partition_dates = [date.fromisoformat(k) for k in context.partition_keys]
        reconciliation, quarantine = {}, {}
        # The folder is listed once per run, not once per day: a range's days share one listing (files that
        # land later are read by a later run, as files still being written are).
        entries = inventory(provider, landing.provider_dir(provider.name), time.time())
        with duckdb.get_connection() as conn:
            configure_connection(conn)
            for number, day in enumerate(partition_dates, start=1):
                load = load_partition(conn, provider, Path(landing.root), day, context.run.run_id, entries=entries)
                context.log.info(
                    f"[{number}/{len(partition_dates)}] {provider.name} {day} ({load.mode}, {load.files_read} files read): {len(load.files)} files, "
                    f"{load.rows_loaded} rows loaded, {load.rows_rejected} rows and {load.files_quarantined} files quarantined"
                )
                partition = day.isoformat()
                context.add_asset_metadata(_partition_metadata(load), partition_key=partition)
                outcome = reconciliation_result(conn, provider, landing.provider_dir(provider.name), [day], entries=entries)
                reconciliation[partition] = (outcome.passed, outcome.metadata)
                outcome = quarantine_rate_result([load])
                quarantine[partition] = (outcome.passed, outcome.metadata)
            preview = _preview(conn, provider, partition_dates)
        yield dg.MaterializeResult(metadata={"preview": dg.MetadataValue.md(preview)})
        yield from partition_check_evaluations(context, dg.AssetCheckKey(key, RECONCILIATION_CHECK), reconciliation)
        yield from partition_check_evaluations(
            context, dg.AssetCheckKey(key, QUARANTINE_CHECK), quarantine, severity=dg.AssetCheckSeverity.WARN
        )

    return bronze_asset


bronze_assets = [build_bronze_asset(provider) for provider in load_registry()]
