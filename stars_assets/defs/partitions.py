"""Partitions shared across layers: delivery date for bronze and silver, week for snapshots."""

import dagster as dg

FIRST_DELIVERY_DATE = "2026-01-01"

# end_offset=1 keeps today's partition open: hourly micro-batches arrive during the day.
daily_partitions = dg.DailyPartitionsDefinition(start_date=FIRST_DELIVERY_DATE, end_offset=1)

# Weekly "as of week end" snapshots; weeks start on Sunday and the snapshot is as of Saturday.
weekly_partitions = dg.WeeklyPartitionsDefinition(start_date="2026-01-04")

# DuckDB admits one writing process per file: every asset that writes the warehouse runs in
# this pool, whose limit (dagster.yaml, concurrency.pools.default_limit) is 1.
WAREHOUSE_POOL = "duckdb_warehouse"
