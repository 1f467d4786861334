"""Jobs named for what they do; schedules, sensors and the demo run these."""

import dagster as dg

from stars_assets.defs.publish.assets import with_publishing

# Each job takes its partitions from the assets it selects.
WEEKLY_MODEL_OUTPUTS = dg.AssetSelection.assets(["model", "contract_predictions"], ["model", "measure_levers"])

ingest_daily_deliveries_job = dg.define_asset_job(
    "ingest_daily_deliveries",
    selection=with_publishing(dg.AssetSelection.groups("bronze", "silver")),
    description="Load each provider's files for the selected delivery dates into bronze, then build silver: dimensions, canonical outreach events, appointments and quarantine.",
)

refresh_cms_reference_and_model_job = dg.define_asset_job(
    "refresh_cms_reference_and_model",
    selection=with_publishing(dg.AssetSelection.groups("cms", "model") - WEEKLY_MODEL_OUTPUTS),
    description="Load CMS's published Star Ratings tables, reproduce the overall ratings, and refit the ordinal Star Rating model.",
)

refresh_weekly_snapshots_job = dg.define_asset_job(
    "refresh_weekly_snapshots",
    selection=with_publishing(dg.AssetSelection.groups("gold") | WEEKLY_MODEL_OUTPUTS),
    description="Rebuild the week's as-of-week-end facts (care-gap closure, campaign effectiveness, contract measure rates) and the contract predictions and measure levers.",
)
