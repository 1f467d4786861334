"""Publishing a small ingested world to the lake through real Dagster runs: per-table checks pass and the lake
holds exactly the warehouse's rows; a second run writes no Delta commit."""

from __future__ import annotations

from datetime import timedelta

import dagster as dg
import duckdb
import pytest

from stars_assets.defs.publish.assets import PUBLISHED_CHECK, publish_assets
from stars_assets.defs.publish.tables import LAKE_TABLES
from stars_assets.lib import lake
from stars_assets_tests.conftest import INGEST_ASSETS, WORLD_DAYS, WORLD_START, ingest

SILVER_PUBLISHED = [a for a in publish_assets if next(iter(a.keys)).path[1] in ("silver", "quality")]


@pytest.fixture(scope="module")
def published(ingested, tmp_path_factory, monkeypatch_module):
    root = tmp_path_factory.mktemp("lake") / "lake"
    monkeypatch_module.setenv("STARS_LAKE_URI", str(root))
    end = WORLD_START + timedelta(days=WORLD_DAYS - 1)
    first = ingest(ingested.landing, ingested.warehouse, WORLD_START, end, assets=[*INGEST_ASSETS, *SILVER_PUBLISHED])
    second = ingest(ingested.landing, ingested.warehouse, WORLD_START, end, assets=[*INGEST_ASSETS, *SILVER_PUBLISHED])
    return root, first, second


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as patch:
        yield patch


def _materializations(result: dg.ExecuteInProcessResult) -> dict[str, dict]:
    return {event.asset_key.to_user_string(): {k: v.value for k, v in event.materialization.metadata.items()}
            for event in result.get_asset_materialization_events() if event.asset_key.path[0] == "publish"}


def test_every_silver_and_quality_table_is_published_with_passing_checks(published):
    root, first, _ = published
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


def test_lake_rows_equal_the_warehouse(published, ingested):
    root, _, _ = published
    with duckdb.connect(str(ingested.warehouse), read_only=True) as con:
        for table in ("outreach_events", "appointment_events", "appointments", "care_gaps", "quarantine"):
            con.register("in_lake", lake.read_table("silver", table, root=str(root)))
            columns = ", ".join(f'"{name}"' for name, *_ in con.execute(f"DESCRIBE silver.{table}").fetchall())
            lake_rows, only_lake, only_warehouse = con.execute(
                f"SELECT (SELECT count(*) FROM in_lake), "
                f"(SELECT count(*) FROM (SELECT {columns} FROM in_lake EXCEPT ALL SELECT {columns} FROM silver.{table})), "
                f"(SELECT count(*) FROM (SELECT {columns} FROM silver.{table} EXCEPT ALL SELECT {columns} FROM in_lake))").fetchall()[0]
            con.unregister("in_lake")
            assert lake_rows > 0 and only_lake == 0 and only_warehouse == 0, table
        summary = lake.read_table("quality", "quarantine_summary", root=str(root)).to_pandas()
        assert summary["rows"].sum() == con.execute("SELECT count(*) FROM audit.quarantine").fetchone()[0]


def test_a_second_run_over_unchanged_partitions_writes_no_commit(published):
    root, first, second = published
    assert second.success
    for key, metadata in _materializations(second).items():
        if key in ("publish/quality/delivery_freshness", "publish/quality/check_outcomes"):
            continue  # evaluated now: they change with time
        assert metadata["committed"] is False, key
        assert metadata["lake_version"] == _materializations(first)[key]["lake_version"], key
    assert all(e.passed for e in second.get_asset_check_evaluations() if e.check_name == PUBLISHED_CHECK)
