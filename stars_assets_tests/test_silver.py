"""Silver over a generated world equals the generator's ground truth, exactly once, also after a
second overlapping delivery window; and a failing blocking check stops what depends on it."""

from __future__ import annotations

import shutil
from datetime import timedelta

import dagster as dg
import duckdb
import pandas as pd

from stars_assets.defs.bronze.assets import bronze_assets
from stars_assets.defs.partitions import daily_partitions
from stars_assets.defs.resources import build_resources
from stars_assets.defs.silver import assets as silver
from stars_assets_tests.conftest import (
    RANGE_END_TAG,
    RANGE_START_TAG,
    WORLD_DAYS,
    WORLD_START,
    generate_world,
    ingest,
    query,
    read_truth,
)

EVENT_COLUMNS = ["provider", "event_key", "member_id", "channel", "event_type", "event_ts"]
SILVER_OUTREACH_REASONS = {"unknown_member", "malformed_member_id", "future_timestamp"}
SILVER_APPOINTMENT_REASONS = {"unknown_member", "malformed_member_id", "future_timestamp", "start_before_booking"}


def _truth_events(truth: pd.DataFrame) -> set[tuple]:
    loaded = truth[truth["expected"] == "loaded"]
    return set(
        loaded[EVENT_COLUMNS]
        .assign(event_ts=pd.to_datetime(loaded["event_ts"]).dt.tz_localize(None))
        .itertuples(index=False, name=None)
    )


def _silver_events(warehouse) -> set[tuple]:
    frame = query(warehouse, f"SELECT {', '.join(EVENT_COLUMNS)} FROM silver.outreach_events")
    return set(frame.itertuples(index=False, name=None))


def _assert_outreach_matches_truth(warehouse, truth: pd.DataFrame) -> None:
    expected = _truth_events(truth)
    actual = _silver_events(warehouse)
    assert len(actual) == query(warehouse, "SELECT count(*) AS n FROM silver.outreach_events")["n"][0], "a row repeats"
    assert actual - expected == set(), "silver holds events the truth does not"
    assert expected - actual == set(), "silver lost true events"


def test_outreach_events_equal_the_ground_truth(ingested):
    assert ingested.result.success
    _assert_outreach_matches_truth(ingested.warehouse, read_truth(ingested.landing, "outreach_events"))


def test_measure_codes_and_lineage_follow_the_truth(ingested):
    truth = read_truth(ingested.landing, "outreach_events")
    truth = truth[truth["expected"] == "loaded"].set_index(["provider", "event_key"])
    silver_rows = query(ingested.warehouse, "SELECT provider, event_key, measure_codes, source_file FROM silver.outreach_events")
    for row in silver_rows.itertuples(index=False):
        true = truth.loc[(row.provider, row.event_key)]
        assert sorted(row.measure_codes) == sorted(c for c in (true["measure_codes"] or "").split(";") if c)
        assert row.source_file.split("/")[0] == row.provider


def test_silver_quarantine_holds_exactly_the_injected_faults(ingested):
    truth = read_truth(ingested.landing, "outreach_events")
    expected = set(
        truth.loc[truth["expected"].isin(SILVER_OUTREACH_REASONS), ["file_name", "source_row", "expected"]]
        .astype({"source_row": int})
        .itertuples(index=False, name=None)
    )
    actual = set(
        query(
            ingested.warehouse,
            "SELECT source_file, source_row, reason FROM audit.quarantine WHERE layer = 'silver' AND dataset = 'outreach_events'",
        ).itertuples(index=False, name=None)
    )
    assert {reason for *_, reason in expected} == SILVER_OUTREACH_REASONS
    assert actual == expected


def test_duplicates_are_removed_and_reconciled(ingested):
    faults = read_truth(ingested.landing, "faults")
    duplicates = faults[(faults["fault_kind"] == "duplicate_event") & faults["provider"].isin(["ihwa", "engage", "dialer"])]
    totals = query(
        ingested.warehouse,
        "SELECT sum(rows_delivered) AS delivered, sum(rows_loaded) AS loaded, sum(rows_quarantined) AS quarantined, "
        "sum(duplicates_removed) AS duplicates FROM audit.silver_reconciliation WHERE silver_table = 'outreach_events'",
    ).iloc[0]
    assert totals["duplicates"] == len(duplicates) > 0
    assert totals["delivered"] == totals["loaded"] + totals["quarantined"] + totals["duplicates"]
    checks = {e.check_name: e.passed for e in ingested.result.get_asset_check_evaluations() if e.asset_key == silver.OUTREACH_KEY}
    assert checks == {name: True for name in silver.OUTREACH_CHECKS}


def test_appointments_equal_the_ground_truth(ingested):
    truth = read_truth(ingested.landing, "appointment_events")
    loaded = truth[truth["expected"] == "loaded"]
    expected = set(loaded[["provider", "event_key", "appointment_key", "member_id", "status"]].itertuples(index=False, name=None))
    actual = set(
        query(
            ingested.warehouse, "SELECT provider, event_key, appointment_key, member_id, status FROM silver.appointment_events"
        ).itertuples(index=False, name=None)
    )
    assert actual == expected
    rejected = set(
        truth.loc[truth["expected"].isin(SILVER_APPOINTMENT_REASONS), ["file_name", "source_row", "expected"]]
        .astype({"source_row": int})
        .itertuples(index=False, name=None)
    )
    quarantined = set(
        query(
            ingested.warehouse,
            "SELECT source_file, source_row, reason FROM audit.quarantine "
            "WHERE layer = 'silver' AND dataset = 'appointment_events'",
        ).itertuples(index=False, name=None)
    )
    assert rejected and quarantined == rejected

    final = read_truth(ingested.landing, "appointments")
    states = query(ingested.warehouse, "SELECT appointment_key, member_id, status FROM silver.appointments")
    assert set(states.itertuples(index=False, name=None)) == set(
        final[["appointment_key", "member_id", "status"]].itertuples(index=False, name=None)
    )


def test_a_second_overlapping_window_adds_nothing_twice(ingested, tmp_path):
    """Days 6-15 after days 1-10: late files, re-deliveries, shared days; still exactly the truth."""
    landing = tmp_path / "landing"
    shutil.copytree(ingested.landing, landing)
    first_truth = read_truth(landing, "outreach_events")
    warehouse = tmp_path / "warehouse.duckdb"
    shutil.copy(ingested.warehouse, warehouse)

    second_start = WORLD_START + timedelta(days=5)
    generate_world(landing, second_start, WORLD_DAYS)
    second_truth = read_truth(landing, "outreach_events")
    result = ingest(landing, warehouse, second_start, second_start + timedelta(days=WORLD_DAYS - 1))
    assert result.success

    union = pd.concat([first_truth, second_truth]).drop_duplicates(["provider", "event_key"])
    _assert_outreach_matches_truth(warehouse, union)
    # Re-running the whole span once more changes nothing.
    before = _silver_events(warehouse)
    assert ingest(landing, warehouse, WORLD_START, second_start + timedelta(days=WORLD_DAYS - 1)).success
    assert _silver_events(warehouse) == before


@dg.asset(key=["test", "downstream_of_outreach"], deps=[silver.OUTREACH_KEY], partitions_def=daily_partitions)
def downstream_of_outreach() -> None:
    """Stands in for anything that reads silver.outreach_events in the same run."""


def test_a_failing_blocking_check_stops_downstream_assets(ingested, tmp_path):
    warehouse = tmp_path / "warehouse.duckdb"
    shutil.copy(ingested.warehouse, warehouse)
    # Corrupt silver: an event already present on another day is copied onto a day outside the run.
    with duckdb.connect(str(warehouse)) as con:
        con.execute(
            "INSERT INTO silver.outreach_events SELECT * REPLACE (DATE '2026-01-05' AS partition_date) "
            "FROM silver.outreach_events LIMIT 1"
        )
    day = WORLD_START + timedelta(days=2)
    result = dg.materialize(
        [silver.outreach_events, downstream_of_outreach],
        resources=build_resources(warehouse=str(warehouse), landing=str(ingested.landing)),
        tags={RANGE_START_TAG: day.isoformat(), RANGE_END_TAG: day.isoformat()},
        selection=[silver.OUTREACH_KEY, dg.AssetKey(["test", "downstream_of_outreach"])],
        raise_on_error=False,
    )
    failed = [e.check_name for e in result.get_asset_check_evaluations() if not e.passed]
    assert failed == ["check_uniqueness_event_id"]
    materialized = {e.asset_key for e in result.get_asset_materialization_events()}
    assert silver.OUTREACH_KEY in materialized
    assert dg.AssetKey(["test", "downstream_of_outreach"]) not in materialized
    assert not result.success


def test_outreach_before_any_enrollment_snapshot_is_quarantined_not_crashed(world, tmp_path):
    """A vendor file that lands before the first member extract: rows wait in quarantine as unknown members."""
    warehouse = tmp_path / "warehouse.duckdb"
    outreach_bronze = [a for a in bronze_assets if a.key.path[1] in ("ihwa", "engage", "dialer")]
    result = ingest(world, warehouse, WORLD_START, WORLD_START, assets=[*outreach_bronze, silver.outreach_events])
    materialized = {e.asset_key for e in result.get_asset_materialization_events()}
    assert silver.OUTREACH_KEY in materialized
    coverage = [e for e in result.get_asset_check_evaluations() if e.check_name == "check_validity_member_id_coverage"]
    assert len(coverage) == 1 and not coverage[0].passed
    counts = query(
        warehouse,
        "SELECT (SELECT count(*) FROM silver.outreach_events) AS loaded, "
        "(SELECT count(*) FROM audit.quarantine WHERE layer = 'silver' AND reason = 'unknown_member') AS unknown",
    )
    assert counts["loaded"][0] == 0 and counts["unknown"][0] > 0
