"""Delivery freshness: landing folders observed by a sensor, judged by Dagster's freshness checks against each SLA."""

import os
import time
from pathlib import Path

import dagster as dg

from stars_assets.lib.ops.freshness import latest_delivery
from stars_assets.lib.providers import load_registry

PROVIDERS = {p.name: p for p in load_registry()}
HOUR = 3600


def land(folder: Path, name: str, hours_ago: float) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text("x")
    stamp = time.time() - hours_ago * HOUR
    os.utime(folder / name, (stamp, stamp))


def test_the_newest_recognised_file_is_the_latest_delivery(tmp_path):
    dialer = PROVIDERS["dialer"]
    assert latest_delivery(dialer, tmp_path).landed_at is None  # nothing ever landed

    land(tmp_path, "dialer_calls_20261001.csv", hours_ago=60)
    land(tmp_path, "dialer_calls_20261002.csv", hours_ago=40)
    land(tmp_path, "notes.txt", hours_ago=1)  # not a delivery
    latest = latest_delivery(dialer, tmp_path)
    assert latest.newest_file == "dialer_calls_20261002.csv" and latest.files_landed == 2
    assert abs(latest.landed_at - (time.time() - 40 * HOUR)) < 60


def test_observed_folders_pass_or_fail_their_freshness_checks_by_sla(tmp_path, monkeypatch):
    monkeypatch.setenv("STARS_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("STARS_WAREHOUSE", str(tmp_path / "data" / "warehouse.duckdb"))
    landing = tmp_path / "data" / "landing"
    land(landing / "engage", "engage_events_20261001_07.jsonl.gz", hours_ago=1)  # SLA 3 h
    land(landing / "dialer", "dialer_calls_20261001.csv", hours_ago=40)  # SLA 36 h
    from stars_assets.definitions import defs

    definitions = defs()
    sensor = definitions.resolve_sensor_def("observe_landing_folders")
    with dg.instance_for_test() as instance:
        context = dg.build_sensor_context(instance=instance, resources={"landing": definitions.resources["landing"]})
        first = sensor(context)
        assert {e.asset_key.path[-1] for e in first.asset_events} == set(PROVIDERS)
        for observation in first.asset_events:
            instance.report_runless_asset_event(observation)
        # Nothing changed: the next tick records nothing (the folders are re-observed hourly).
        again = sensor(
            dg.build_sensor_context(
                instance=instance, cursor=first.cursor, resources={"landing": definitions.resources["landing"]}
            )
        )
        assert again.asset_events == []

        checks = definitions.resolve_implicit_global_asset_job_def().get_subset(
            asset_check_selection={
                key for check in definitions.asset_checks for key in check.check_keys if key.asset_key.path[0] == "landing"
            }
        )
        result = checks.execute_in_process(instance=instance)
    evaluations = {e.asset_key.path[-1]: e for e in result.get_asset_check_evaluations()}

    assert result.success and set(evaluations) == set(PROVIDERS)
    assert all(e.severity == dg.AssetCheckSeverity.WARN for e in evaluations.values())
    assert evaluations["engage"].passed
    assert not evaluations["dialer"].passed
    assert not evaluations["ihwa"].passed  # nothing landed at all
