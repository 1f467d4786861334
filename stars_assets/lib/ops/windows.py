"""Which delivery dates a scheduled tick covers. Partitions are UTC calendar days."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

# Late files land in an old partition; the weekly backfill re-runs this many past days.
LATE_FILE_DAYS = 7

# Run tags Dagster reads: one partition, or a range run in one go (BackfillPolicy.single_run).
PARTITION_TAG = "dagster/partition"
RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"


def _utc_day(moment: datetime) -> date:
    return moment.astimezone(UTC).date()


def previous_day(moment: datetime) -> date:
    """The delivery date that ended most recently before `moment`."""
    return _utc_day(moment) - timedelta(days=1)


def late_file_window(moment: datetime, days: int = LATE_FILE_DAYS) -> tuple[date, date]:
    """The last `days` complete delivery dates before `moment`, first and last."""
    last = previous_day(moment)
    return last - timedelta(days=days - 1), last
