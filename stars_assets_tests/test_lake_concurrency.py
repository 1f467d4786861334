"""Readers never block writers: a 7-day backfill publishes while another process reads the lake in a loop.

The backfill is seven real Dagster runs, one delivery day each (bronze, silver and their publish assets), so the
lake gets a commit per day while the reader runs. The reader records the version it opened and the rows it read;
afterwards every (version, rows) pair must match the table's committed history, and no step may have failed.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from datetime import timedelta

from stars_assets.defs.publish.assets import publish_assets
from stars_assets.lib import lake
from stars_assets_tests.conftest import INGEST_ASSETS, WORLD_START, ingest

BACKFILL_DAYS = 7
TABLES = [("silver", "outreach_events"), ("quality", "quarantine_summary")]
PUBLISHED = [a for a in publish_assets if tuple(next(iter(a.keys)).path[1:]) in TABLES]

READER = textwrap.dedent("""
    import json, os, sys
    from stars_assets.lib import lake
    root, stop, out = sys.argv[1:4]
    tables = [("silver", "outreach_events"), ("quality", "quarantine_summary")]
    with open(out, "w") as log:
        while not os.path.exists(stop):
            for layer, table in tables:
                try:
                    delta = lake.open_table(layer, table, root=root)
                except lake.UnknownTableError:
                    continue  # not published yet
                log.write(json.dumps({"table": table, "version": delta.version(), "rows": lake.arrow_dataset(delta).count_rows()}) + "\\n")
                log.flush()
""")


def test_a_backfill_publishes_while_another_process_reads(world, tmp_path, monkeypatch):
    root = tmp_path / "lake"
    monkeypatch.setenv("STARS_LAKE_URI", str(root))
    stop, reads = tmp_path / "stop", tmp_path / "reads.jsonl"
    reader = subprocess.Popen([sys.executable, "-c", READER, str(root), str(stop), str(reads)], stderr=subprocess.PIPE, text=True)
    try:
        results = [
            ingest(world, tmp_path / "warehouse.duckdb", day, day, assets=[*INGEST_ASSETS, *PUBLISHED])
            for day in (WORLD_START + timedelta(days=n) for n in range(BACKFILL_DAYS))
        ]
    finally:
        stop.touch()
        _, errors = reader.communicate(timeout=120)
    assert reader.returncode == 0, errors
    assert all(r.success for r in results)
    assert not [e for r in results for e in r.all_events if e.is_step_failure]

    observed = [json.loads(line) for line in reads.read_text().splitlines()]
    for layer, table in TABLES:
        rows_at = {
            v: lake.read_table(layer, table, version=v, root=str(root)).num_rows
            for v in range(lake.open_table(layer, table, root=str(root)).version() + 1)
        }
        seen = [o for o in observed if o["table"] == table]
        assert seen, f"the reader never saw {table}"
        assert all(rows_at[o["version"]] == o["rows"] for o in seen), table
    outreach_versions = {o["version"] for o in observed if o["table"] == "outreach_events"}
    assert len(lake.history("silver", "outreach_events", root=str(root))) == BACKFILL_DAYS
    assert len(outreach_versions) > 1  # the reader ran across several commits
