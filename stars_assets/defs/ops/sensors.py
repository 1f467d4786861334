"""File-arrival sensors, one per provider in the registry: a new file runs its day's bronze and silver."""

import time
from datetime import date
from pathlib import Path

import dagster as dg
import duckdb as duckdb_lib
from dagster_duckdb import DuckDBResource

from stars_assets.defs.bronze.assets import bronze_key
from stars_assets.defs.partitions import daily_partitions
from stars_assets.defs.publish.assets import with_publishing
from stars_assets.defs.resources import LandingZone
from stars_assets.lib.ops.arrivals import cursor_from_manifest, scan_arrivals
from stars_assets.lib.providers import ProviderConfig, load_registry
from stars_assets.lib.warehouse import table_columns

ARRIVAL_INTERVAL_SECONDS = 30


# The latest manifest record of each of the provider's files, with its modification time in ns.
MANIFEST_FILES_SQL = """
SELECT file_path, size_bytes, CAST(epoch_us(modified_at) AS BIGINT) * 1000, content_hash FROM audit.file_manifest
WHERE provider = $provider AND content_hash IS NOT NULL
QUALIFY row_number() OVER (PARTITION BY file_path ORDER BY loaded_at DESC) = 1
ORDER BY file_path
"""


def manifest_cursor(database: str, provider: str) -> str:
    """The arrival cursor of a sensor turned on for the first time: every file in the manifest counts as seen.
    Read-only, so it never competes with a writing run for longer than the query (a lock error is raised)."""
    if not Path(database).exists():
        return cursor_from_manifest([])
    with duckdb_lib.connect(database, read_only=True) as con:
        manifest = table_columns(con, "audit.file_manifest") is not None
        return cursor_from_manifest(con.execute(MANIFEST_FILES_SQL, {"provider": provider}).fetchall() if manifest else [])


def file_arrival_sensor_name(provider: str) -> str:
    return f"{provider}_file_arrivals"


def _partition_is_open(day: date) -> bool:
    # A file dated past the last open partition (tomorrow's, a typo) waits instead of failing a run.
    return daily_partitions.has_partition_key(day.isoformat())


def arrival_target(provider: str) -> dg.AssetSelection:
    """The provider's bronze asset and the silver assets built directly from it (with the other
    outputs of any silver multi-asset among them, which runs only whole)."""
    bronze = dg.AssetSelection.assets(bronze_key(provider))
    silver = bronze.downstream(depth=1, include_self=False) & dg.AssetSelection.groups("silver")
    return (bronze | silver).required_multi_asset_neighbors()


def build_file_arrival_sensor(provider: ProviderConfig) -> dg.SensorDefinition:
    arrival_job = dg.define_asset_job(
        f"load_{provider.name}_arrivals",
        selection=with_publishing(arrival_target(provider.name)),
        description=f"Load newly arrived {provider.name} files of one delivery date into bronze, then the silver built from it, "
        "and publish what changed to the lake.",
    )

    @dg.sensor(
        name=file_arrival_sensor_name(provider.name),
        job=arrival_job,
        minimum_interval_seconds=ARRIVAL_INTERVAL_SECONDS,
        default_status=dg.DefaultSensorStatus.STOPPED,
        description=(
            f"Watches landing/{provider.name}/ for new or changed files and runs bronze/{provider.name} and the silver "
            "assets built from it for each new file's delivery date (identical re-deliveries are skipped)."
        ),
        tags={"provider": provider.name},
    )
    def file_arrivals(context: dg.SensorEvaluationContext, landing: LandingZone, duckdb: DuckDBResource):
        cursor = context.cursor
        if cursor is None:
            try:
                cursor = manifest_cursor(duckdb.database, provider.name)
            except duckdb_lib.IOException as error:  # a run holds the warehouse: start from the manifest next tick
                return dg.SkipReason(f"the file manifest could not be read yet: {error}")
        scan = scan_arrivals(
            provider, landing.provider_dir(provider.name), cursor, now=time.time(), partition_is_open=_partition_is_open
        )
        for arrival in scan.arrivals:
            context.log.info(f"{arrival.partition_date}: {', '.join(f.name for f in arrival.files)}")
        if scan.waiting:
            context.log.info(f"left for a later tick (still settling or partition not open): {', '.join(scan.waiting)}")
        return dg.SensorResult(
            run_requests=[
                dg.RunRequest(
                    run_key=arrival.run_key,
                    partition_key=arrival.partition_date.isoformat(),
                    tags={"stars/trigger": "file_arrival", "stars/provider": provider.name},
                )
                for arrival in scan.arrivals
            ],
            cursor=scan.cursor,
        )

    return file_arrivals


file_arrival_sensors = [build_file_arrival_sensor(provider) for provider in load_registry()]
