"""The lake library on real Delta tables written from a real DuckDB file; the warehouse lock wait against a real process."""

from __future__ import annotations

import subprocess
import sys
import time
from datetime import UTC, date, datetime

import duckdb
import pyarrow.compute as pc
import pytest
from deltalake import write_deltalake

from stars_assets.lib import lake
from stars_assets.lib.tables import Column, TableSpec
from stars_assets.lib.warehouse import connect_waiting_for_lock, duckdb_setting, ensure_tables, table_columns

DAYS = [date(2026, 10, 27), date(2026, 10, 28), date(2026, 10, 29)]
SOURCE = "SELECT * FROM silver.events"


@pytest.fixture
def warehouse(tmp_path):
    with duckdb.connect(str(tmp_path / "warehouse.duckdb")) as con:
        con.execute("CREATE SCHEMA silver")
        con.execute(
            "CREATE TABLE silver.events AS SELECT DATE '2026-10-27' + (i % 3)::INTEGER AS partition_date, i AS event_no, "
            "'member-' || i AS member_id, [i, i + 1] AS codes, TIMESTAMP '2026-10-27 08:00' + to_minutes(i) AS event_ts "
            "FROM range(30) AS r(i)"
        )
        yield con


def _publish(con, root, days=DAYS):
    return lake.publish_query(
        con, SOURCE, "silver", "events", contains_phi=True, partition_column="partition_date", partitions=days, root=str(root)
    )


def _rows_by_day(table) -> dict[str, int]:
    counts = {}
    for day in table.column("partition_date").to_pylist():
        counts[str(day)] = counts.get(str(day), 0) + 1
    return counts


def test_replacing_partitions_is_one_commit_touching_only_them(warehouse, tmp_path):
    first = _publish(warehouse, tmp_path / "lake")
    assert first.committed and first.version == 0 and first.rows == {"2026-10-27": 10, "2026-10-28": 10, "2026-10-29": 10}
    warehouse.execute("DELETE FROM silver.events WHERE partition_date = DATE '2026-10-28' AND event_no > 20")
    warehouse.execute("UPDATE silver.events SET member_id = 'changed' WHERE partition_date = DATE '2026-10-29'")
    second = _publish(warehouse, tmp_path / "lake")
    assert second.committed and second.version == 1
    assert second.partitions_written == ["2026-10-28", "2026-10-29"] and second.partitions_unchanged == ["2026-10-27"]
    history = lake.history("silver", "events", root=str(tmp_path / "lake"))
    assert [h["version"] for h in history] == [1, 0]
    assert history[0]["partitions"] == ["2026-10-28", "2026-10-29"] and history[0]["rows"] == 7 + 10
    now = lake.read_table("silver", "events", root=str(tmp_path / "lake"))
    assert _rows_by_day(now) == {"2026-10-27": 10, "2026-10-28": 7, "2026-10-29": 10}
    assert set(now.filter(pc.equal(now.column("partition_date"), DAYS[2])).column("member_id").to_pylist()) == {"changed"}


def test_rows_streamed_in_many_small_batches_of_mixed_days_are_written_once_in_one_commit(warehouse, tmp_path, monkeypatch):
    # The rows reach delta-rs in small Arrow batches (publish.BATCH_ROWS); here each batch holds rows of several days.
    monkeypatch.setattr(lake.publish, "BATCH_ROWS", 4)
    result = _publish(warehouse, tmp_path / "lake")
    assert result.committed and result.version == 0
    written = lake.read_table("silver", "events", root=str(tmp_path / "lake"))
    expected = warehouse.execute("SELECT partition_date, event_no FROM silver.events ORDER BY event_no").fetchall()
    assert (
        sorted(
            zip(written.column("partition_date").to_pylist(), written.column("event_no").to_pylist(), strict=True),
            key=lambda r: r[1],
        )
        == expected
    )
    assert lake.history("silver", "events", root=str(tmp_path / "lake"))[0]["rows"] == 30


def test_reading_the_lake_back_finds_the_partition_that_differs_and_leaves_duckdb_as_it_was(warehouse, tmp_path):
    # The published check (defs/publish/assets.py) compares these fingerprints with the warehouse's; the publish
    # hands rows over on fewer DuckDB threads (publish.HANDOVER_THREADS) and must give the connection its own back.
    warehouse.execute("SET threads = 3")
    result = _publish(warehouse, tmp_path / "lake")
    assert warehouse.execute("SELECT current_setting('threads')").fetchone()[0] == 3
    requested = DAYS[:2]  # the read-back reads only the requested days (a filtered Arrow scan)
    table = lake.open_table("silver", "events", root=str(tmp_path / "lake"))
    read_back = lake.publish.lake_fingerprints(warehouse, SOURCE, table, partition_column="partition_date", partitions=requested)
    assert read_back == {str(d): (10, result.fingerprints[str(d)]) for d in requested}
    # A row changed in the lake behind the warehouse's back: one partition differs, the other still agrees.
    changed = lake.read_table("silver", "events", root=str(tmp_path / "lake")).filter(
        pc.equal(pc.field("partition_date"), DAYS[1])
    )
    changed = changed.set_column(
        changed.schema.get_field_index("member_id"), "member_id", pc.utf8_upper(changed.column("member_id"))
    )
    write_deltalake(table, changed, mode="overwrite", predicate=f"partition_date = '{DAYS[1]}'")
    after = lake.publish.lake_fingerprints(
        warehouse,
        SOURCE,
        lake.open_table("silver", "events", root=str(tmp_path / "lake")),
        partition_column="partition_date",
        partitions=requested,
    )
    assert after[str(DAYS[0])] == read_back[str(DAYS[0])]
    assert after[str(DAYS[1])][0] == 10 and after[str(DAYS[1])][1] != read_back[str(DAYS[1])][1]


def test_a_partition_outside_the_request_is_left_alone(warehouse, tmp_path):
    _publish(warehouse, tmp_path / "lake")
    warehouse.execute("DELETE FROM silver.events WHERE partition_date = DATE '2026-10-27'")
    result = _publish(warehouse, tmp_path / "lake", days=[DAYS[1]])
    assert not result.committed
    assert _rows_by_day(lake.read_table("silver", "events", root=str(tmp_path / "lake")))["2026-10-27"] == 10


def test_no_change_writes_no_commit(warehouse, tmp_path):
    _publish(warehouse, tmp_path / "lake")
    again = _publish(warehouse, tmp_path / "lake")
    assert not again.committed and again.version == 0 and again.partitions_unchanged == [str(d) for d in DAYS]
    assert len(lake.history("silver", "events", root=str(tmp_path / "lake"))) == 1


def test_an_added_nullable_column_is_merged(warehouse, tmp_path):
    _publish(warehouse, tmp_path / "lake")
    warehouse.execute("ALTER TABLE silver.events ADD COLUMN channel VARCHAR")
    warehouse.execute("UPDATE silver.events SET channel = 'SMS' WHERE partition_date = DATE '2026-10-29'")
    result = _publish(warehouse, tmp_path / "lake", days=[DAYS[2]])
    assert result.committed and result.columns_added == ["channel"]
    table = lake.read_table("silver", "events", root=str(tmp_path / "lake"))
    channels = dict(zip(table.column("event_no").to_pylist(), table.column("channel").to_pylist()))
    assert channels[2] == "SMS" and channels[0] is None  # 2026-10-29 republished; 2026-10-27 kept, null in the new column


@pytest.mark.parametrize(
    "change, column",
    [
        ("ALTER TABLE silver.events ALTER COLUMN event_no TYPE VARCHAR", "event_no"),
        ("ALTER TABLE silver.events DROP COLUMN member_id", "member_id"),
    ],
)
def test_an_incompatible_change_fails_naming_the_column(warehouse, tmp_path, change, column):
    _publish(warehouse, tmp_path / "lake")
    warehouse.execute(change)
    with pytest.raises(lake.IncompatibleSchemaError, match=f"column '{column}'"):
        _publish(warehouse, tmp_path / "lake")
    assert len(lake.history("silver", "events", root=str(tmp_path / "lake"))) == 1


def test_time_travel_by_version_and_by_timestamp(warehouse, tmp_path):
    root = str(tmp_path / "lake")
    _publish(warehouse, tmp_path / "lake")
    time.sleep(0.05)  # commits a few milliseconds apart: the moment between them is unambiguous
    between = datetime.now(UTC)
    time.sleep(0.05)
    warehouse.execute("UPDATE silver.events SET member_id = 'later' WHERE partition_date = DATE '2026-10-28'")
    _publish(warehouse, tmp_path / "lake")
    earlier = {
        "member-1",
        "member-4",
        "member-7",
        "member-10",
        "member-13",
        "member-16",
        "member-19",
        "member-22",
        "member-25",
        "member-28",
    }

    def day_two_members(table):
        return set(table.filter(pc.equal(table.column("partition_date"), DAYS[1])).column("member_id").to_pylist())

    assert day_two_members(lake.read_table("silver", "events", root=root)) == {"later"}
    assert day_two_members(lake.read_table("silver", "events", version=0, root=root)) == earlier
    assert day_two_members(lake.read_table("silver", "events", as_of=between, root=root)) == earlier
    assert day_two_members(lake.read_table("silver", "events", as_of=between.isoformat(), root=root)) == earlier
    with pytest.raises(lake.UnknownVersionError):
        lake.read_table("silver", "events", version=5, root=root)
    with pytest.raises(lake.UnknownVersionError, match="did not exist yet"):
        lake.read_table("silver", "events", as_of="2020-01-01", root=root)
    with pytest.raises(lake.UnknownTableError):
        lake.read_table("silver", "nothing", root=root)


def test_tables_are_listed_and_described(warehouse, tmp_path):
    root = str(tmp_path / "lake")
    _publish(warehouse, tmp_path / "lake")
    lake.publish_query(warehouse, "SELECT count(*) AS events FROM silver.events", "gold", "totals", contains_phi=False, root=root)
    assert lake.list_tables(root) == [("gold", "totals"), ("silver", "events")]
    events, totals = lake.describe_table("silver", "events", root), lake.describe_table("gold", "totals", root)
    assert (events.contains_phi, events.rows, events.partition_columns) == (True, 30, ["partition_date"])
    assert (totals.contains_phi, totals.rows, totals.partition_columns) == (False, 1, [])


def _hold_lock(database: str) -> subprocess.Popen:
    """Another process holding the DuckDB file open until a line arrives on its standard input."""
    return subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import duckdb, sys; c = duckdb.connect({database!r}); print('open', flush=True); sys.stdin.readline()",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )


def test_a_locked_warehouse_is_waited_for_naming_the_holder(tmp_path):
    database = str(tmp_path / "warehouse.duckdb")
    holder = _hold_lock(database)
    try:
        assert holder.stdout.readline().strip() == "open"
        waits = []

        def release_after_first_wait(seconds):
            if len(waits) == 1:
                holder.stdin.write("\n")
                holder.stdin.flush()
                holder.wait(timeout=30)

        connection = connect_waiting_for_lock(database, on_wait=waits.append, sleep=release_after_first_wait)
        connection.close()
        assert waits and f"PID {holder.pid}" in waits[0]
    finally:
        holder.kill()


def test_a_lock_held_past_the_bound_fails(tmp_path):
    database = str(tmp_path / "warehouse.duckdb")
    holder = _hold_lock(database)
    try:
        assert holder.stdout.readline().strip() == "open"
        waits = []
        with pytest.raises(duckdb.IOException, match="lock"):
            connect_waiting_for_lock(database, max_wait_seconds=0.2, on_wait=waits.append)
        assert waits and all(f"PID {holder.pid}" in w for w in waits)
    finally:
        holder.kill()


def test_table_columns_names_a_tables_columns_and_nothing_for_what_is_missing(warehouse):
    assert table_columns(warehouse, "silver.events") == ["partition_date", "event_no", "member_id", "codes", "event_ts"]
    assert table_columns(warehouse, "silver.absent") is None
    assert table_columns(warehouse, "nowhere.events") is None


def test_ensure_tables_creates_what_is_missing_and_adds_a_column_declared_later(warehouse):
    first = TableSpec("audit.notes", "notes", (Column("note_id", "BIGINT"),))
    later = TableSpec("audit.notes", "notes", (Column("note_id", "BIGINT"), Column("author", "VARCHAR")))
    ensure_tables(warehouse, first)
    warehouse.execute("INSERT INTO audit.notes VALUES (1)")
    ensure_tables(warehouse, later, first)
    assert table_columns(warehouse, "audit.notes") == ["note_id", "author"]
    assert warehouse.execute("SELECT note_id, author FROM audit.notes").fetchall() == [(1, None)]
    ensure_tables(warehouse, later)  # everything there already: nothing to do
    assert warehouse.execute("SELECT count(*) FROM audit.notes").fetchone()[0] == 1


def test_vacuum_removes_old_files_and_publishing_still_recognizes_unchanged_rows(warehouse, tmp_path):
    root = str(tmp_path / "lake")
    _publish(warehouse, tmp_path / "lake")
    warehouse.execute("UPDATE silver.events SET member_id = 'later' WHERE partition_date = DATE '2026-10-28'")
    _publish(warehouse, tmp_path / "lake")
    assert lake.vacuum("silver", "events", older_than_days=0, dry_run=True, root=root)  # a dry run deletes nothing
    assert lake.read_table("silver", "events", version=0, root=root).num_rows == 30
    removed = lake.vacuum("silver", "events", older_than_days=0, root=root)
    assert len(removed) == 1  # the 2026-10-28 file version 1 replaced
    assert not _publish(warehouse, tmp_path / "lake").committed
    assert lake.read_table("silver", "events", root=root).num_rows == 30


def test_a_duckdb_setting_holds_inside_its_block_and_is_restored_after_even_in_a_failed_transaction(warehouse):
    warehouse.execute("SET threads = 3")
    with duckdb_setting(warehouse, "threads", 1):
        assert warehouse.execute("SELECT current_setting('threads')").fetchone()[0] == 1
    assert warehouse.execute("SELECT current_setting('threads')").fetchone()[0] == 3
    # A statement that fails inside a transaction aborts it: the restore must not hide that error, nor be skipped.
    warehouse.execute("BEGIN TRANSACTION")
    with pytest.raises(duckdb.ConversionException), duckdb_setting(warehouse, "disabled_optimizers", "build_side_probe_side"):
        assert warehouse.execute("SELECT current_setting('disabled_optimizers')").fetchone()[0] == "build_side_probe_side"
        warehouse.execute("SELECT CAST('not a number' AS INTEGER)")
    warehouse.execute("ROLLBACK")
    assert warehouse.execute("SELECT current_setting('disabled_optimizers')").fetchone()[0] == ""
    with pytest.raises(ValueError, match="not a setting of the DuckDB instance"), duckdb_setting(warehouse, "no_such_setting", 1):
        pass
