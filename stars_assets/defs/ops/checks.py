"""Delivery freshness: each provider's landing folder is an external asset, observed by a sensor and
checked by Dagster's last-update freshness checks against the provider's SLA (delivery_sla_hours).

The folder, not bronze, is what is judged: a backfill re-running old days must not make a silent
vendor look fresh. `observe_landing_folders` reads only file names and times (no warehouse) and
records an observation whose `dagster/last_updated_timestamp` is the newest file's modification
time; it records one when that changes, and at least hourly so the checks never judge a stale
observation. `delivery_freshness_checks` evaluates the checks whenever they can change.
"""

import json
import time
from datetime import timedelta

import dagster as dg

from stars_assets.defs.bronze.assets import landing_key
from stars_assets.defs.resources import LandingZone
from stars_assets.lib.ops.freshness import LatestDelivery, latest_delivery
from stars_assets.lib.providers import load_registry

PROVIDERS = load_registry()
# Re-observe an unchanged folder this often: a freshness check reads an older observation as "unknown".
REOBSERVE_SECONDS = 3600
OBSERVE_INTERVAL_SECONDS = 60

landing_folders = [
    dg.AssetSpec(
        landing_key(provider.name),
        group_name="landing",
        description=f"Files {provider.name} drops into landing/{provider.name}/ ({', '.join(d.file_pattern for d in provider.datasets)}); "
        f"observed, not materialized. Expected at least every {provider.delivery_sla_hours} h.",
        kinds={"file"},
        owners=list(provider.owners),
        metadata={"delivery_sla_hours": provider.delivery_sla_hours},
    )
    for provider in PROVIDERS
]

delivery_freshness_checks = [
    check
    for provider in PROVIDERS
    for check in dg.build_last_update_freshness_checks(
        assets=[landing_key(provider.name)],
        lower_bound_delta=timedelta(hours=provider.delivery_sla_hours),
        severity=dg.AssetCheckSeverity.WARN,
    )
]


def landing_observation(provider_name: str, latest: LatestDelivery) -> dg.AssetObservation:
    metadata = latest.metadata()
    if latest.landed_at is not None:
        metadata["dagster/last_updated_timestamp"] = dg.MetadataValue.timestamp(latest.landed_at)
    return dg.AssetObservation(asset_key=landing_key(provider_name), metadata=metadata)


@dg.sensor(
    name="observe_landing_folders",
    minimum_interval_seconds=OBSERVE_INTERVAL_SECONDS,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Records when each provider's newest landing file arrived (an observation of landing/<provider>), "
    "which the delivery freshness checks judge against the provider's SLA.",
)
def observe_landing_folders(context: dg.SensorEvaluationContext, landing: LandingZone) -> dg.SensorResult:
    seen = json.loads(context.cursor or "{}")  # provider -> [newest file time, when it was last observed]
    now = time.time()
    observations = []
    for provider in PROVIDERS:
        latest = latest_delivery(provider, landing.provider_dir(provider.name))
        landed_at, observed_at = seen.get(provider.name, [None, 0.0])
        if latest.landed_at != landed_at or now - observed_at >= REOBSERVE_SECONDS:
            observations.append(landing_observation(provider.name, latest))
            seen[provider.name] = [latest.landed_at, now]
    return dg.SensorResult(asset_events=observations, cursor=json.dumps(seen, sort_keys=True))


freshness_checks_sensor = dg.build_sensor_for_freshness_checks(
    freshness_checks=delivery_freshness_checks,
    name="delivery_freshness_checks",
    default_status=dg.DefaultSensorStatus.RUNNING,
)
