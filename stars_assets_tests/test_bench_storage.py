"""The storage bench (sim/stars_sim/bench_storage.py) compares bronze's rows kept as a DuckDB table and as
Parquet per delivered file; its figures mean something only if every form holds the same rows."""

import re

from stars_sim import bench_storage

from stars_assets_tests.conftest import WORLD_START


def test_the_storage_bench_finds_the_rows_bronze_loaded_in_every_form(world, capsys):
    exit_code = bench_storage.main(["--landing", str(world), "--day", WORLD_START.isoformat(), "--files", "3"])
    out = capsys.readouterr().out
    assert exit_code == 0, out
    assert "same rows in every form: yes" in out
    loaded = re.search(r"bronze loader: (\d+) files, ([\d,]+) rows", out)
    assert loaded and loaded[1] == "3" and int(loaded[2].replace(",", "")) > 0
    for form in ("table (bronze spec)", "parquet zstd", "parquet snappy"):
        assert re.search(rf"^{re.escape(form)} +[\d.]+ s +[\d.]+ s", out, re.MULTILINE), form
