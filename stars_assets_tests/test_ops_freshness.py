"""Delivery freshness: each provider's latest landed file against the SLA its YAML declares."""

import os
import time
from pathlib import Path

import dagster as dg

from stars_assets.defs.ops.checks import FRESHNESS_CHECK
from stars_assets.lib.ops.freshness import delivery_freshness
from stars_assets.lib.providers import load_registry

PROVIDERS = {p.name: p for p in load_registry()}
HOUR = 3600


def land(folder: Path, name: str, hours_ago: float) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text("x")
    stamp = time.time() - hours_ago * HOUR
    os.utime(folder / name, (stamp, stamp))


def test_the_latest_file_decides_against_the_providers_sla(tmp_path):
    dialer = PROVIDERS["dialer"]  # 36 h
    assert not delivery_freshness(dialer, tmp_path, now=time.time()).passed  # nothing ever landed

    land(tmp_path, "dialer_calls_20261001.csv", hours_ago=60)
    land(tmp_path, "dialer_calls_20261002.csv", hours_ago=40)
    land(tmp_path, "notes.txt", hours_ago=1)  # not a delivery
    late = delivery_freshness(dialer, tmp_path, now=time.time())
    assert not late.passed and late.metadata["last_file"] == "dialer_calls_20261002.csv"
    assert late.metadata["sla_hours"] == 36 and 3.9 < late.metadata["hours_late"] < 4.1

    land(tmp_path, "dialer_calls_20261003.csv", hours_ago=35)
    assert delivery_freshness(dialer, tmp_path, now=time.time()).passed


def test_the_freshness_job_checks_every_bronze_asset(tmp_path, monkeypatch):
    monkeypatch.setenv("STARS_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("STARS_WAREHOUSE", str(tmp_path / "data" / "warehouse.duckdb"))
    landing = tmp_path / "data" / "landing"
    land(landing / "engage", "engage_events_20261001_07.jsonl.gz", hours_ago=1)  # SLA 3 h
    land(landing / "dialer", "dialer_calls_20261001.csv", hours_ago=40)  # SLA 36 h
    from stars_assets.definitions import defs

    (tmp_path / "home").mkdir()
    with dg.instance_for_test(temp_dir=str(tmp_path / "home")) as instance:
        result = defs().resolve_job_def("check_delivery_freshness").execute_in_process(instance=instance)
    evaluations = {e.asset_key.path[-1]: e for e in result.get_asset_check_evaluations()}

    assert result.success and set(evaluations) == set(PROVIDERS)
    assert all(e.check_name == FRESHNESS_CHECK and e.severity == dg.AssetCheckSeverity.WARN for e in evaluations.values())
    assert evaluations["engage"].passed
    assert not evaluations["dialer"].passed and evaluations["dialer"].metadata["hours_late"].value > 3.9
    assert not evaluations["ihwa"].passed  # nothing landed at all
