"""Publishing a small ingested world to the lake through real Dagster runs: per-table checks pass and the lake
holds exactly the warehouse's rows; a second run writes no Delta commit; a changed partition is a new version while
the earlier version still reads."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import dagster as dg
import duckdb
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from stars_assets.defs.publish.assets import PUBLISHED_CHECK, publish_assets
from stars_assets.defs.publish.tables import LAKE_TABLES
from stars_assets.lib import lake
from stars_assets_tests.conftest import WORLD_DAYS, WORLD_START, ingest

SILVER_PUBLISHED = [a for a in publish_assets if next(iter(a.keys)).path[1] in ("silver", "quality")]


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as patch:
        yield patch


@pytest.fixture(scope="module")
def published(ingested, tmp_path_factory, monkeypatch_module):
    """The silver and quality tables published twice from a copy of the ingested world's warehouse."""
    folder = tmp_path_factory.mktemp("lake")
    warehouse = folder / "warehouse.duckdb"
    for suffix in ("", ".wal"):
        if Path(f"{ingested.warehouse}{suffix}").exists():
            shutil.copy(f"{ingested.warehouse}{suffix}", f"{warehouse}{suffix}")
    monkeypatch_module.setenv("STARS_LAKE_URI", str(folder / "lake"))
    end = WORLD_START + timedelta(days=WORLD_DAYS - 1)
    first = ingest(ingested.landing, warehouse, WORLD_START, end, assets=SILVER_PUBLISHED)
    second = ingest(ingested.landing, warehouse, WORLD_START, end, assets=SILVER_PUBLISHED)
    return Published(folder / "lake", ingested.landing, warehouse, first, second)


@dataclass(frozen=True)
class Published:
    root: Path
    landing: Path
    warehouse: Path
    first: dg.ExecuteInProcessResult
    second: dg.ExecuteInProcessResult


def _materializations(result: dg.ExecuteInProcessResult) -> dict[str, dict]:
    return {
        event.asset_key.to_user_string(): {k: v.value for k, v in event.materialization.metadata.items()}
        for event in result.get_asset_materialization_events()
        if event.asset_key.path[0] == "publish"
    }


def test_every_silver_and_quality_table_is_published_with_passing_checks(published):
    root, first = published.root, published.first
    assert first.success
    checks = [e for e in first.get_asset_check_evaluations() if e.check_name == PUBLISHED_CHECK]
    expected = {spec.key for spec in LAKE_TABLES if spec.layer in ("silver", "quality")}
    assert {e.asset_key for e in checks} == expected
    assert all(e.passed for e in checks), [e.asset_key for e in checks if not e.passed]
    assert set(lake.list_tables(str(root))) == {(spec.layer, spec.table) for spec in LAKE_TABLES if spec.key in expected}
    metadata = _materializations(first)
    outreach = metadata["publish/silver/outreach_events"]
    assert outreach["contains_phi"] is True and metadata["publish/quality/quarantine_summary"]["contains_phi"] is False
    assert len(outreach["partitions_written"]) == WORLD_DAYS
    assert outreach["table_uri"] == lake.table_uri("silver", "outreach_events", str(root))


def test_lake_rows_equal_the_warehouse(published):
    root = published.root
    with duckdb.connect(str(published.warehouse), read_only=True) as con:
        for table in ("outreach_events", "appointment_events", "appointments", "care_gaps", "quarantine"):
            con.register("in_lake", lake.read_table("silver", table, root=str(root)))
            columns = ", ".join(f'"{name}"' for name, *_ in con.execute(f"DESCRIBE silver.{table}").fetchall())
            lake_rows, only_lake, only_warehouse = con.execute(
                f"SELECT (SELECT count(*) FROM in_lake), "
                f"(SELECT count(*) FROM (SELECT {columns} FROM in_lake EXCEPT ALL SELECT {columns} FROM silver.{table})), "
                f"(SELECT count(*) FROM (SELECT {columns} FROM silver.{table} EXCEPT ALL SELECT {columns} FROM in_lake))"
            ).fetchall()[0]
            con.unregister("in_lake")
            assert lake_rows > 0 and only_lake == 0 and only_warehouse == 0, table
        summary = lake.read_table("quality", "quarantine_summary", root=str(root)).to_pandas()
        assert summary["rows"].sum() == con.execute("SELECT count(*) FROM audit.quarantine").fetchone()[0]


def test_a_second_run_over_unchanged_partitions_writes_no_commit(published):
    first, second = published.first, published.second
    assert second.success
    for key, metadata in _materializations(second).items():
        if key in ("publish/quality/delivery_freshness", "publish/quality/check_outcomes"):
            continue  # evaluated now: they change with time
        assert metadata["committed"] is False, key
        assert metadata["lake_version"] == _materializations(first)[key]["lake_version"], key
    assert all(e.passed for e in second.get_asset_check_evaluations() if e.check_name == PUBLISHED_CHECK)


def test_changing_a_partition_publishes_a_new_version_and_the_earlier_one_still_reads(published):
    day = WORLD_START + timedelta(days=3)
    before = lake.open_table("silver", "outreach_events", root=str(published.root))
    with duckdb.connect(str(published.warehouse)) as con:
        changed = con.execute(
            "UPDATE silver.outreach_events SET channel = 'MAIL' WHERE partition_date = $day AND channel <> 'MAIL'", {"day": day}
        ).fetchall()[0][0]
    assert changed > 0
    outreach = next(a for a in SILVER_PUBLISHED if next(iter(a.keys)).path[1:] == ["silver", "outreach_events"])
    result = ingest(published.landing, published.warehouse, day, day, assets=[outreach])
    assert result.success
    metadata = _materializations(result)["publish/silver/outreach_events"]
    assert metadata["committed"] is True and metadata["partitions_written"] == [day.isoformat()]
    assert metadata["lake_version"] == before.version() + 1

    def channels_on_day(table):
        return set(table.filter(pc.equal(table.column("partition_date"), day)).column("channel").to_pylist())

    assert channels_on_day(lake.read_table("silver", "outreach_events", root=str(published.root))) == {"MAIL"}
    earlier = lake.read_table("silver", "outreach_events", version=before.version(), root=str(published.root))
    assert len(channels_on_day(earlier)) > 1 and earlier.num_rows == lake.arrow_dataset(before).count_rows()


def test_columns_of_unique_values_are_written_without_a_dictionary(published):
    """A Parquet dictionary only fills and is abandoned on a column whose every value differs: the lake writes the
    columns the table spec declares unique (event_id, event_key, record_hash) without one, and the others with one."""
    encodings: dict[str, set[str]] = {}
    for path in (published.root / "silver" / "outreach_events").rglob("*.parquet"):
        metadata = pq.ParquetFile(path).metadata
        for group in range(metadata.num_row_groups):
            for index in range(metadata.num_columns):
                chunk = metadata.row_group(group).column(index)
                encodings.setdefault(chunk.path_in_schema, set()).add("dictionary" if chunk.has_dictionary_page else "plain")
    assert {"event_id", "event_key", "record_hash", "channel", "member_id"} <= set(encodings)
    assert all(encodings[c] == {"plain"} for c in ("event_id", "event_key", "record_hash")), encodings
    assert encodings["channel"] == {"dictionary"} and encodings["member_id"] == {"dictionary"}, encodings
