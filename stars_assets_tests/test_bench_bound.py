"""The bound bench (sim/stars_sim/bench_bound.py) times the least two stored layers against the floor; its
figures mean something only if its least bronze holds the rows the bronze loader holds."""

import gzip
import re

import pytest
from stars_sim import bench_bound

from stars_assets_tests.conftest import WORLD_START


def test_the_bound_bench_writes_the_rows_the_bronze_loader_writes(world, capsys):
    exit_code = bench_bound.main(["--landing", str(world), "--day", WORLD_START.isoformat(), "--files", "3", "--rounds", "1"])
    out = capsys.readouterr().out
    assert exit_code == 0, out
    assert "same rows in the least bronze and the loader's: yes" in out
    rows = re.search(r"round 1: .*; ([\d,]+) rows", out)
    assert rows and int(rows[1].replace(",", "")) > 0, out
    for form in ("floor", "least bronze", "least silver", "bronze loader"):
        assert re.search(rf"^{form} +[\d.]+ s +[\d.]+$", out, re.MULTILINE), form
    assert re.search(r"^least_two_layers_ratio=[\d.]+ loader_vs_least_bronze=[\d.]+$", out, re.MULTILINE), out


def test_the_bound_bench_refuses_a_provider_that_is_not_json_lines(world):
    with pytest.raises(SystemExit) as refused:
        bench_bound.main(["--landing", str(world), "--provider", "dialer"])
    assert refused.value.code == 2


def test_the_bound_bench_says_files_with_a_line_that_is_not_json_are_not_comparable(tmp_path, capsys):
    folder = tmp_path / "landing" / "engage"
    folder.mkdir(parents=True)
    good = '{"event_id": "e1", "member_id": "M1", "channel": "sms", "event": "sent", "ts": "1790000000000"}'
    with gzip.open(folder / f"engage_events_{WORLD_START:%Y%m%d}_00.jsonl.gz", "wt") as delivered:
        delivered.write(f"{good}\n{{not json\n")
    exit_code = bench_bound.main(["--landing", str(tmp_path / "landing"), "--day", WORLD_START.isoformat(), "--rounds", "1"])
    out = capsys.readouterr().out
    assert exit_code == 1
    assert "not comparable: " in out and "use clean files" in out
