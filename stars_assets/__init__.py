"""stars_assets: a Dagster code location that turns outreach vendor feeds into CMS Star Rating predictions."""
