"""Resilience with real processes and real files: a run killed inside a silver write, bad inputs
of every kind beside good ones, files still being written, and hostile names in files.

The generator's own faults (every kind in FEEDS.md) are matched row by row in test_bronze.py and
test_silver.py; here are the inputs it does not make.
"""

from __future__ import annotations

import gzip
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from datetime import date, timedelta
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from stars_assets.defs.bronze.assets import bronze_assets
from stars_assets.lib.bronze.load import load_partition
from stars_assets.lib.ops.arrivals import SETTLE_SECONDS, scan_arrivals
from stars_assets.lib.providers import load_registry
from stars_assets_tests.conftest import WORLD_START, generate_world, ingest, query

PROVIDERS = {p.name: p for p in load_registry()}
DAY = date(2026, 10, 1)
YMD = DAY.strftime("%Y%m%d")
DIALER_HEADER = (
    '"Call ID","Member Ref","Campaign","Call Start","Disposition","Duration Sec","Agent Type","Measure","Agent Name"\r\n'
)


def dialer_row(call_id: str, agent_name: str = "Pat Lee") -> str:
    return f'"{call_id}","VR0000000A","FALL","2026-10-01 10:15:00","CONNECTED","95","LIVE","BCS","{agent_name}"\r\n'


def engage_line(event_id: str, **extra) -> str:
    record = {
        "event_id": event_id,
        "member_id": "M100000000",
        "channel": "sms",
        "event": "sent",
        "ts": 1790850000000,
        "campaign_id": "c1",
        "measure": None,
        **extra,
    }
    return json.dumps(record) + "\n"


def land(path: Path, content: bytes | str, age_seconds: float = 120) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
    stamp = time.time() - age_seconds
    os.utime(path, (stamp, stamp))
    return path


def materialize_bronze(landing: Path, warehouse: Path, *providers: str) -> dg.ExecuteInProcessResult:
    assets = [a for a in bronze_assets if a.key.path[1] in providers]
    return ingest(landing, warehouse, DAY, DAY, assets=assets)


# --- a run killed with SIGKILL inside a silver write ----------------------------------------

CHILD = textwrap.dedent("""
    import sys, time
    from datetime import date
    from pathlib import Path
    from stars_assets.lib.silver import inputs
    from stars_assets_tests.conftest import ingest

    landing, warehouse, marker, start, end = sys.argv[1:6]
    record = inputs.record

    def record_then_hang(con, table, day, current, run_id):
        # inputs.record runs inside the transaction that writes a silver partition, after its rows
        record(con, table, day, current, run_id)
        if table == "outreach_events":
            Path(marker).write_text(str(day))
            time.sleep(600)

    inputs.record = record_then_hang
    ingest(Path(landing), Path(warehouse), date.fromisoformat(start), date.fromisoformat(end))
""")

# Everything a silver partition write touches, without the columns that record when it ran.
SILVER_STATE = {
    "outreach_events": "SELECT * EXCLUDE (loaded_at) FROM silver.outreach_events ORDER BY ALL",
    "appointment_events": "SELECT * EXCLUDE (loaded_at) FROM silver.appointment_events ORDER BY ALL",
    "appointments": "SELECT * EXCLUDE (updated_at) FROM silver.appointments ORDER BY ALL",
    # A silver quarantine row keeps its bronze row as delivered (not the time bronze ingested it).
    "quarantine": "SELECT * EXCLUDE (run_id, recorded_at) FROM audit.quarantine ORDER BY ALL",
    "reconciliation": "SELECT * EXCLUDE (run_id, recorded_at) FROM audit.silver_reconciliation ORDER BY ALL",
}


# What the killed transaction was writing: the outreach partition with its quarantine and counts.
OUTREACH_STATE = {
    "outreach_events": SILVER_STATE["outreach_events"],
    "quarantine": "SELECT * EXCLUDE (run_id, recorded_at) FROM audit.quarantine WHERE dataset = 'outreach_events' ORDER BY ALL",
    "reconciliation": "SELECT * EXCLUDE (run_id, recorded_at) FROM audit.silver_reconciliation "
    "WHERE silver_table = 'outreach_events' ORDER BY ALL",
    "inputs": "SELECT * EXCLUDE (run_id, recorded_at) FROM audit.silver_inputs WHERE silver_table = 'outreach_events' ORDER BY ALL",
}


def silver_state(warehouse: Path, statements: dict = SILVER_STATE) -> dict:
    return {name: query(warehouse, sql) for name, sql in statements.items()}


def assert_same(left: dict, right: dict) -> None:
    for name in left:
        assert left[name].equals(right[name]), name


def test_a_run_killed_inside_a_silver_write_keeps_the_committed_state_and_the_next_run_converges(tmp_path):
    landing = generate_world(tmp_path / "landing", WORLD_START, 3)
    first, last = WORLD_START, WORLD_START + timedelta(days=2)
    warehouse = tmp_path / "killed.duckdb"
    assert ingest(landing, warehouse, first, first + timedelta(days=1)).success
    committed = silver_state(warehouse, OUTREACH_STATE)

    marker = tmp_path / "inside_silver_write"
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(landing), str(warehouse), str(marker), first.isoformat(), last.isoformat()],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120
        while not marker.exists():
            assert child.poll() is None, "the run ended before it reached the silver write"
            assert time.monotonic() < deadline, "the run never reached the silver write"
            time.sleep(0.1)
        assert marker.read_text() == last.isoformat()  # the unchanged days were skipped, the new one is being written
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
    assert child.returncode == -signal.SIGKILL

    # The killed transaction left nothing: the outreach partitions are exactly what was committed
    # before (steps of the killed run that finished before it, bronze and appointments, committed).
    assert_same(silver_state(warehouse, OUTREACH_STATE), committed)
    assert (
        query(warehouse, "SELECT count(*) AS n FROM silver.outreach_events WHERE partition_date = $d", {"d": last})["n"][0] == 0
    )

    # The next run converges to what one clean run over the three days writes.
    assert ingest(landing, warehouse, first, last).success
    clean = tmp_path / "clean.duckdb"
    assert ingest(landing, clean, first, last).success
    assert_same(silver_state(warehouse), silver_state(clean))


# --- bad inputs beside good ones -----------------------------------------------------------


def test_bad_files_are_quarantined_with_a_reason_and_the_rest_of_the_partition_loads(tmp_path):
    landing, warehouse = tmp_path / "landing", tmp_path / "warehouse.duckdb"
    dialer, engage = landing / "dialer", landing / "engage"
    long_name = "N" * 100_000
    land(dialer / f"dialer_calls_{YMD}.csv", DIALER_HEADER + dialer_row("C1") + dialer_row("C2"))
    land(dialer / f"dialer_calls_{YMD}_02.csv", b"")  # zero bytes
    land(dialer / f"dialer_calls_{YMD}_03.csv", bytes(range(256)) * 64)  # binary under a vendor's extension
    land(dialer / f"dialer_calls_{YMD}_04.csv", DIALER_HEADER + dialer_row("C4", long_name) + dialer_row("C5"))
    land(
        dialer / f"dialer_calls_{YMD}_05.csv",  # the last field's quote is never closed
        DIALER_HEADER
        + dialer_row("C6")
        + '"C7","VR0000000A","FALL","2026-10-01 10:15:00","CONNECTED","95","LIVE","BCS","Pat\r\n',
    )
    land(
        engage / f"engage_events_{YMD}_00.jsonl.gz",
        gzip.compress((engage_line("e1") + engage_line("e2", note=long_name)).encode()),
    )
    land(engage / f"engage_events_{YMD}_01.jsonl.gz", gzip.compress((engage_line("e3") * 2000).encode())[:-400])  # truncated
    land(engage / f"engage_events_{YMD}_02.jsonl.gz", gzip.compress(("not json\n" + engage_line("e4")).encode()))
    land(engage / f"engage_events_{YMD}_03.jsonl.gz", b"\x00" * 1000)  # binary, not gzip

    result = materialize_bronze(landing, warehouse, "dialer", "engage")
    assert result.success
    manifest = query(
        warehouse,
        "SELECT file_path, status, reason, detail, rows_loaded, rows_rejected FROM audit.file_manifest ORDER BY file_path",
    ).set_index("file_path")
    quarantined = manifest[manifest["status"] == "quarantined"]
    assert dict(quarantined["reason"]) == {
        f"dialer/dialer_calls_{YMD}_02.csv": "empty_file",
        f"dialer/dialer_calls_{YMD}_03.csv": "wrong_encoding",
        f"engage/engage_events_{YMD}_01.jsonl.gz": "truncated_gzip",
        f"engage/engage_events_{YMD}_03.jsonl.gz": "not_gzip",  # binary, not gzip at all: not "truncated"
    }
    assert quarantined["detail"].str.len().gt(0).all(), "every quarantined file says why"

    loaded = manifest[manifest["status"] == "loaded"]
    assert dict(loaded["rows_loaded"]) == {
        f"dialer/dialer_calls_{YMD}.csv": 2,
        f"dialer/dialer_calls_{YMD}_04.csv": 2,
        f"dialer/dialer_calls_{YMD}_05.csv": 1,
        f"engage/engage_events_{YMD}_00.jsonl.gz": 2,
        f"engage/engage_events_{YMD}_02.jsonl.gz": 1,
    }
    # A 100,000-character field is data (lines up to 4 MB are read): kept whole, lineage intact.
    assert query(
        warehouse, "SELECT length(agent_name) AS n, _source_row FROM bronze.dialer WHERE call_id = 'C4'"
    ).values.tolist() == [[100_000, 2]]
    assert query(warehouse, "SELECT length(_extra) AS n FROM bronze.engage WHERE event_id = 'e2'")["n"][0] > 100_000
    rows = query(
        warehouse, "SELECT source_file, source_row, reason FROM audit.quarantine WHERE source_row IS NOT NULL ORDER BY ALL"
    )
    assert rows.values.tolist() == [
        [f"dialer/dialer_calls_{YMD}_05.csv", 3, "malformed_quoting"],
        [f"engage/engage_events_{YMD}_02.jsonl.gz", 1, "malformed_json"],
    ]
    checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    assert checks["check_reconciliation_files"] is True  # every file accounted for, loaded or quarantined

    # Nothing changed: a second run reads nothing and writes nothing.
    again = materialize_bronze(landing, warehouse, "dialer", "engage")
    modes = {
        (e.asset_key.path[1], e.partition): e.materialization.metadata["mode"].value
        for e in again.get_asset_materialization_events()
    }
    assert modes == {("dialer", DAY.isoformat()): "unchanged", ("engage", DAY.isoformat()): "unchanged"}


def test_a_file_still_being_written_waits_until_it_has_settled(tmp_path):
    folder = tmp_path / "dialer"
    path = land(folder / f"dialer_calls_{YMD}.csv", DIALER_HEADER + dialer_row("C1"), age_seconds=0)
    partition_open = lambda day: True  # noqa: E731

    first = scan_arrivals(PROVIDERS["dialer"], folder, None, now=time.time(), partition_is_open=partition_open)
    assert first.arrivals == [] and first.waiting == [path.name]

    with open(path, "a", encoding="utf-8") as handle:  # the upload goes on between two ticks
        handle.write(dialer_row("C2"))
    second = scan_arrivals(PROVIDERS["dialer"], folder, first.cursor, now=time.time(), partition_is_open=partition_open)
    assert second.arrivals == [] and second.waiting == [path.name]

    settled = scan_arrivals(
        PROVIDERS["dialer"], folder, second.cursor, now=time.time() + SETTLE_SECONDS + 1, partition_is_open=partition_open
    )
    assert [[f.name for f in a.files] for a in settled.arrivals] == [[path.name]]
    assert settled.arrivals[0].files[0].size == path.stat().st_size  # the whole file, not a prefix


# --- hostile names in files never reach SQL text ---------------------------------------------

HOSTILE = "x'); DROP TABLE bronze.dialer; --\"; SELECT 1; --"


class RecordingConnection:
    """A DuckDB connection that remembers the SQL text of every statement it runs."""

    def __init__(self, con: duckdb.DuckDBPyConnection):
        self._con = con
        self.statements: list[str] = []

    def execute(self, sql: str, *args, **kwargs):
        self.statements.append(sql)
        return self._con.execute(sql, *args, **kwargs)

    def __getattr__(self, name):
        return getattr(self._con, name)


def test_hostile_header_and_json_key_load_as_data_and_never_reach_sql_text(tmp_path):
    landing = tmp_path / "landing"
    header = DIALER_HEADER.rstrip("\r\n") + ',"' + HOSTILE.replace('"', '""') + '"\r\n'
    land(landing / "dialer" / f"dialer_calls_{YMD}.csv", header + dialer_row("C1").rstrip("\r\n") + ',"payload"\r\n')
    land(
        landing / "engage" / f"engage_events_{YMD}_00.jsonl.gz", gzip.compress(engage_line("e1", **{HOSTILE: "payload"}).encode())
    )

    with duckdb.connect(str(tmp_path / "warehouse.duckdb")) as raw:
        con = RecordingConnection(raw)
        loads = {name: load_partition(con, PROVIDERS[name], landing, DAY, "run-1") for name in ("dialer", "engage")}
        for name, load in loads.items():
            (outcome,) = load.files
            assert outcome.status == "loaded" and outcome.extra_columns == (HOSTILE,), name
        assert not [sql for sql in con.statements if "DROP TABLE bronze" in sql or "SELECT 1; --" in sql]
        for table in ("dialer", "engage"):
            (extra,) = raw.execute(f"SELECT _extra FROM bronze.{table}").fetchone()
            assert json.loads(extra) == {HOSTILE: "payload"}, table
        assert raw.execute("SELECT count(*) FROM bronze.dialer").fetchone()[0] == 1  # still there


@pytest.mark.parametrize("kind", ["format", "mapping", "column"])
def test_a_provider_yaml_with_a_hostile_or_missing_field_is_refused_before_any_sql(tmp_path, kind):
    """The refusal itself is covered field by field in test_providers.py; here: at registry load,
    so no asset, sensor or SQL is ever built from it."""
    from stars_assets.lib.providers import ProviderConfigError
    from stars_assets.lib.providers import load_registry as registry

    shipped = Path(__file__).resolve().parent.parent / "stars_assets" / "providers" / "dialer.yaml"
    text = shipped.read_text()
    edits = {
        "format": ("format: delimited", "format: xlsx"),
        "mapping": ("outreach:\n", "not_outreach:\n"),
        "column": ("{source: Call ID, column: call_id}", "{source: 'Call ID\"; DROP TABLE x; --', column: call_id}"),
    }
    old, new = edits[kind]
    (tmp_path / "dialer.yaml").write_text(text.replace(old, new, 1))
    with pytest.raises(ProviderConfigError) as error:
        registry(tmp_path)
    assert "dialer.yaml" in str(error.value)
    assert {"format": "format", "mapping": "not_outreach", "column": "datasets.0.columns.0.source"}[kind] in str(error.value)
