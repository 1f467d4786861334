"""Schedules: yesterday's deliveries every morning; every week, the last 7 days again for late files.

The weekly backfill is one run over the partition range (the bronze and silver assets have
BackfillPolicy.single_run), so each asset swaps the seven days in one step. The weekly snapshots
follow by themselves: gold and the model's weekly outputs carry automation conditions
(defs/automation.py) that rebuild the latest week once its silver days have changed.
"""

import functools

import dagster as dg

# The module, not its job objects: names imported here would be discovered a second time.
from stars_assets.defs import jobs
from stars_assets.lib.ops.windows import LATE_FILE_DAYS, RANGE_END_TAG, RANGE_START_TAG, late_file_window, previous_day

# Both schedules run the ingest job on UTC cron times and start stopped.
ingest_schedule = functools.partial(
    dg.schedule, execution_timezone="UTC", job=jobs.ingest_daily_deliveries_job, default_status=dg.DefaultScheduleStatus.STOPPED
)


@ingest_schedule(
    name="daily_ingest_yesterday",
    cron_schedule="0 6 * * *",
    description="Every day at 06:00 UTC: load yesterday's delivery partition of every provider into bronze, then silver.",
)
def daily_ingest_yesterday(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
    day = previous_day(context.scheduled_execution_time).isoformat()
    return dg.RunRequest(run_key=day, partition_key=day, tags={"stars/trigger": "daily_schedule"})


@ingest_schedule(
    name="weekly_late_file_backfill",
    cron_schedule="0 8 * * 0",
    description=(
        f"Every Sunday at 08:00 UTC: re-run the last {LATE_FILE_DAYS} delivery dates (Sunday to Saturday) of every "
        "provider as one run over the partition range, so late files land in their own day; the week's snapshots "
        "then follow through their automation conditions."
    ),
)
def weekly_late_file_backfill(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
    start, end = late_file_window(context.scheduled_execution_time)
    tags = {RANGE_START_TAG: start.isoformat(), RANGE_END_TAG: end.isoformat(), "stars/trigger": "weekly_schedule"}
    return dg.RunRequest(run_key=f"{start}...{end}", tags=tags)
