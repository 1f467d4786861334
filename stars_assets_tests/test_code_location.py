"""The code location through Dagster's own command line: it validates, and a seventh vendor of a
known format is onboarded with nothing but a YAML file."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb

from stars_assets_tests.conftest import WORLD_START

PROJECT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def _env(tmp_path: Path, **extra: str) -> dict:
    home = tmp_path / "dagster_home"
    home.mkdir(exist_ok=True)
    shutil.copy(PROJECT / "dagster.yaml", home / "dagster.yaml")
    return {**os.environ, "DAGSTER_HOME": str(home), "STARS_DATA_DIR": str(tmp_path / "data"), **extra}


def test_definitions_validate(tmp_path):
    result = subprocess.run(
        [str(BIN / "dagster"), "definitions", "validate", "-w", "workspace.yaml"],
        cwd=PROJECT,
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "stars_assets" in result.stdout + result.stderr


def test_dg_check_defs(tmp_path):
    result = subprocess.run(
        [str(BIN / "dg"), "check", "defs"], cwd=PROJECT, env=_env(tmp_path), capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout + result.stderr


SEVENTH_VENDOR = """
name: callwave
description: A second call-center vendor that sends the same CSV layout as the dialer.
kind: outreach
format: delimited
delimiter: ","
quote: '"'
identifier_type: vendor_ref
delivery_sla_hours: 36
datasets:
  - name: callwave
    file_pattern: "callwave_{date}.csv"
    columns:
      - {source: Call ID, column: call_id}
      - {source: Member Ref, column: member_ref}
      - {source: Call Start, column: call_start}
      - {source: Disposition, column: disposition}
      - {source: Agent Type, column: agent_type}
      - {source: Measure, column: measure, required: false}
outreach:
  dataset: callwave
  event_key: "{call_id}"
  member_ref: member_ref
  channel: {column: agent_type, codes: {LIVE: LIVE_CALL, IVR: IVR}}
  event_type:
    column: disposition
    codes: {CONNECTED: REACHED, LEFT_VM: DELIVERED, NO_ANSWER: ATTEMPTED, BUSY: ATTEMPTED, WRONG_NUMBER: FAILED, REFUSED: OPTED_OUT}
  event_ts: {columns: [call_start], format: "%Y-%m-%d %H:%M:%S", timezone: America/New_York}
  measure_codes: measure
"""


def test_a_seventh_vendor_needs_only_a_yaml_file(world, tmp_path):
    providers = tmp_path / "providers"
    shutil.copytree(PROJECT / "stars_assets" / "providers", providers)
    (providers / "callwave.yaml").write_text(SEVENTH_VENDOR)
    day = WORLD_START.strftime("%Y%m%d")
    landing = tmp_path / "data" / "landing"
    (landing / "callwave").mkdir(parents=True)
    source = world / "dialer" / f"dialer_calls_{day}.csv"
    shutil.copy(source, landing / "callwave" / f"callwave_{day}.csv")
    env = _env(tmp_path, STARS_PROVIDERS_DIR=str(providers))

    listed = subprocess.run(
        [str(BIN / "dagster"), "asset", "list", "-m", "stars_assets.definitions"],
        cwd=PROJECT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert "bronze/callwave" in listed.stdout, listed.stdout + listed.stderr

    run = subprocess.run(
        [
            str(BIN / "dagster"),
            "asset",
            "materialize",
            "-m",
            "stars_assets.definitions",
            "--select",
            "bronze/callwave",
            "--partition",
            WORLD_START.isoformat(),
        ],
        cwd=PROJECT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]

    with duckdb.connect(str(tmp_path / "data" / "warehouse.duckdb"), read_only=True) as con:
        loaded = con.execute("SELECT count(*), count(DISTINCT call_id) FROM bronze.callwave").fetchone()
        rejected = con.execute("SELECT count(*) FROM audit.quarantine WHERE provider = 'callwave'").fetchone()[0]
    data_lines = len(source.read_text(encoding="utf-8-sig").strip().splitlines()) - 1
    assert loaded[0] > 0 and loaded[0] + rejected == data_lines


def test_partitions_start_where_the_deliveries_do(tmp_path):
    """The demo's world starts months into the measurement year; its partitions start with it, not on 1 January."""
    script = (
        "from stars_assets.definitions import defs\n"
        "job = defs().resolve_job_def('ingest_daily_deliveries')\n"
        "weekly = defs().resolve_job_def('refresh_weekly_snapshots')\n"
        "print(job.partitions_def.get_first_partition_key(), weekly.partitions_def.get_first_partition_key())\n"
    )

    def first_keys(**extra: str) -> list[str]:
        result = subprocess.run(
            [sys.executable, "-c", script], cwd=PROJECT, env=_env(tmp_path, **extra), capture_output=True, text=True, timeout=300
        )
        assert result.returncode == 0, result.stderr
        return result.stdout.split()

    assert first_keys(STARS_FIRST_DELIVERY_DATE="2026-08-05") == [
        "2026-08-05",
        "2026-08-02",
    ]  # a Wednesday, in the week of Sunday 2 August
    assert first_keys(STARS_FIRST_DELIVERY_DATE="") == ["2026-01-01", "2025-12-28"]  # the measurement year's first day
