"""File arrivals: the plain detection function, then the provider sensors against a real Dagster instance."""

import json
import os
import shutil
import time
from datetime import date, timedelta
from pathlib import Path

import dagster as dg
import pytest

from stars_assets.defs.ops.sensors import arrival_target, file_arrival_sensor_name
from stars_assets.defs.resources import build_resources
from stars_assets.lib.ops.arrivals import SETTLE_SECONDS, read_cursor, scan_arrivals
from stars_assets.lib.providers import load_registry

DIALER = next(p for p in load_registry() if p.name == "dialer")
HEADER = '"Call ID","Member Ref","Campaign","Call Start","Disposition","Duration Sec","Agent Type","Measure","Agent Name"\r\n'


def land(folder: Path, name: str, text: str = HEADER, age_seconds: float = 120) -> Path:
    """A file as a finished upload leaves it: written, then last modified `age_seconds` ago."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(text, encoding="utf-8")
    stamp = time.time() - age_seconds
    os.utime(path, (stamp, stamp))
    return path


def scan(folder: Path, cursor: str | None, open_until: date = date(2026, 12, 31)):
    return scan_arrivals(DIALER, folder, cursor, now=time.time(), partition_is_open=lambda day: day <= open_until)


def test_new_files_are_grouped_into_one_run_per_partition(tmp_path):
    land(tmp_path, "dialer_calls_20261001.csv")
    land(
        tmp_path, "dialer_calls_20261001_02.csv", HEADER + '"C2","VR0000000A","","2026-10-01 09:00:00","BUSY","","LIVE","",""\r\n'
    )
    land(tmp_path, "dialer_calls_20261002.csv")
    land(tmp_path, "README.txt", "not a delivery")

    result = scan(tmp_path, None)

    assert [(a.partition_date, [f.name for f in a.files]) for a in result.arrivals] == [
        (date(2026, 10, 1), ["dialer_calls_20261001.csv", "dialer_calls_20261001_02.csv"]),
        (date(2026, 10, 2), ["dialer_calls_20261002.csv"]),
    ]
    assert [a.run_key.split(":")[:2] for a in result.arrivals] == [["dialer", "2026-10-01"], ["dialer", "2026-10-02"]]
    assert sorted(read_cursor(result.cursor)) == [
        "dialer_calls_20261001.csv",
        "dialer_calls_20261001_02.csv",
        "dialer_calls_20261002.csv",
    ]
    assert scan(tmp_path, result.cursor).arrivals == []


def test_identical_redelivery_requests_nothing_but_changed_content_does(tmp_path):
    path = land(tmp_path, "dialer_calls_20261001.csv", age_seconds=600)
    first = scan(tmp_path, None)

    land(tmp_path, path.name, age_seconds=60)  # same bytes again, a newer modification time
    redelivered = scan(tmp_path, first.cursor)
    assert redelivered.arrivals == []
    assert read_cursor(redelivered.cursor)[path.name].modified_ns == path.stat().st_mtime_ns

    land(tmp_path, path.name, HEADER + '"C9","VR0000000B","","2026-10-01 10:00:00","BUSY","","IVR","",""\r\n', age_seconds=30)
    (changed,) = scan(tmp_path, redelivered.cursor).arrivals
    assert changed.partition_date == date(2026, 10, 1) and changed.run_key != first.arrivals[0].run_key


def test_a_late_file_for_an_old_day_runs_that_day_only(tmp_path):
    land(tmp_path, "dialer_calls_20261001.csv")
    land(tmp_path, "dialer_calls_20261005.csv")
    cursor = scan(tmp_path, None).cursor

    land(
        tmp_path, "dialer_calls_20261001_02.csv", HEADER + '"C3","VR0000000C","","2026-10-01 11:00:00","BUSY","","LIVE","",""\r\n'
    )
    (late,) = scan(tmp_path, cursor).arrivals
    assert late.partition_date == date(2026, 10, 1)
    assert [f.name for f in late.files] == ["dialer_calls_20261001_02.csv"]


def test_files_still_uploading_or_for_unopened_days_wait_for_a_later_tick(tmp_path):
    land(tmp_path, "dialer_calls_20261003.csv", age_seconds=SETTLE_SECONDS / 4)
    land(tmp_path, "dialer_calls_20261231.csv")
    result = scan(tmp_path, None, open_until=date(2026, 12, 1))
    assert result.arrivals == [] and result.waiting == ["dialer_calls_20261003.csv", "dialer_calls_20261231.csv"]
    assert read_cursor(result.cursor) == {}

    later = scan_arrivals(DIALER, tmp_path, result.cursor, now=time.time() + SETTLE_SECONDS, partition_is_open=lambda day: True)
    assert [a.partition_date for a in later.arrivals] == [date(2026, 10, 3), date(2026, 12, 31)]


def test_a_missing_folder_keeps_the_cursor(tmp_path):
    land(tmp_path / "dialer", "dialer_calls_20261001.csv")
    cursor = scan(tmp_path / "dialer", None).cursor
    assert scan(tmp_path / "unmounted", cursor).cursor == cursor


@pytest.fixture
def project(tmp_path, monkeypatch):
    monkeypatch.setenv("STARS_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("STARS_WAREHOUSE", str(tmp_path / "data" / "warehouse.duckdb"))
    from stars_assets.definitions import defs

    (tmp_path / "dagster_home").mkdir()
    with dg.instance_for_test(temp_dir=str(tmp_path / "dagster_home")) as instance:
        yield defs(), instance, tmp_path / "data" / "landing"


def evaluate(definitions: dg.Definitions, instance: dg.DagsterInstance, provider: str, cursor: str | None):
    sensor = definitions.resolve_sensor_def(file_arrival_sensor_name(provider))
    repository = definitions.get_repository_def()
    context = dg.build_sensor_context(
        instance=instance, cursor=cursor, repository_def=repository, resources=repository.get_top_level_resources()
    )
    return sensor.evaluate_tick(context)


def test_sensor_requests_bronze_and_its_silver_for_new_partitions_and_keeps_a_cursor(project):
    definitions, instance, landing = project
    land(landing / "dialer", "dialer_calls_20261001.csv")
    land(landing / "dialer", "dialer_calls_20261002.csv")

    tick = evaluate(definitions, instance, "dialer", None)
    assert [r.partition_key for r in tick.run_requests] == ["2026-10-01", "2026-10-02"]
    assert all(r.run_key.startswith(f"dialer:{r.partition_key}:") for r in tick.run_requests)
    job = definitions.resolve_job_def(definitions.resolve_sensor_def(file_arrival_sensor_name("dialer")).job_name)
    assert {"bronze/dialer", "silver/outreach_events"} <= {k.to_user_string() for k in job.asset_layer.selected_asset_keys}
    assert sorted(json.loads(tick.cursor)) == ["dialer_calls_20261001.csv", "dialer_calls_20261002.csv"]

    land(landing / "dialer", "dialer_calls_20261002.csv")  # identical re-delivery
    redelivered = evaluate(definitions, instance, "dialer", tick.cursor)
    assert redelivered.run_requests == []

    land(
        landing / "dialer",
        "dialer_calls_20261001_02.csv",
        HEADER + '"C4","VR0000000D","","2026-10-01 12:00:00","BUSY","","LIVE","",""\r\n',
    )
    late = evaluate(definitions, instance, "dialer", redelivered.cursor)
    assert [r.partition_key for r in late.run_requests] == ["2026-10-01"]
    assert late.run_requests[0].run_key not in {r.run_key for r in tick.run_requests}


def test_every_provider_has_an_arrival_sensor_targeting_its_bronze_asset_and_the_silver_built_from_it(project):
    definitions, _, _ = project
    graph = definitions.resolve_asset_graph()
    for provider in load_registry():
        bronze = dg.AssetKey(["bronze", provider.name])
        silver_children = {key for key in graph.get(bronze).child_keys if graph.get(key).group_name == "silver"}
        targeted = arrival_target(provider.name).resolve(graph)
        assert {bronze} | silver_children <= targeted
        assert all(graph.get(key).group_name == "silver" for key in targeted - {bronze})
        sensor = definitions.resolve_sensor_def(file_arrival_sensor_name(provider.name))
        assert definitions.resolve_job_def(sensor.job_name)  # the target can run as one job
        assert sensor.default_status == dg.DefaultSensorStatus.STOPPED


def test_a_sensor_turned_on_after_a_load_requests_nothing_for_loaded_files(ingested, tmp_path):
    """The world was loaded by a real run; each provider's sensor, turned on afterwards, starts from the
    file manifest: no run for the files already there, one run for a file that arrives after."""
    landing = tmp_path / "landing"
    shutil.copytree(ingested.landing, landing, ignore=shutil.ignore_patterns("_truth"))
    resources = build_resources(warehouse=str(ingested.warehouse), landing=str(landing))
    from stars_assets.definitions import defs

    definitions = defs()
    repository = definitions.get_repository_def()
    with dg.instance_for_test() as instance:
        cursors = {}
        for provider in load_registry():
            sensor = definitions.resolve_sensor_def(file_arrival_sensor_name(provider.name))
            tick = sensor.evaluate_tick(
                dg.build_sensor_context(instance=instance, resources=resources, repository_def=repository)
            )
            assert tick.run_requests == [], provider.name
            cursors[provider.name] = tick.cursor

        new_day = ingested.last_day + timedelta(days=1)
        land(landing / "dialer", f"dialer_calls_{new_day:%Y%m%d}.csv")
        sensor = definitions.resolve_sensor_def(file_arrival_sensor_name("dialer"))
        tick = sensor.evaluate_tick(
            dg.build_sensor_context(instance=instance, cursor=cursors["dialer"], resources=resources, repository_def=repository)
        )
    assert [request.partition_key for request in tick.run_requests] == [new_day.isoformat()]
