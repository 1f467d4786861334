"""Silver over a generated world equals the generator's ground truth, exactly once, also after a
second overlapping delivery window; and a failing blocking check stops what depends on it."""

from __future__ import annotations

import hashlib
import shutil
from datetime import timedelta

import dagster as dg
import duckdb
import pandas as pd
import pytest

from stars_assets.defs.bronze.assets import bronze_assets
from stars_assets.defs.partitions import daily_partitions
from stars_assets.defs.resources import build_resources
from stars_assets.defs.silver import assets as silver
from stars_assets.defs.silver import checks as silver_checks
from stars_assets.lib.silver import events as event_engine
from stars_assets.lib.silver import quality
from stars_assets.lib.silver.events import DEDUP_WINDOW_DAYS
from stars_assets.lib.silver.tables import EVENT_HASH
from stars_assets.lib.warehouse import duckdb_setting
from stars_assets_tests.conftest import (
    INGEST_ASSETS,
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


def test_an_appointment_state_follows_its_history_when_a_rebuilt_day_quarantines_its_events(ingested, tmp_path):
    """silver.appointments is derived from the events: a day rebuilt without some of its events (their member left
    the crosswalk) takes out the state of an appointment left with no history and recomputes the others."""
    warehouse = tmp_path / "warehouse.duckdb"
    shutil.copy(ingested.warehouse, warehouse)
    disagreeing = """
        SELECT count(*) AS n FROM silver.appointments AS a
        LEFT JOIN (SELECT appointment_key, count(*) AS events FROM silver.appointment_events GROUP BY 1) AS h USING (appointment_key)
        WHERE h.events IS DISTINCT FROM a.events
    """
    with duckdb.connect(str(warehouse)) as con:
        day, key, member = con.execute(
            "SELECT any_value(partition_date), appointment_key, any_value(member_id) FROM silver.appointment_events "
            "GROUP BY appointment_key HAVING count(DISTINCT partition_date) = 1 ORDER BY appointment_key LIMIT 1"
        ).fetchone()
        assert con.execute(disagreeing).fetchone()[0] == 0
        con.execute("DELETE FROM silver.member_identifiers WHERE member_id = $m", {"m": member})
        con.execute(
            "DELETE FROM audit.silver_inputs WHERE silver_table = 'appointment_events' AND partition_date = $day", {"day": day}
        )
    result = ingest(ingested.landing, warehouse, day, day, assets=[silver.appointments])
    assert result.success
    assert (
        query(warehouse, "SELECT count(*) AS n FROM silver.appointment_events WHERE member_id = $m", {"m": member})["n"][0] == 0
    )
    assert query(warehouse, "SELECT count(*) AS n FROM silver.appointments WHERE appointment_key = $k", {"k": key})["n"][0] == 0
    assert query(warehouse, disagreeing)["n"][0] == 0
    (materialization,) = [
        e
        for e in result.get_asset_materialization_events()
        if e.asset_key == silver.APPOINTMENTS_KEY and e.partition == day.isoformat()
    ]
    assert materialization.materialization.metadata["appointments_removed"].value >= 1


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


CONTRACT_CHECKS = dg.load_asset_checks_from_modules([silver_checks])


def test_a_run_with_nothing_new_writes_nothing_to_the_warehouse(ingested, tmp_path):
    """Bronze, silver and their contract checks over every day, then again with no new file: the second run leaves the
    warehouse file byte for byte as it was (no write-ahead log, no checkpoint), so a no-change run costs reads only."""
    warehouse = tmp_path / "warehouse.duckdb"
    shutil.copy(ingested.warehouse, warehouse)
    runs = []
    for _ in range(2):
        before = hashlib.sha256(warehouse.read_bytes()).hexdigest()
        result = ingest(ingested.landing, warehouse, WORLD_START, ingested.last_day, assets=[*INGEST_ASSETS, *CONTRACT_CHECKS])
        assert result.success
        assert len(result.get_asset_check_evaluations()) > 0
        runs.append(hashlib.sha256(warehouse.read_bytes()).hexdigest() == before)
    # The first run records the contract outcomes (the ingested world had not run the contract checks).
    assert runs == [False, True]
    assert not warehouse.with_name(warehouse.name + ".wal").exists()


def test_events_loaded_before_event_hash_existed_are_still_found_as_duplicates(ingested, tmp_path):
    """A warehouse an older release made has no event_hash: the next build adds it for every stored row, and
    rebuilding the last day against the earlier days' rows (found by that hash) loads every event exactly once."""
    warehouse = tmp_path / "warehouse.duckdb"
    shutil.copy(ingested.warehouse, warehouse)
    last_day = WORLD_START + timedelta(days=WORLD_DAYS - 1)
    with duckdb.connect(str(warehouse)) as con:
        con.execute("ALTER TABLE silver.outreach_events DROP COLUMN event_hash")
        # One of the last day's events as if the first day had loaded it already: the rebuild must find it there.
        moved = {"first": WORLD_START, "day": last_day}
        con.execute(
            "CREATE TEMP TABLE moved AS SELECT * REPLACE ($first AS partition_date) "
            "FROM silver.outreach_events WHERE partition_date = $day LIMIT 1",
            moved,
        )
        con.execute("INSERT INTO silver.outreach_events SELECT * FROM moved")
        recorded = con.execute(
            "UPDATE audit.silver_reconciliation SET rows_loaded = rows_loaded + 1 WHERE silver_table = 'outreach_events' "
            "AND partition_date = $first AND provider = (SELECT provider FROM moved)",
            {"first": WORLD_START},
        ).fetchone()[0]
        assert recorded == 1
        con.execute(
            "DELETE FROM audit.silver_inputs WHERE silver_table = 'outreach_events' AND partition_date = $day", {"day": last_day}
        )
    assert ingest(ingested.landing, warehouse, last_day, last_day, assets=[silver.outreach_events]).success

    _assert_outreach_matches_truth(warehouse, read_truth(ingested.landing, "outreach_events"))
    wrong = query(
        warehouse,
        f"SELECT count(*) AS n FROM silver.outreach_events WHERE event_hash IS DISTINCT FROM {EVENT_HASH.format(row='')}",
    )
    assert wrong["n"][0] == 0
    resent = query(
        warehouse,
        "SELECT sum(duplicates_removed) AS n FROM audit.silver_reconciliation WHERE silver_table = 'outreach_events' "
        "AND partition_date = $day",
        {"day": last_day},
    )
    assert resent["n"][0] > 0, "the moved event, at least, was found on the first day"


def test_older_matches_are_found_by_probing_the_window_with_the_runs_hashes():
    """The look-up of a run's events among the window's rows builds its hash table on the run's hashes, also where
    DuckDB estimates fewer window rows than run hashes and would build on the window instead, which spills at full
    volume. Here the window holds 3,000 rows, of which DuckDB expects a fifth to pass the day-and-file filter, and the
    run 1,500 hashes."""
    day = WORLD_START + timedelta(days=1)
    with duckdb.connect() as con:
        con.execute("CREATE SCHEMA silver")
        con.execute(
            "CREATE TABLE silver.outreach_events AS SELECT $day - (i % 3)::INTEGER AS partition_date, "
            "'engage/e_' || (i % 3) || '.jsonl.gz' AS source_file, i * 7919 AS event_hash FROM range(3000) AS r(i)",
            {"day": day},
        )
        con.execute("CREATE TEMP TABLE event_hashes AS SELECT i * 7919 AS event_hash FROM range(0, 3000, 2) AS r(i)")
        window = {
            "day": day,
            "files": ["engage/e_0.jsonl.gz"],
            "window_start": day - timedelta(days=DEDUP_WINDOW_DAYS),
            "window_end": day + timedelta(days=DEDUP_WINDOW_DAYS),
        }
        older_ids = event_engine.OLDER_MATCHES_SQL[0].format(table="silver.outreach_events")
        with duckdb_setting(con, *event_engine.OLDER_IDS_BUILD):
            plan = con.execute("EXPLAIN " + older_ids, window).fetchall()[0][1]
            con.execute(older_ids, window)
        assert "Join Type: SEMI" in plan and "RIGHT_SEMI" not in plan, plan
        # The run's hashes are the even rows; those of rows on the run's own day and file (i divisible by 3) are not older.
        assert con.execute("SELECT count(*) FROM event_older_ids").fetchone()[0] == 1500 - 500
        assert con.execute("SELECT current_setting('disabled_optimizers')").fetchone()[0] == ""


def test_the_uniqueness_rule_finds_an_event_id_repeated_within_the_window_and_only_there(ingested, tmp_path):
    """check_uniqueness_event_id, for the days a run wrote: an event_id another partition of the window holds is
    reported (also when only the rows written since the run started are checked), one outside it is not."""
    warehouse = tmp_path / "warehouse.duckdb"
    shutil.copy(ingested.warehouse, warehouse)
    first = WORLD_START
    with duckdb.connect(str(warehouse)) as con:
        (event_id, provider, written) = con.execute(
            "SELECT event_id, provider, loaded_at FROM silver.outreach_events WHERE partition_date = $first "
            "ORDER BY event_id LIMIT 1",
            {"first": first},
        ).fetchone()
        # near's window reaches back to the first day; far's reaches neither the first day nor near
        near, far = first + timedelta(days=DEDUP_WINDOW_DAYS), first + timedelta(days=2 * DEDUP_WINDOW_DAYS + 1)
        later = written + timedelta(days=1)
        for day in (near, far):  # a copy on each day, recorded as the pipeline records its writes
            con.execute(
                "INSERT INTO silver.outreach_events SELECT * REPLACE ($day AS partition_date, $later AS loaded_at) "
                "FROM silver.outreach_events WHERE event_id = $id AND partition_date = $first",
                {"day": day, "id": event_id, "later": later, "first": first},
            )
            con.execute(
                "INSERT INTO audit.silver_reconciliation VALUES ('outreach_events', $p, $day, 1, 1, 0, 0, 'test', $later)",
                {"p": provider, "day": day, "later": later},
            )
        found = {
            (day, since): quality.unique_event_ids(con, "outreach_events", [day], DEDUP_WINDOW_DAYS, since)
            for day in (near, far)
            for since in (None, later)
        }
    assert {key: (o.passed, o.metadata["duplicated_event_ids"]) for key, o in found.items()} == {
        (near, None): (False, 1),
        (near, later): (False, 1),
        (far, None): (True, 0),
        (far, later): (True, 0),
    }


def test_a_malformed_identifier_is_quarantined_even_when_the_crosswalk_holds_it(ingested, tmp_path):
    """The shape of a vendor's member identifier is only checked for rows that do not resolve, so the crosswalk
    must not resolve a malformed identifier: an enrollment extract that carries one does not make it valid."""
    warehouse = tmp_path / "warehouse.duckdb"
    shutil.copy(ingested.warehouse, warehouse)
    last_day = WORLD_START + timedelta(days=WORLD_DAYS - 1)
    malformed = "M1234"  # an internal member id has nine digits
    with duckdb.connect(str(warehouse)) as con:
        con.execute(
            "INSERT INTO silver.member_identifiers SELECT id_type, $malformed, member_id, contract_id, region "
            "FROM silver.member_identifiers WHERE id_type = 'member_id' LIMIT 1",
            {"malformed": malformed},
        )
        row = con.execute(
            "UPDATE bronze.engage SET member_id = $malformed WHERE _partition_date = $day AND (_source_file, _source_row) = "
            "(SELECT (_source_file, _source_row) FROM bronze.engage WHERE _partition_date = $day LIMIT 1) "
            "RETURNING _source_file, _source_row",
            {"malformed": malformed, "day": last_day},
        ).fetchall()
        assert len(row) == 1
        con.execute(
            "DELETE FROM audit.silver_inputs WHERE silver_table = 'outreach_events' AND partition_date = $day", {"day": last_day}
        )
    assert ingest(ingested.landing, warehouse, last_day, last_day, assets=[silver.outreach_events]).success

    source_file, source_row = row[0]
    where = {"day": last_day, "file": source_file, "row": source_row}
    quarantined = query(
        warehouse,
        "SELECT reason FROM audit.quarantine WHERE layer = 'silver' AND partition_date = $day "
        "AND source_file = $file AND source_row = $row",
        where,
    )
    assert quarantined["reason"].tolist() == ["malformed_member_id"]
    loaded = query(
        warehouse,
        "SELECT count(*) AS n FROM silver.outreach_events WHERE partition_date = $day AND source_file = $file "
        "AND source_row = $row",
        where,
    )
    assert loaded["n"][0] == 0


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


# What a silver partition is, for comparing two builds of it: its rows, quarantine, flags and
# reconciliation, without the run stamps.
PARTITION_STATE_SQL = {
    "events": "SELECT * EXCLUDE (loaded_at) REPLACE (CAST(measure_codes AS VARCHAR) AS measure_codes) "
    "FROM silver.outreach_events WHERE partition_date = $day ORDER BY ALL",
    "quarantine": "SELECT * EXCLUDE (run_id, recorded_at) FROM audit.quarantine "
    "WHERE layer = 'silver' AND dataset = 'outreach_events' AND partition_date = $day ORDER BY ALL",
    "flags": "SELECT * EXCLUDE (run_id, recorded_at) FROM audit.silver_flags "
    "WHERE silver_table = 'outreach_events' AND partition_date = $day ORDER BY ALL",
    "reconciliation": "SELECT * EXCLUDE (run_id, recorded_at) FROM audit.silver_reconciliation "
    "WHERE silver_table = 'outreach_events' AND partition_date = $day ORDER BY ALL",
}


def _partition_state(warehouse, day) -> dict[str, list]:
    return {name: query(warehouse, sql, {"day": day}).values.tolist() for name, sql in PARTITION_STATE_SQL.items()}


def _outreach_mode(result: dg.ExecuteInProcessResult) -> str:
    (event,) = [e for e in result.get_asset_materialization_events() if e.asset_key == silver.OUTREACH_KEY]
    return event.materialization.metadata["mode"].value


# The two ways a build reads its validated rows: kept in a temporary table (small runs, as in these
# worlds), or validated twice (a run over event_engine.KEPT_ROWS_LIMIT rows, such as a payer's full day).
VALIDATION_PATHS = pytest.mark.parametrize("kept_rows_limit", [event_engine.KEPT_ROWS_LIMIT, 0], ids=["kept", "validated_twice"])


def test_a_day_validated_twice_equals_the_day_with_its_validated_rows_kept(ingested, tmp_path, monkeypatch):
    """A run too large to keep its validated rows validates them twice; rebuilt either way, a day (the one
    with the most rows quarantined) holds the same events, quarantine and reconciliation, and the same
    flags (none in this world's outreach: test_hardening covers a flag)."""
    (day,) = query(
        ingested.warehouse,
        "SELECT partition_date FROM audit.quarantine WHERE layer = 'silver' AND dataset = 'outreach_events' "
        "GROUP BY 1 ORDER BY count(*) DESC, 1 LIMIT 1",
    )["partition_date"].dt.date
    states = {}
    for limit in (event_engine.KEPT_ROWS_LIMIT, 0):
        warehouse = tmp_path / f"kept_rows_limit_{limit}.duckdb"
        shutil.copy(ingested.warehouse, warehouse)
        with duckdb.connect(str(warehouse)) as con:
            con.execute(
                "DELETE FROM audit.silver_inputs WHERE silver_table = 'outreach_events' AND partition_date = $day", {"day": day}
            )
        monkeypatch.setattr(event_engine, "KEPT_ROWS_LIMIT", limit)
        result = ingest(ingested.landing, warehouse, day, day, assets=[silver.outreach_events])
        assert result.success and _outreach_mode(result) == "replace"
        states[limit] = _partition_state(warehouse, day)
    kept, twice = states.values()
    assert kept["events"] and kept["quarantine"]
    assert sum(row[-1] for row in kept["reconciliation"]) > 0  # duplicates removed
    assert twice == kept


@VALIDATION_PATHS
def test_a_correction_appended_to_a_day_equals_rebuilding_the_day(ingested, tmp_path, monkeypatch, kept_rows_limit):
    """A vendor's correction file is added to a built day (append: only its rows are read) and gives
    exactly the partition a rebuild from all the day's files gives: new events loaded, re-sent
    events counted as duplicates (also a repeat inside the correction), bad rows quarantined, and
    a re-sent event with changed content quarantined in both versions, the one loaded earlier too."""
    import csv

    monkeypatch.setattr(event_engine, "KEPT_ROWS_LIMIT", kept_rows_limit)

    day = WORLD_START + timedelta(days=4)
    ymd = day.strftime("%Y%m%d")
    landing = tmp_path / "landing"
    shutil.copytree(ingested.landing, landing)
    (original,) = (landing / "dialer").glob(f"dialer_calls_{ymd}.csv")
    with original.open(newline="", encoding="utf-8-sig") as handle:
        header, *rows = list(csv.reader(handle))
    loaded = set(
        query(
            ingested.warehouse,
            "SELECT event_key FROM silver.outreach_events WHERE provider = 'dialer' AND partition_date = $day",
            {"day": day},
        )["event_key"]
    )
    column = {name: i for i, name in enumerate(header)}
    good = [r for r in rows if r[column["Call ID"]] in loaded]
    assert len(good) >= 10

    def changed(row: list[str], **values: str) -> list[str]:
        row = list(row)
        for name, value in values.items():
            row[column[name]] = value
        return row

    new = [changed(r, **{"Call ID": r[column["Call ID"]] + "-N"}) for r in good[:3]]
    resent = good[3:6]  # identical: duplicates of loaded events
    conflicting = [changed(r, Disposition="REFUSED" if r[column["Disposition"]] != "REFUSED" else "BUSY") for r in good[6:8]]
    bad = [
        changed(good[8], **{"Call ID": "BAD-MEMBER", "Member Ref": "VR-NOT-A-REF"}),
        changed(good[9], **{"Call ID": "BAD-TIME", "Call Start": "not a time"}),
    ]
    correction = landing / "dialer" / f"dialer_calls_{ymd}_correction.csv"
    with correction.open("w", newline="", encoding="utf-8-sig") as handle:
        csv.writer(handle, quoting=csv.QUOTE_ALL, lineterminator="\r\n").writerows(
            [header, *new, new[0], *resent, *conflicting, *bad]
        )

    appended, rebuilt = tmp_path / "appended.duckdb", tmp_path / "rebuilt.duckdb"
    for warehouse in (appended, rebuilt):
        shutil.copy(ingested.warehouse, warehouse)
    with duckdb.connect(str(rebuilt)) as con:  # forget what the day was built from: the next run rebuilds it
        con.execute(
            "DELETE FROM audit.silver_inputs WHERE silver_table = 'outreach_events' AND partition_date = $day", {"day": day}
        )
    modes = {}
    for name, warehouse in (("append", appended), ("replace", rebuilt)):
        result = ingest(landing, warehouse, day, day)
        assert result.success, name
        modes[name] = _outreach_mode(result)
    assert modes == {"append": "append", "replace": "replace"}

    changed_keys = {r[column["Call ID"]] for r in conflicting}
    states = {}
    for name, warehouse in (("append", appended), ("replace", rebuilt)):
        states[name] = _partition_state(warehouse, day)
        # Both versions of a changed event are quarantined, the one loaded earlier from the day's
        # first file too (an append takes it out of silver); neither is loaded.
        events = query(
            warehouse, "SELECT event_key, count(*) AS n FROM silver.outreach_events WHERE provider = 'dialer' GROUP BY 1"
        )
        assert events["n"].max() == 1, name
        assert not changed_keys & set(events["event_key"]), name
        conflicts = query(
            warehouse,
            "SELECT source_file, raw_text FROM audit.quarantine WHERE reason = 'conflicting_duplicate' AND partition_date = $day",
            {"day": day},
        )
        assert sorted(conflicts["source_file"]) == sorted([f"dialer/{original.name}", f"dialer/{correction.name}"] * 2), name
    assert states["append"] == states["replace"]
    (before,) = [r for r in _partition_state(ingested.warehouse, day)["reconciliation"] if r[1] == "dialer"]
    (after,) = [r for r in states["append"]["reconciliation"] if r[1] == "dialer"]
    delivered, loaded_rows, quarantined, duplicates = (a - b for a, b in zip(after[3:7], before[3:7]))
    # 3 new events; 2 bad rows and both versions of the 2 changed events quarantined; 3 re-sent events and a repeat.
    assert (delivered, loaded_rows, quarantined, duplicates) == (3 + 1 + 3 + 2 + 2, 3 - 2, 2 + 2 * 2, 3 + 1)
