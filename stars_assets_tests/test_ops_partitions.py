"""A range run (single-run backfill) records each delivery date's own counts and check outcomes."""

from datetime import timedelta

from stars_assets.defs.silver.checks import check_contract_outreach_events
from stars_assets_tests.conftest import INGEST_ASSETS, WORLD_START, ingest, query

RANGE = [WORLD_START + timedelta(days=offset) for offset in range(3)]


def _by_partition(events, path: list[str]) -> dict[str, dict]:
    return {e.partition: {k: v.value for k, v in e.materialization.metadata.items()} for e in events if e.asset_key.path == path}


def test_a_three_day_range_run_records_each_days_own_counts(world, tmp_path):
    warehouse = tmp_path / "warehouse.duckdb"
    result = ingest(world, warehouse, RANGE[0], RANGE[-1], assets=[*INGEST_ASSETS, check_contract_outreach_events])
    assert result.success
    events = result.get_asset_materialization_events()
    keys = [day.isoformat() for day in RANGE]

    dialer = _by_partition(events, ["bronze", "dialer"])
    bronze_rows = dict(
        query(
            warehouse, "SELECT CAST(_partition_date AS VARCHAR) AS day, count(*) AS n FROM bronze.dialer GROUP BY 1"
        ).values.tolist()
    )
    assert sorted(dialer) == keys
    assert {day: dialer[day]["rows_loaded"] for day in keys} == bronze_rows
    assert {day: dialer[day]["dagster/row_count"] for day in keys} == bronze_rows
    assert len(set(bronze_rows.values())) > 1  # the days differ, so a run total could not pass for each

    outreach = _by_partition(events, ["silver", "outreach_events"])
    reconciled = query(
        warehouse,
        """
        SELECT CAST(e.day AS VARCHAR) AS day, e.n, r.quarantined, r.duplicates
        FROM (SELECT partition_date AS day, count(*) AS n FROM silver.outreach_events GROUP BY 1) e
        JOIN (SELECT partition_date AS day, sum(rows_quarantined) AS quarantined, sum(duplicates_removed) AS duplicates
              FROM audit.silver_reconciliation WHERE silver_table = 'outreach_events' GROUP BY 1) r USING (day)
    """,
    )
    assert sorted(outreach) == keys
    for day, loaded, quarantined, duplicates in reconciled.itertuples(index=False):
        assert (outreach[day]["rows_loaded"], outreach[day]["rows_quarantined"], outreach[day]["duplicates_removed"]) == (
            loaded,
            quarantined,
            duplicates,
        ), day

    # Every partitioned check of the range run has one evaluation per delivery date.
    evaluations = [
        e
        for e in result.get_asset_check_evaluations()
        if e.asset_key.path in (["bronze", "dialer"], ["silver", "outreach_events"])
    ]
    by_check: dict[tuple, list] = {}
    for evaluation in evaluations:
        by_check.setdefault((tuple(evaluation.asset_key.path), evaluation.check_name), []).append(evaluation.partition)
    assert ("silver", "outreach_events") in {key for key, _ in by_check}
    assert {check: sorted(partitions) for check, partitions in by_check.items()} == {check: keys for check in by_check}
