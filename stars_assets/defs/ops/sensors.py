"""File-arrival sensors, one per provider in the registry: a new file runs its day's bronze and silver."""

import time
from datetime import date

import dagster as dg

from stars_assets.defs.bronze.assets import bronze_key
from stars_assets.defs.partitions import daily_partitions
from stars_assets.defs.resources import LandingZone
from stars_assets.lib.ops.arrivals import scan_arrivals
from stars_assets.lib.providers import ProviderConfig, load_registry

ARRIVAL_INTERVAL_SECONDS = 30


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
    # Arrival runs are small and frequent, and their warehouse steps queue for the one-slot pool
    # anyway: one process per run instead of one per step saves a Python start-up per step.
    arrival_job = dg.define_asset_job(
        f"load_{provider.name}_arrivals",
        selection=arrival_target(provider.name),
        executor_def=dg.in_process_executor,
        description=f"Load newly arrived {provider.name} files of one delivery date into bronze, then the silver built from it.",
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
    def file_arrivals(context: dg.SensorEvaluationContext, landing: LandingZone) -> dg.SensorResult:
        scan = scan_arrivals(provider, landing.provider_dir(provider.name), context.cursor,
                             now=time.time(), partition_is_open=_partition_is_open)
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
