"""Delivery freshness: one check per bronze asset, failing when the provider's files are later than its SLA.

The check looks at the landing folder, not at materializations: a backfill re-running old
days must not make a silent vendor look fresh. It reads files only (no warehouse), so it runs
outside the warehouse pool, hourly, through the check_delivery_freshness job.
"""

import time

import dagster as dg

from stars_assets.defs.bronze.assets import bronze_key
from stars_assets.defs.resources import LandingZone
from stars_assets.lib.ops.freshness import delivery_freshness
from stars_assets.lib.providers import ProviderConfig, load_registry

FRESHNESS_CHECK = "check_freshness_delivery_sla"


def build_delivery_freshness_check(provider: ProviderConfig) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=bronze_key(provider.name),
        name=FRESHNESS_CHECK,
        description=f"Warns when no {provider.name} file has landed in the last {provider.delivery_sla_hours} h (its delivery SLA).",
    )
    def delivery_within_sla(landing: LandingZone) -> dg.AssetCheckResult:
        outcome = delivery_freshness(provider, landing.provider_dir(provider.name), now=time.time())
        return dg.AssetCheckResult(passed=outcome.passed, severity=dg.AssetCheckSeverity.WARN,
                                   description=outcome.description, metadata=outcome.metadata)

    return delivery_within_sla


delivery_freshness_checks = [build_delivery_freshness_check(provider) for provider in load_registry()]

check_delivery_freshness_job = dg.define_asset_job(
    "check_delivery_freshness",
    selection=dg.AssetSelection.checks(*delivery_freshness_checks),
    description="Check every provider's latest landed file against its delivery SLA (delivery_sla_hours in its YAML).",
)

hourly_delivery_freshness = dg.ScheduleDefinition(
    name="hourly_delivery_freshness",
    job=check_delivery_freshness_job,
    cron_schedule="15 * * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.STOPPED,
    description="Every hour: check each provider's deliveries against its SLA; a late provider fails its check and alerts.",
)
