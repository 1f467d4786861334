"""Declarative automation of the member outreach documents: a delivery date's documents follow its silver, and a
week's days follow that week's gold."""

from datetime import UTC, date, datetime, timedelta

import dagster as dg

from stars_assets.defs.activation.assets import MEMBER_DOCUMENTS
from stars_assets.defs.gold.assets import care_gap_closure
from stars_assets.defs.resources import build_resources
from stars_assets.defs.silver import assets as silver
from stars_assets_tests.conftest import INGEST_ASSETS, ingest
from stars_assets_tests.test_ops_automation import WEEK_DAYS, definitions, update_silver  # noqa: F401 (a fixture)

DAY = date(2026, 10, 28)
WEEK = "2026-10-25"  # Sunday 25 to Saturday 31 October (WEEK_DAYS)
NOW = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
WEEK_DATES = {(WEEK_DAYS[0] + timedelta(days=n)).isoformat() for n in range(7)}


def requested_documents(result) -> set[str]:
    return set(result.get_requested_partitions(MEMBER_DOCUMENTS)) if result.get_num_requested(MEMBER_DOCUMENTS) else set()


def test_a_new_silver_partition_requests_that_days_member_documents(world, tmp_path, definitions):  # noqa: F811
    warehouse = tmp_path / "warehouse.duckdb"
    assert ingest(world, warehouse, *WEEK_DAYS).success  # bronze and silver in the warehouse, not in the instance
    with dg.instance_for_test() as instance:
        start = dg.evaluate_automation_conditions(defs=definitions, instance=instance, evaluation_time=NOW)
        assert requested_documents(start) == set()  # nothing changed upstream yet

        # One provider's events alone: the member snapshot the documents need was never built, so nothing yet.
        assert dg.materialize(
            INGEST_ASSETS,
            selection=[silver.outreach_events],
            partition_key=DAY.isoformat(),
            instance=instance,
            resources=build_resources(warehouse=str(warehouse), landing=str(world)),
        ).success
        early = dg.evaluate_automation_conditions(defs=definitions, instance=instance, evaluation_time=NOW, cursor=start.cursor)
        assert requested_documents(early) == set()

        assert update_silver(world, warehouse, instance, *WEEK_DAYS)
        first = dg.evaluate_automation_conditions(defs=definitions, instance=instance, evaluation_time=NOW, cursor=early.cursor)
        assert requested_documents(first) == WEEK_DATES  # the dates whose silver arrived

        settled = dg.evaluate_automation_conditions(defs=definitions, instance=instance, evaluation_time=NOW, cursor=first.cursor)
        assert requested_documents(settled) == set()  # requested once, not again

        # A late file re-runs one delivery date: only that date's documents are requested.
        assert update_silver(world, warehouse, instance, DAY, DAY)
        late = dg.evaluate_automation_conditions(defs=definitions, instance=instance, evaluation_time=NOW, cursor=settled.cursor)
        assert requested_documents(late) == {DAY.isoformat()}
        quiet = dg.evaluate_automation_conditions(defs=definitions, instance=instance, evaluation_time=NOW, cursor=late.cursor)
        assert requested_documents(quiet) == set()

        # The week's gold changes (a new reference week): every day of that week is requested.
        assert dg.materialize(
            [care_gap_closure],
            partition_key=WEEK,
            instance=instance,
            resources=build_resources(warehouse=str(warehouse), landing=str(world)),
        ).success
        after = dg.evaluate_automation_conditions(defs=definitions, instance=instance, evaluation_time=NOW, cursor=quiet.cursor)
        assert requested_documents(after) == WEEK_DATES
