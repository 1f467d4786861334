"""Schedules: which partitions each tick asks for, evaluated against a real Dagster instance."""

from datetime import UTC, datetime

import dagster as dg
import pytest

from stars_assets.defs.partitions import daily_partitions
from stars_assets.lib.ops.windows import RANGE_END_TAG, RANGE_START_TAG, late_file_window, previous_day

SUNDAY_MORNING = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    root = tmp_path_factory.mktemp("schedules")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("STARS_DATA_DIR", str(root / "data"))
        env.setenv("STARS_WAREHOUSE", str(root / "data" / "warehouse.duckdb"))
        from stars_assets.definitions import defs

        with dg.instance_for_test(temp_dir=str(root)) as instance:
            yield defs(), instance


def tick(project, name: str, at: datetime):
    definitions, instance = project
    schedule = definitions.resolve_schedule_def(name)
    context = dg.build_schedule_context(
        instance=instance, scheduled_execution_time=at, repository_def=definitions.get_repository_def()
    )
    return schedule, schedule.evaluate_tick(context)


def test_windows_are_utc_delivery_days():
    assert previous_day(datetime(2026, 3, 1, 0, 30, tzinfo=UTC)).isoformat() == "2026-02-28"
    assert [d.isoformat() for d in late_file_window(SUNDAY_MORNING)] == ["2026-11-15", "2026-11-21"]


def test_daily_schedule_materializes_yesterday_across_providers_and_layers(project):
    schedule, result = tick(project, "daily_ingest_yesterday", datetime(2026, 10, 15, 6, 0, tzinfo=UTC))
    (request,) = result.run_requests
    assert schedule.job_name == "ingest_daily_deliveries"
    assert request.partition_key == "2026-10-14" and request.run_key == "2026-10-14"
    assert schedule.default_status == dg.DefaultScheduleStatus.STOPPED


def test_weekly_schedule_backfills_the_last_seven_days_as_one_range_run(project):
    schedule, result = tick(project, "weekly_late_file_backfill", SUNDAY_MORNING)
    (request,) = result.run_requests
    assert schedule.job_name == "ingest_daily_deliveries"
    assert request.partition_key is None
    assert (request.tags[RANGE_START_TAG], request.tags[RANGE_END_TAG]) == ("2026-11-15", "2026-11-21")
    assert len(daily_partitions.get_partition_keys_in_range(dg.PartitionKeyRange("2026-11-15", "2026-11-21"))) == 7
    assert schedule.default_status == dg.DefaultScheduleStatus.STOPPED


def test_every_asset_of_the_backfilled_job_that_is_partitioned_runs_a_range_in_one_step(project):
    definitions, _ = project
    graph = definitions.resolve_asset_graph()
    partitioned = [
        graph.get(key)
        for key in dg.AssetSelection.groups("bronze", "silver").resolve(graph)
        if graph.get(key).partitions_def is not None
    ]
    assert partitioned and all(node.backfill_policy == dg.BackfillPolicy.single_run() for node in partitioned)
