"""stars-lake through its console script, on a real lake written from a real DuckDB file."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
import time
from datetime import UTC, date, datetime
from pathlib import Path

import duckdb
import pytest

from stars_assets.lib import lake

STARS_LAKE = str(Path(sys.executable).parent / "stars-lake")
WEEKS = [date(2026, 10, 31), date(2026, 11, 7)]


@pytest.fixture(scope="module")
def lake_root(tmp_path_factory):
    """gold.campaign_effectiveness published twice (week 2026-11-07 changed in version 1) and silver.outreach_events once."""
    root = tmp_path_factory.mktemp("cli") / "lake"
    with duckdb.connect() as con:
        con.execute("CREATE SCHEMA gold; CREATE SCHEMA silver")
        con.execute(
            "CREATE TABLE gold.campaign_effectiveness AS SELECT * FROM (VALUES "
            "(DATE '2026-10-31', 'SMS', 100), (DATE '2026-10-31', 'IVR', 40), (DATE '2026-11-07', 'SMS', 120)) "
            "AS t(as_of_week_end, channel, attempts)"
        )
        con.execute(
            "CREATE TABLE silver.outreach_events AS SELECT 'member-' || i AS member_id, DATE '2026-11-01' AS partition_date "
            "FROM range(5) AS r(i)"
        )

        def publish_campaign():
            return lake.publish_query(
                con,
                "SELECT * FROM gold.campaign_effectiveness",
                "gold",
                "campaign_effectiveness",
                contains_phi=False,
                partition_column="as_of_week_end",
                partitions=WEEKS,
                root=str(root),
            )

        publish_campaign()
        lake.publish_query(
            con,
            "SELECT * FROM silver.outreach_events",
            "silver",
            "outreach_events",
            contains_phi=True,
            partition_column="partition_date",
            partitions=[date(2026, 11, 1)],
            root=str(root),
        )
        time.sleep(0.05)
        between = datetime.now(UTC)
        time.sleep(0.05)
        con.execute("UPDATE gold.campaign_effectiveness SET attempts = 999 WHERE as_of_week_end = DATE '2026-11-07'")
        publish_campaign()
    return root, between


def run(root, *args) -> subprocess.CompletedProcess:
    return subprocess.run(
        [STARS_LAKE, "--root", str(root), *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "STARS_LAKE_URI": "/nonexistent"},
    )


def test_tables_lists_versions_and_phi(lake_root):
    root, _ = lake_root
    listed = run(root, "tables", "--json")
    assert listed.returncode == 0, listed.stderr
    tables = {t["table"]: t for t in json.loads(listed.stdout)}
    assert set(tables) == {"gold.campaign_effectiveness", "silver.outreach_events"}
    assert (tables["gold.campaign_effectiveness"]["version"], tables["gold.campaign_effectiveness"]["contains_phi"]) == (1, False)
    assert tables["silver.outreach_events"]["contains_phi"] is True


def test_history_shows_each_commit_with_its_partitions(lake_root):
    root, _ = lake_root
    shown = run(root, "history", "gold.campaign_effectiveness", "--json")
    assert shown.returncode == 0, shown.stderr
    history = json.loads(shown.stdout)
    assert [(h["version"], h["partitions"], h["rows_written"]) for h in history] == [
        (1, "2026-11-07", 1),
        (0, "2026-10-31, 2026-11-07", 3),
    ]


def test_read_as_of_a_version_and_a_time_returns_the_earlier_rows(lake_root):
    root, between = lake_root
    for when in (["--version", "0"], ["--as-of", between.isoformat()]):
        read = run(root, "read", "gold.campaign_effectiveness", *when, "--csv")
        assert read.returncode == 0, read.stderr
        rows = list(csv.DictReader(io.StringIO(read.stdout)))
        assert sorted(int(r["attempts"]) for r in rows) == [40, 100, 120], when
    now = json.loads(run(root, "read", "gold.campaign_effectiveness", "--json").stdout)
    assert sorted(r["attempts"] for r in now) == [40, 100, 999]


def test_sql_sees_every_table_as_a_layer_qualified_view_as_of_a_time(lake_root):
    root, between = lake_root
    query = (
        "SELECT sum(attempts) AS attempts, (SELECT count(*) FROM silver.outreach_events) AS events "
        "FROM gold.campaign_effectiveness"
    )
    assert json.loads(run(root, "sql", query, "--json").stdout) == [{"attempts": 1139, "events": 5}]
    earlier = run(root, "sql", query, "--as-of", between.isoformat(), "--json")
    assert earlier.returncode == 0, earlier.stderr
    assert json.loads(earlier.stdout) == [{"attempts": 260, "events": 5}]


def test_errors_exit_2_with_a_message(lake_root):
    root, _ = lake_root
    for args, message in (
        (["read", "gold.nothing"], "no lake table gold.nothing"),
        (["read", "gold.campaign_effectiveness", "--version", "7"], "versions 0..1"),
        (["read", "gold.campaign_effectiveness", "--as-of", "2020-01-01"], "did not exist yet"),
        (["history", "nothing"], "<layer>.<table>"),
        (["sql", "SELECT * FROM gold.nothing"], "query failed"),
    ):
        failed = run(root, *args)
        assert failed.returncode == 2, args
        assert message in failed.stderr, (args, failed.stderr)


def test_vacuum_is_explicit_and_logged(lake_root, tmp_path):
    root, _ = lake_root
    dry = run(root, "vacuum", "gold.campaign_effectiveness", "--older-than", "0", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert (
        "gold.campaign_effectiveness: 1 files would be deleted" in dry.stdout
        and "vacuum gold.campaign_effectiveness" in dry.stderr
    )
    # A dry run deletes nothing: the earlier version still reads.
    assert run(root, "read", "gold.campaign_effectiveness", "--version", "0").returncode == 0


# Reads the lake the way the dashboards and the API do, again and again for half a second, then exits normally.
READ_IN_A_LOOP = """
import sys, time
from stars_assets.lib import lake
started = time.monotonic()
while time.monotonic() - started < 0.5:
    for layer, table in [("gold", "campaign_effectiveness"), ("silver", "outreach_events")]:
        lake.read_table(layer, table, root=sys.argv[1])
"""


def test_a_process_that_read_the_lake_exits_cleanly(lake_root):
    """Read through delta-rs' own file handler, such a process aborted at exit most of the time
    ("terminate called without an active exception", exit status -6 / 134)."""
    root, _ = lake_root
    readers = [
        subprocess.Popen([sys.executable, "-c", READ_IN_A_LOOP, str(root)], stderr=subprocess.PIPE, text=True) for _ in range(8)
    ]
    ended = [(reader.communicate(timeout=120)[1], reader.returncode) for reader in readers]
    assert ended == [("", 0)] * len(readers)
