"""Declarative automation: a new silver partition brings the latest week's gold up to date, nothing else does."""

from datetime import UTC, date, datetime

import dagster as dg
import pytest

from stars_assets.defs.gold.assets import campaign_effectiveness, care_gap_closure
from stars_assets.defs.resources import build_resources
from stars_assets.defs.silver import assets as silver
from stars_assets_tests.conftest import INGEST_ASSETS, RANGE_END_TAG, RANGE_START_TAG, ingest

WEEK = "2026-10-25"  # Sunday 25 to Saturday 31 October: the world starts on the 27th, the two days before are empty
WEEK_DAYS = (date(2026, 10, 25), date(2026, 10, 31))
# The Sunday after: that week is the latest complete weekly partition.
NOW = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
GOLD = {care_gap_closure.key, campaign_effectiveness.key}


@pytest.fixture
def definitions(tmp_path, monkeypatch):
    monkeypatch.setenv("STARS_DATA_DIR", str(tmp_path / "data"))
    from stars_assets.definitions import defs

    return defs()


def update_silver(world, warehouse, instance, first: date, last: date) -> bool:
    """The silver gold reads, for the dates, recorded in the instance (bronze is already in the warehouse)."""
    selection = dg.AssetSelection.assets(silver.outreach_events, silver.appointments, silver.members, silver.care_gaps)
    return dg.materialize(
        INGEST_ASSETS,
        selection=selection,
        instance=instance,
        tags={RANGE_START_TAG: first.isoformat(), RANGE_END_TAG: last.isoformat()},
        resources=build_resources(warehouse=str(warehouse), landing=str(world)),
    ).success


def requested(result) -> dict[dg.AssetKey, set[str]]:
    return {key: set(result.get_requested_partitions(key)) for key in GOLD if result.get_num_requested(key)}


def test_a_new_silver_partition_makes_the_latest_weeks_gold_materialize(world, tmp_path, definitions):
    warehouse = tmp_path / "warehouse.duckdb"
    assert ingest(world, warehouse, *WEEK_DAYS).success  # bronze and silver in the warehouse
    with dg.instance_for_test() as instance:
        start = dg.evaluate_automation_conditions(defs=definitions, instance=instance, evaluation_time=NOW)
        assert update_silver(world, warehouse, instance, *WEEK_DAYS)
        first = dg.evaluate_automation_conditions(defs=definitions, instance=instance, evaluation_time=NOW, cursor=start.cursor)
        assert requested(first) == {key: {WEEK} for key in GOLD}  # the week's silver is all there: build it

        built = dg.materialize(
            [care_gap_closure, campaign_effectiveness],
            partition_key=WEEK,
            instance=instance,
            resources=build_resources(warehouse=str(warehouse), landing=str(world)),
        )
        assert built.success
        settled = dg.evaluate_automation_conditions(defs=definitions, instance=instance, evaluation_time=NOW, cursor=first.cursor)
        assert requested(settled) == {}  # up to date: nothing to do

        # A late file re-runs one delivery date of the week: silver changes, so the week's gold is rebuilt.
        assert update_silver(world, warehouse, instance, date(2026, 10, 30), date(2026, 10, 30))
        after = dg.evaluate_automation_conditions(defs=definitions, instance=instance, evaluation_time=NOW, cursor=settled.cursor)
        assert requested(after) == {key: {WEEK} for key in GOLD}
