"""Schedules: yesterday's deliveries every morning; every week, the last 7 days again for late files.

The weekly backfill is one run over the partition range (the bronze and silver assets have
BackfillPolicy.single_run), so each asset swaps the seven days in one step. The weekly
snapshots (refresh_weekly_snapshots: gold facts and contract predictions) must read silver
after that run, not beside it, so they are chained on its success by a run-status sensor
rather than requested by the same tick.
"""

import dagster as dg

# The module, not its job objects: names imported here would be discovered a second time.
from stars_assets.defs import jobs
from stars_assets.defs.partitions import weekly_partitions
from stars_assets.lib.ops.windows import LATE_FILE_DAYS, RANGE_END_TAG, RANGE_START_TAG, late_file_window, previous_day

# Set on a weekly backfill whose window is exactly one snapshot week: the week to refresh after it.
SNAPSHOT_WEEK_TAG = "stars/snapshot_week"


@dg.schedule(
    name="daily_ingest_yesterday",
    cron_schedule="0 6 * * *",
    execution_timezone="UTC",
    job=jobs.ingest_daily_deliveries_job,
    default_status=dg.DefaultScheduleStatus.STOPPED,
    description="Every day at 06:00 UTC: load yesterday's delivery partition of every provider into bronze, then silver.",
)
def daily_ingest_yesterday(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
    day = previous_day(context.scheduled_execution_time).isoformat()
    return dg.RunRequest(run_key=day, partition_key=day, tags={"stars/trigger": "daily_schedule"})


@dg.schedule(
    name="weekly_late_file_backfill",
    cron_schedule="0 8 * * 0",
    execution_timezone="UTC",
    job=jobs.ingest_daily_deliveries_job,
    default_status=dg.DefaultScheduleStatus.STOPPED,
    description=(
        f"Every Sunday at 08:00 UTC: re-run the last {LATE_FILE_DAYS} delivery dates (Sunday to Saturday) of every "
        "provider as one run over the partition range, so late files land in their own day; when it succeeds, "
        "weekly_snapshots_after_backfill refreshes that week's snapshots."
    ),
)
def weekly_late_file_backfill(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
    start, end = late_file_window(context.scheduled_execution_time)
    tags = {RANGE_START_TAG: start.isoformat(), RANGE_END_TAG: end.isoformat(), "stars/trigger": "weekly_schedule"}
    if weekly_partitions.has_partition_key(start.isoformat()):
        tags[SNAPSHOT_WEEK_TAG] = start.isoformat()
    return dg.RunRequest(run_key=f"{start}...{end}", tags=tags)


@dg.run_status_sensor(
    name="weekly_snapshots_after_backfill",
    run_status=dg.DagsterRunStatus.SUCCESS,
    monitored_jobs=[jobs.ingest_daily_deliveries_job],
    request_job=jobs.refresh_weekly_snapshots_job,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="After a successful weekly late-file backfill, refresh that week's snapshots (refresh_weekly_snapshots).",
)
def weekly_snapshots_after_backfill(context: dg.RunStatusSensorContext):
    week = context.dagster_run.tags.get(SNAPSHOT_WEEK_TAG)
    if week is None:
        return dg.SkipReason("not a weekly late-file backfill")
    return dg.RunRequest(run_key=f"{week}:{context.dagster_run.run_id}", partition_key=week,
                         tags={"stars/trigger": "weekly_schedule"})
