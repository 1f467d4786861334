"""Bronze over a generated world: every format parsed, every injected fault handled as the
generator's fault list says, nothing else rejected, re-runs identical, PHI masked."""

from __future__ import annotations

import shutil
from datetime import date, timedelta

import dagster as dg
import duckdb
import pandas as pd

from stars_assets.defs.bronze.assets import bronze_assets
from stars_assets.lib.bronze.load import ensure_tables
from stars_assets.lib.providers import load_registry
from stars_assets_tests.conftest import WORLD_DAYS, WORLD_START, ingest, query, read_truth

FILE_LEVEL_REASONS = {"wrong_encoding", "truncated_gzip", "empty_file", "missing_required_column"}


def test_every_bronze_run_and_check_succeeds(ingested):
    assert ingested.result.success
    reconciliation = [e for e in ingested.result.get_asset_check_evaluations() if e.check_name == "check_reconciliation_files"]
    # One evaluation per provider and delivery date of the range run.
    assert len(reconciliation) == 6 * WORLD_DAYS
    assert {(e.asset_key.path[-1], e.partition) for e in reconciliation} == {
        (p, (WORLD_START + timedelta(days=n)).isoformat())
        for p in ("ihwa", "engage", "dialer", "emr_north", "emr_south", "edw")
        for n in range(WORLD_DAYS)
    }
    assert all(e.passed for e in reconciliation)


def test_every_format_is_parsed(ingested):
    counts = query(
        ingested.warehouse,
        """
        SELECT 'ihwa' AS t, count(*) AS n FROM bronze.ihwa UNION ALL SELECT 'engage', count(*) FROM bronze.engage
        UNION ALL SELECT 'dialer', count(*) FROM bronze.dialer UNION ALL SELECT 'emr_north', count(*) FROM bronze.emr_north
        UNION ALL SELECT 'emr_south', count(*) FROM bronze.emr_south UNION ALL SELECT 'edw_members', count(*) FROM bronze.edw_members
        UNION ALL SELECT 'edw_care_gaps', count(*) FROM bronze.edw_care_gaps UNION ALL SELECT 'edw_rx_fills', count(*) FROM bronze.edw_rx_fills
        UNION ALL SELECT 'edw_contract_quality', count(*) FROM bronze.edw_contract_quality""",
    ).set_index("t")["n"]
    assert (counts > 0).all(), counts.to_dict()
    # Loaded rows per outreach file equal the truth's events in that file that are not rejected
    # in bronze, plus the duplicate copies the vendor sent (silver removes those).
    truth = read_truth(ingested.landing, "outreach_events")
    faults = read_truth(ingested.landing, "faults")
    in_bronze = truth[~truth["expected"].isin(FILE_LEVEL_REASONS | {"wrong_field_count"})]
    duplicates = faults[faults["fault_kind"] == "duplicate_event"]
    for provider in ("ihwa", "engage", "dialer"):
        expected = (in_bronze["provider"] == provider).sum() + (duplicates["provider"] == provider).sum()
        assert counts[provider] == expected, provider


def test_file_level_faults_match_the_generator(ingested):
    faults = read_truth(ingested.landing, "faults")
    manifest = query(ingested.warehouse, "SELECT file_path, status, reason, extra_columns FROM audit.file_manifest")
    expected = set(
        faults.loc[faults["expected_reason"].isin(FILE_LEVEL_REASONS), ["file_name", "expected_reason"]].itertuples(
            index=False, name=None
        )
    )
    quarantined = set(
        manifest.loc[manifest["status"] == "quarantined", ["file_path", "reason"]].itertuples(index=False, name=None)
    )
    assert expected, "the default world injects every file-level fault"
    assert {reason for _, reason in expected} == FILE_LEVEL_REASONS
    assert quarantined == expected

    redelivered = set(faults.loc[faults["fault_kind"] == "redelivered_file", "file_name"])
    skipped = set(manifest.loc[manifest["status"] == "skipped_duplicate", "file_path"])
    assert redelivered and skipped == redelivered

    drifted = set(faults.loc[faults["fault_kind"] == "added_column", "file_name"])
    with_extra = set(manifest.loc[manifest["extra_columns"].map(len) > 0, "file_path"])
    assert drifted and with_extra == drifted


def test_row_level_bronze_faults_match_the_generator(ingested):
    faults = read_truth(ingested.landing, "faults")
    expected = set(
        faults.loc[faults["expected_reason"] == "wrong_field_count", ["file_name", "source_row"]]
        .astype({"source_row": int})
        .itertuples(index=False, name=None)
    )
    rejected = query(
        ingested.warehouse,
        "SELECT source_file, source_row, reason, raw_text FROM audit.quarantine WHERE layer = 'bronze' AND source_row IS NOT NULL",
    )
    assert expected
    assert set(rejected["reason"]) == {"wrong_field_count"}
    assert set(rejected[["source_file", "source_row"]].astype({"source_row": int}).itertuples(index=False, name=None)) == expected
    assert rejected["raw_text"].str.len().gt(0).all()


def test_lineage_points_at_the_source_row(ingested):
    """A bronze row's source file and row lead back to the same record on disk."""
    sample = query(
        ingested.warehouse,
        "SELECT record_id, _source_file, _source_row FROM bronze.ihwa ORDER BY _source_file, _source_row DESC LIMIT 20",
    )
    for record_id, source_file, source_row in sample.itertuples(index=False):
        lines = (ingested.landing / source_file).read_text(encoding="utf-8").splitlines()
        assert lines[source_row - 1].split("|")[0] == record_id


def test_materialization_metadata_is_complete_and_masked(ingested):
    members = read_truth(ingested.landing, "members")
    identifiers = set(members["member_id"]) | set(members["mbi"]) | set(members["vendor_ref"])
    events = ingested.result.get_asset_materialization_events()
    bronze = [e for e in events if e.asset_key.path[0] == "bronze"]
    # A single-run backfill reports one materialization per asset and partition.
    assert {e.asset_key.path[1] for e in bronze} == {"ihwa", "engage", "dialer", "emr_north", "emr_south", "edw"}
    for event in bronze:
        metadata = event.materialization.metadata
        for key in ("files_read", "rows_loaded", "mode", "rows_quarantined", "bytes_read", "preview"):
            assert key in metadata, (event.asset_key, key)
        preview = metadata["preview"].value
        assert not any(identifier in preview for identifier in identifiers), event.asset_key


def _bronze_snapshot(warehouse, day: date):
    return {
        table: query(
            warehouse,
            f"SELECT * EXCLUDE (_ingested_at) FROM bronze.{table} WHERE _partition_date = $day "
            "ORDER BY _source_file, _source_row",
            {"day": day},
        )
        for table in ("ihwa", "engage", "dialer", "emr_north", "emr_south")
    }


def test_rerunning_a_partition_gives_identical_tables(ingested, tmp_path):
    warehouse = tmp_path / "copy.duckdb"
    shutil.copy(ingested.warehouse, warehouse)
    day = WORLD_START
    before = _bronze_snapshot(warehouse, day)
    quarantine_before = query(
        warehouse,
        "SELECT * EXCLUDE (run_id, recorded_at) FROM audit.quarantine WHERE layer = 'bronze' "
        "AND partition_date = $day ORDER BY ALL",
        {"day": day},
    )
    result = ingest(ingested.landing, warehouse, day, day, assets=bronze_assets)
    assert result.success
    after = _bronze_snapshot(warehouse, day)
    for table in before:
        assert before[table].equals(after[table]), table
    quarantine_after = query(
        warehouse,
        "SELECT * EXCLUDE (run_id, recorded_at) FROM audit.quarantine WHERE layer = 'bronze' "
        "AND partition_date = $day ORDER BY ALL",
        {"day": day},
    )
    assert quarantine_before.equals(quarantine_after)
    other_days = query(warehouse, "SELECT count(*) AS n FROM bronze.engage WHERE _partition_date <> $day", {"day": day})["n"][0]
    assert (
        other_days
        == query(ingested.warehouse, "SELECT count(*) AS n FROM bronze.engage WHERE _partition_date <> $day", {"day": day})["n"][
            0
        ]
    )


def test_the_ui_lists_six_daily_partitioned_bronze_assets():
    keys = {a.key.to_user_string(): a for a in bronze_assets}
    assert sorted(keys) == ["bronze/dialer", "bronze/edw", "bronze/emr_north", "bronze/emr_south", "bronze/engage", "bronze/ihwa"]
    for asset in keys.values():
        assert isinstance(asset.partitions_def, dg.DailyPartitionsDefinition)
        assert asset.backfill_policy == dg.BackfillPolicy.single_run()


def test_columns_of_unique_values_are_stored_in_zstd_or_uncompressed(ingested):
    """Event keys, md5s, millisecond times and the quarantine's raw rows are all different, so DuckDB's dictionary and FSST find nothing to
    share there: the warehouse stores them with zstd (faster to write), silver's event_id and record_hash (fetched at
    scattered rows by a correction's duplicate lookup) uncompressed, and every other text column as DuckDB chooses."""
    tables = ("bronze.engage", "bronze.dialer", "silver.outreach_events", "audit.quarantine")
    storage = pd.concat(
        query(
            ingested.warehouse,
            f"SELECT DISTINCT '{table}' AS tbl, column_name, compression FROM pragma_storage_info('{table}') "
            "WHERE segment_type = 'VARCHAR' AND compression NOT IN ('Constant', 'Empty')",
        )
        for table in tables
    )
    zstd = {(r.tbl, r.column_name) for r in storage.itertuples() if r.compression == "ZSTD"}
    assert zstd == {
        ("bronze.engage", "event_id"),
        ("bronze.engage", "ts"),
        ("bronze.engage", "_record_hash"),
        ("bronze.dialer", "call_id"),
        ("bronze.dialer", "_record_hash"),
        ("silver.outreach_events", "event_key"),
        ("audit.quarantine", "raw_text"),
    }
    looked_up = storage[storage.column_name.isin(["event_id", "record_hash"]) & storage.tbl.eq("silver.outreach_events")]
    assert sorted(looked_up.column_name) == ["event_id", "record_hash"] and set(looked_up.compression) == {"Uncompressed"}
    others = storage[~storage.compression.eq("ZSTD")]
    assert len(others) > len(looked_up) and set(others.compression) <= {"DICT_FSST", "Uncompressed"}


def test_a_column_declared_after_a_bronze_table_was_made_joins_it_empty_on_earlier_rows(tmp_path):
    """A provider's YAML gains a column: the existing bronze table gains it (stored as the YAML says), earlier rows
    hold NULL there, and the audit tables are left as they are."""
    engage = next(p for p in load_registry() if p.name == "engage")
    dataset = engage.dataset("engage")
    older = engage.model_copy(
        update={"datasets": (dataset.model_copy(update={"columns": tuple(c for c in dataset.columns if c.column != "ts")}),)}
    )
    con = duckdb.connect(str(tmp_path / "warehouse.duckdb"))
    ensure_tables(con, older)
    con.execute("INSERT INTO bronze.engage (event_id, _source_file, _source_row) VALUES ('e1', 'engage/a.jsonl', 1)")
    assert "ts" not in {
        name for (name,) in con.execute("SELECT column_name FROM duckdb_columns() WHERE table_name = 'engage'").fetchall()
    }
    ensure_tables(con, engage)
    assert con.execute("SELECT event_id, ts FROM bronze.engage").fetchall() == [("e1", None)]
    con.execute(
        "INSERT INTO bronze.engage (event_id, ts, _source_file, _source_row) VALUES ('e2', '1790812800358', 'engage/a.jsonl', 2)"
    )
    con.execute("CHECKPOINT")
    storage = con.execute(
        "SELECT DISTINCT compression FROM pragma_storage_info('bronze.engage') WHERE column_name = 'ts' AND segment_type = 'VARCHAR'"
    ).fetchall()
    assert storage == [("ZSTD",)]
