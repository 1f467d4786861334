"""Silver contracts (pandera Ibis models validated in DuckDB) on hand-built warehouses, and their asset checks.

Each warehouse is built the way the pipeline builds it: the silver DDL for the event tables, and
bronze edw rows turned into silver.members / care_gaps / rx_fills by the real silver SQL. Each bad
row is a good row with one thing broken, so exactly the rule it breaks must fail.
"""

import copy
import json
import re
import shutil
from datetime import date

import dagster as dg
import duckdb
import ibis
import pandera.ibis as pa
import pytest
from dagster_duckdb import DuckDBResource

from stars_assets.defs.partitions import WAREHOUSE_POOL
from stars_assets.defs.silver import checks
from stars_assets.lib.bronze.load import AUDIT_TABLES, ensure_tables
from stars_assets.lib.providers import load_registry
from stars_assets.lib.silver import check_memo, contracts, tables
from stars_assets.lib.silver.dimensions import build_care_gaps, build_members, build_rx_fills
from stars_assets.lib.silver.tables import EVENT_HASH
from stars_assets.lib.tables import ddl
from stars_assets.lib.warehouse import ensure_tables as ensure_warehouse_tables

EDW = next(p for p in load_registry() if p.kind == "warehouse")
MEMBER_IDS = ["M000000001", "M000000002", "M000000003"]
GOOD_ROWS = {"outreach_events": 3, "appointment_events": 3, "appointments": 2, "members": 3, "care_gaps": 3, "rx_fills": 3}
# bronze lineage columns: _extra, _source_file, _source_row, _partition_date, _ingested_at, _record_hash
LINEAGE = "NULL, 'edw/{}_20260102.parquet', {}, DATE '2026-01-02', TIMESTAMP '2026-01-02 06:00', 'hash'"


def build_warehouse(con: duckdb.DuckDBPyConnection) -> None:
    ensure_warehouse_tables(con, *AUDIT_TABLES)
    con.execute(ddl(tables.OUTREACH_EVENTS, tables.APPOINTMENT_EVENTS, tables.APPOINTMENTS))
    ensure_tables(con, EDW)
    for n, member in enumerate(MEMBER_IDS, start=1):
        con.execute(
            f"INSERT INTO bronze.edw_members VALUES ('{member}', '{n}EG4TE5MK7{n}', 'VR0000000{n}', '1950-0{n}-15', 'F', "
            f"'H{n}{n}{n}{n}', 'NORTH', 'false', 'true', '2024-01-01', NULL, 'true', 'false', 'true', {LINEAGE.format('members', n)})"
        )
    gaps = [
        ("G1", "BCS", "C01", "OPEN", "NULL", "NULL"),
        ("G2", "COL", "C02", "CLOSED", "'2026-03-01'", "'CLAIM'"),
        ("G3", "CBP", "C14", "OPEN", "NULL", "NULL"),
    ]
    for n, (gap, measure, cms_id, status, closed, source) in enumerate(gaps, start=1):
        con.execute(
            f"INSERT INTO bronze.edw_care_gaps VALUES ('{gap}', '{MEMBER_IDS[n - 1]}', '{measure}', '{cms_id}', '2026', '{status}', "
            f"'2026-01-10', {closed}, {source}, {LINEAGE.format('care_gaps', n)})"
        )
    for n, drug in enumerate(["STATIN", "RASA", "DIABETES"], start=1):
        con.execute(
            f"INSERT INTO bronze.edw_rx_fills VALUES ('F{n}', '{MEMBER_IDS[n - 1]}', '{drug}', '2026-01-0{n}', '{30 * n}', "
            f"{LINEAGE.format('rx_fills', n)})"
        )
    build_members(con)
    build_care_gaps(con)
    build_rx_fills(con)
    for n, (provider, channel, event_type, measures) in enumerate(
        [
            ("ihwa", "IN_HOME", "COMPLETED", "['COL']"),
            ("engage", "SMS", "DELIVERED", "[]"),
            ("dialer", "LIVE_CALL", "REACHED", "['BCS', 'CBP']"),
        ],
        start=1,
    ):
        con.execute(
            f"INSERT INTO silver.outreach_events VALUES (md5('{provider}:E{n}'), '{provider}', 'E{n}', '{MEMBER_IDS[n - 1]}', "
            f"'H{n}{n}{n}{n}', 'NORTH', '{channel}', '{event_type}', {measures}, TIMESTAMP '2026-01-02 1{n}:00', "
            f"'{provider}/file_20260102.csv', {n}, DATE '2026-01-02', 'hash', TIMESTAMP '2026-01-02 06:00', NULL)"
        )
    for n, (provider, appointment, status, booked) in enumerate(
        [
            ("emr_north", "A1", "BOOKED", "TIMESTAMP '2026-01-02 09:00'"),
            ("emr_north", "A1", "COMPLETED", "NULL"),
            ("emr_south", "B1", "BOOKED", "TIMESTAMP '2026-01-02 10:00'"),
        ],
        start=1,
    ):
        con.execute(
            f"INSERT INTO silver.appointment_events VALUES (md5('{provider}:M{n}'), '{provider}', 'M{n}', '{provider}:{appointment}', "
            f"'{MEMBER_IDS[n - 1]}', 'H1111', 'NORTH', '{status}', TIMESTAMP '2026-01-02 1{n}:00', TIMESTAMP '2026-01-20 09:00', "
            f"{booked}, 'COL', '{provider}/SIU_20260102.hl7', {n}, DATE '2026-01-02', 'hash', TIMESTAMP '2026-01-02 06:00', NULL)"
        )
    for table in ("silver.outreach_events", "silver.appointment_events"):
        con.execute(f"UPDATE {table} SET event_hash = {EVENT_HASH.format(row='')}")
    con.execute(
        """INSERT INTO silver.appointments VALUES
        ('emr_north:A1', 'emr_north', 'M000000001', 'H1111', 'NORTH', 'COMPLETED', TIMESTAMP '2026-01-20 09:00',
         TIMESTAMP '2026-01-02 09:00', TIMESTAMP '2026-01-02 12:00', 'COL', 2, 0, md5('a1'), TIMESTAMP '2026-01-02 06:00'),
        ('emr_south:B1', 'emr_south', 'M000000003', 'H3333', 'NORTH', 'BOOKED', TIMESTAMP '2026-01-20 09:00',
         TIMESTAMP '2026-01-02 10:00', TIMESTAMP '2026-01-02 13:00', NULL, 1, 0, md5('b1'), TIMESTAMP '2026-01-02 06:00')"""
    )


@pytest.fixture
def warehouse():
    con = duckdb.connect()
    build_warehouse(con)
    yield con
    con.close()


@pytest.fixture
def warehouse_file(tmp_path):
    path = tmp_path / "warehouse.duckdb"
    with duckdb.connect(str(path)) as con:
        build_warehouse(con)
    return path


def validate(con, table: str, **kwargs):
    return contracts.validate_table(con, "silver", table, contracts.CONTRACTS[table], **kwargs)


def copy_with(con, table: str, **replacements: str) -> None:
    """Insert a copy of the table's first row with some columns replaced by SQL expressions."""
    replace = f" REPLACE ({', '.join(f'{v} AS {k}' for k, v in replacements.items())})" if replacements else ""
    con.execute(f"INSERT INTO silver.{table} SELECT *{replace} FROM (SELECT * FROM silver.{table} ORDER BY rowid LIMIT 1)")


def assert_no_raw_member_ids(metadata: dict, *extra: str) -> None:
    text = json.dumps(metadata, default=str)
    for value in [*MEMBER_IDS, *extra]:
        assert value not in text


@pytest.mark.parametrize("table", sorted(contracts.CONTRACTS))
def test_contract_passes_on_good_rows(warehouse, table):
    outcome = validate(warehouse, table)
    assert outcome.passed, outcome.metadata
    assert outcome.metadata["rows_checked"] == GOOD_ROWS[table]
    assert outcome.metadata["failures"] == 0 and outcome.metadata["failures_by_check"] == {}
    assert "warnings_by_check" not in outcome.metadata


# (table, replaced columns of a copied good row, {label prefix: failing rows})
BAD_ROWS = {
    "event_id_not_md5": ("outreach_events", {"event_id": "'evt-1'"}, {"event_id: str_matches": 1}),
    "unknown_outreach_provider": ("outreach_events", {"provider": "'acme'"}, {"provider: isin": 1}),
    "empty_event_key": ("outreach_events", {"event_key": "''"}, {"event_key: str_length": 1}),
    "malformed_member_id": ("outreach_events", {"member_id": "'M12345'"}, {"member_id: str_matches": 1}),
    "malformed_contract_id": ("outreach_events", {"contract_id": "'R12345'"}, {"contract_id: str_matches": 1}),
    "unknown_channel": ("outreach_events", {"channel": "'FAX'"}, {"channel: isin": 1}),
    "unknown_event_type": ("outreach_events", {"event_type": "'WAVED'"}, {"event_type: isin": 1}),
    "missing_event_ts": ("outreach_events", {"event_ts": "NULL"}, {"event_ts: not_nullable": 1}),
    "missing_source_file": ("outreach_events", {"source_file": "NULL"}, {"source_file: not_nullable": 1}),
    "source_row_zero": ("outreach_events", {"source_row": "0"}, {"source_row: greater_than(0)": 1}),
    "unknown_status": ("appointment_events", {"status": "'PENDING'"}, {"status: isin": 1}),
    "missing_start_ts": ("appointment_events", {"start_ts": "NULL"}, {"start_ts: not_nullable": 1}),
    "unknown_emr": (
        "appointment_events",
        {"provider": "'emr_west'"},
        {"provider: isin": 1, "table: appointment_key does not start with '<provider>:'": 1},
    ),
    "key_of_another_emr": (
        "appointment_events",
        {"appointment_key": "'emr_south:A1'"},
        {"table: appointment_key does not start with '<provider>:'": 1},
    ),
    "more_reschedules_than_events": (
        "appointments",
        {"appointment_key": "'emr_north:A2'", "reschedules": "3"},
        {"table: more reschedules than events": 1},
    ),
    "no_events": (
        "appointments",
        {"appointment_key": "'emr_north:A3'", "events": "0", "reschedules": "0"},
        {"events: greater_than_or_equal_to(1)": 1},
    ),
    "state_hash_not_md5": (
        "appointments",
        {"appointment_key": "'emr_north:A4'", "state_hash": "'abc'"},
        {"state_hash: str_matches": 1},
    ),
    "duplicate_member": ("members", {}, {"member_id: multiple_fields_uniqueness": 2}),
    "malformed_mbi": ("members", {"member_id": "'M000000009'", "mbi": "'1SG4TE5MK73'"}, {"mbi: str_matches": 1}),
    "malformed_vendor_ref": ("members", {"member_id": "'M000000009'", "vendor_ref": "'vr-12'"}, {"vendor_ref: str_matches": 1}),
    "member_contract_id": ("members", {"member_id": "'M000000009'", "contract_id": "'X1'"}, {"contract_id: str_matches": 1}),
    "enrollment_ends_before_start": (
        "members",
        {"member_id": "'M000000009'", "enrollment_end": "DATE '2023-12-31'"},
        {"table: enrollment_end is before enrollment_start": 1},
    ),
    "duplicate_gap": ("care_gaps", {}, {"gap_id: multiple_fields_uniqueness": 2}),
    "unknown_measure": (
        "care_gaps",
        {"gap_id": "'G9'", "measure_code": "'XYZ'"},
        {"measure_code: isin": 1, "table: cms_measure_id does not belong to measure_code": 1},
    ),
    "cms_id_of_another_measure": (
        "care_gaps",
        {"gap_id": "'G9'", "cms_measure_id": "'C02'"},
        {"table: cms_measure_id does not belong to measure_code": 1},
    ),
    "missing_open_date": ("care_gaps", {"gap_id": "'G9'", "open_date": "NULL"}, {"open_date: not_nullable": 1}),
    "closed_before_opened": (
        "care_gaps",
        {"gap_id": "'G9'", "gap_status": "'CLOSED'", "close_date": "DATE '2025-12-31'"},
        {"table: close_date is before open_date": 1},
    ),
    "measurement_year_out_of_range": (
        "care_gaps",
        {"gap_id": "'G9'", "measurement_year": "1999"},
        {"measurement_year: in_range(2000, 2099)": 1},
    ),
    "duplicate_fill": ("rx_fills", {}, {"fill_id: multiple_fields_uniqueness": 2}),
    "unknown_drug_class": ("rx_fills", {"fill_id": "'F9'", "drug_class": "'OPIOID'"}, {"drug_class: isin": 1}),
    "zero_days_supply": ("rx_fills", {"fill_id": "'F9'", "days_supply": "0"}, {"days_supply: in_range(1, 365)": 1}),
    "year_of_supply_and_more": ("rx_fills", {"fill_id": "'F9'", "days_supply": "366"}, {"days_supply: in_range(1, 365)": 1}),
    "missing_fill_date": ("rx_fills", {"fill_id": "'F9'", "fill_date": "NULL"}, {"fill_date: not_nullable": 1}),
}


@pytest.mark.parametrize("case", list(BAD_ROWS))
def test_contract_fails_on_each_kind_of_bad_row(warehouse, case):
    table, replacements, expected = BAD_ROWS[case]
    copy_with(warehouse, table, **replacements)
    outcome = validate(warehouse, table)
    metadata = outcome.metadata
    assert not outcome.passed
    failed = metadata["failures_by_check"]
    assert len(failed) == len(expected), failed
    for prefix, rows in expected.items():
        (label,) = [label for label in failed if label.startswith(prefix)]
        assert failed[label] == rows
        assert any(example.startswith(label) for example in metadata["examples"])
    assert metadata["failures"] == sum(expected.values())
    assert metadata["rows_checked"] == GOOD_ROWS[table] + 1
    assert_no_raw_member_ids(metadata, "M000000009", "M12345")


def test_examples_mask_member_ids_and_point_at_the_source_row(warehouse):
    copy_with(warehouse, "outreach_events", member_id="'M12345'", source_row="77")
    copy_with(warehouse, "members")
    (example,) = validate(warehouse, "outreach_events").metadata["examples"]
    assert example == "member_id: str_matches('^M[0-9]{9}$') (member_id=****45) at ihwa/file_20260102.csv:77"
    (duplicate,) = validate(warehouse, "members").metadata["examples"]
    assert re.fullmatch(r"member_id: multiple_fields_uniqueness \(member_id=\*{8}0[123] x2\)", duplicate)


def test_unreadable_boolean_in_bronze_fails_the_members_contract(warehouse):
    warehouse.execute(
        f"INSERT INTO bronze.edw_members VALUES ('M000000004', NULL, NULL, '1950-01-01', 'M', 'H1111', 'NORTH', 'maybe', 'false', "
        f"'2024-01-01', NULL, 'false', 'false', 'false', {LINEAGE.format('members', 4)})"
    )
    build_members(warehouse)
    outcome = validate(warehouse, "members")
    assert outcome.metadata["failures_by_check"] == {"dual_status: not_nullable": 1}
    # mbi and vendor_ref may be missing: the crosswalk skips them.
    assert outcome.metadata["rows_checked"] == 4


@pytest.mark.parametrize(
    "table, replacements, warning",
    [
        (
            "outreach_events",
            {"measure_codes": "['BCS', 'D08']"},
            "table: measure_codes names a measure that is not a care-gap measure",
        ),
        ("appointment_events", {"measure_code": "'FLU'"}, "table: measure_code is not a care-gap measure"),
        (
            "care_gaps",
            {"gap_id": "'G9'", "gap_status": "'CLOSED'", "close_date": "NULL"},
            "table: gap_status disagrees with close_date",
        ),
    ],
)
def test_warning_rules_are_reported_without_failing(warehouse, table, replacements, warning):
    copy_with(warehouse, table, **replacements)
    outcome = validate(warehouse, table)
    assert outcome.passed and outcome.metadata["failures_by_check"] == {}
    assert outcome.metadata["warnings_by_check"] == {warning: 1}
    assert outcome.metadata["warning_examples"][0].startswith(warning)


def test_wrong_type_and_missing_column_are_reported_by_pandera(warehouse):
    warehouse.execute("ALTER TABLE silver.rx_fills ALTER days_supply TYPE VARCHAR")
    outcome = validate(warehouse, "rx_fills")
    assert outcome.metadata["failures_by_check"] == {"days_supply: dtype('int32')": 1}
    assert outcome.metadata["examples"] == ["days_supply: dtype('int32') (found string)"]
    warehouse.execute("ALTER TABLE silver.outreach_events DROP COLUMN region")
    copy_with(warehouse, "outreach_events", channel="'FAX'")
    failed = validate(warehouse, "outreach_events").metadata["failures_by_check"]
    assert failed.pop("region: column_in_dataframe") == 1
    assert list(failed) == ["channel: isin(('SMS', 'EMAIL', 'LIVE_CALL', 'IVR', 'MAIL', 'IN_HOME'))"]


def test_missing_table_fails(warehouse):
    outcome = contracts.validate_table(warehouse, "silver", "nothing_here", contracts.RxFills)
    assert not outcome.passed and outcome.metadata["error"] == "table does not exist"


def test_one_partition_is_validated_through_a_filter(warehouse):
    copy_with(warehouse, "outreach_events", channel="'FAX'", partition_date="DATE '2026-01-03'")
    day = validate(warehouse, "outreach_events", where=date(2026, 1, 2))
    assert day.passed and day.metadata["rows_checked"] == 3
    assert day.metadata["scope"] == "partition_date in 2026-01-02"
    late = validate(warehouse, "outreach_events", where=[date(2026, 1, 3)])
    assert not late.passed and late.metadata["rows_checked"] == 1
    assert not validate(warehouse, "outreach_events").passed
    with pytest.raises(ValueError, match="partition_date"):
        validate(warehouse, "members", where=date(2026, 1, 2))


@pytest.mark.parametrize("table", ["outreach_events", "appointment_events"])
def test_a_range_validated_at_once_gives_each_day_its_own_outcome(warehouse, table):
    """One grouped pass over a range: each day's outcome, examples included, is the one validate_table gives that day."""
    wrong = {"outreach_events": {"channel": "'FAX'"}, "appointment_events": {"status": "'LOST'"}}[table]
    warn = {"outreach_events": {"measure_codes": "['D08']"}, "appointment_events": {"measure_code": "'FLU'"}}[table]
    for n in range(3):
        copy_with(warehouse, table, **wrong, source_row=str(100 + n), partition_date="DATE '2026-01-03'")
    copy_with(warehouse, table, **warn, partition_date="DATE '2026-01-04'")
    days = [date(2026, 1, d) for d in (1, 2, 3, 4)]
    outcomes = contracts.validate_partitions(warehouse, "silver", table, contracts.CONTRACTS[table], days)
    assert list(outcomes) == days
    for day in days:
        assert outcomes[day].passed == validate(warehouse, table, where=day).passed
        assert outcomes[day].metadata == validate(warehouse, table, where=day).metadata
    assert [o.passed for o in outcomes.values()] == [True, True, False, True]
    assert [o.metadata["rows_checked"] for o in outcomes.values()] == [0, GOOD_ROWS[table], 3, 1]
    assert outcomes[days[2]].metadata["failures"] == 3 and len(outcomes[days[2]].metadata["examples"]) == 3
    assert list(outcomes[days[3]].metadata["warnings_by_check"].values()) == [1]


def test_a_range_counts_repeated_keys_per_day_as_validate_table_does(warehouse):
    """Uniqueness grouped by day: no partitioned contract declares a key today, but the shared rules engine
    counts one per day for any contract that does, with each day's outcome the one validate_table gives."""
    keyed = copy.deepcopy(contracts.CONTRACTS["outreach_events"])
    keyed.unique = ["event_id"]
    for n in range(3):  # three copies of one event on the 3rd: three rows in a repeated key
        copy_with(warehouse, "outreach_events", source_row=str(100 + n), partition_date="DATE '2026-01-03'")
    days = [date(2026, 1, d) for d in (1, 2, 3)]
    outcomes = contracts.validate_partitions(warehouse, "silver", "outreach_events", keyed, days)
    for day in days:
        assert (
            outcomes[day].metadata == contracts.validate_table(warehouse, "silver", "outreach_events", keyed, where=day).metadata
        )
    assert [o.passed for o in outcomes.values()] == [True, True, False]
    assert outcomes[days[2]].metadata["failures_by_check"] == {"event_id: multiple_fields_uniqueness": 3}
    assert re.search(r"x3\)$", outcomes[days[2]].metadata["examples"][0])


def test_a_remembered_outcome_covers_its_rows_still_there_and_only_later_rows_are_validated(warehouse):
    """A day's contract outcome is kept; a later write (an append) is checked by its own rows, also when it
    took some remembered rows out (a conflicting event's earlier copy moved to quarantine), as long as the
    remembered rows had all passed. With a failure remembered, rows taken out send the day to a whole validation."""
    day = date(2026, 1, 2)

    def evaluate():
        outcome = check_memo.validate_partitions(warehouse, "outreach_events", [day])[day]
        return outcome.passed, outcome.metadata["evaluation"], outcome.metadata["rows_checked"], outcome.metadata["failures"]

    def append(key: str, written: str, **replacements: str) -> None:
        copy_with(
            warehouse,
            "outreach_events",
            event_id=f"md5('ihwa:{key}')",
            event_key=f"'{key}'",
            loaded_at=f"TIMESTAMP '{written}'",
            **replacements,
        )

    assert evaluate() == (True, "validated", 3, 0)
    assert evaluate() == (True, "reused", 3, 0)
    warehouse.execute("DELETE FROM silver.outreach_events WHERE event_key = 'E2'")
    append("E4", "2026-01-03 06:00")
    assert evaluate() == (True, "validated the new rows", 3, 0)
    append("E5", "2026-01-04 06:00", member_id="'not-a-member-id'")
    assert evaluate() == (False, "validated the new rows", 4, 1)
    warehouse.execute("DELETE FROM silver.outreach_events WHERE event_key = 'E4'")
    append("E6", "2026-01-05 06:00")
    assert evaluate() == (False, "validated", 4, 1)


@pytest.mark.parametrize("table", ["outreach_events", "care_gaps"])
def test_same_verdicts_as_pandera_validating_the_ibis_table_itself(warehouse, table):
    """On a small table pandera's own lazy validation is affordable: it must name the same failed checks."""
    if table == "outreach_events":
        copy_with(warehouse, table, member_id="'X1'", channel="'FAX'")
        copy_with(warehouse, table, event_ts="NULL", source_row="-1")
    else:
        copy_with(warehouse, table)
        copy_with(warehouse, table, gap_id="'G9'", measure_code="'XYZ'", open_date="NULL")
        copy_with(warehouse, table, gap_id="'G8'", gap_status="'CLOSED'", close_date="DATE '2025-01-01'")
    ours = {label.split(": ", 1)[1] for label in validate(warehouse, table).metadata["failures_by_check"]}
    model = contracts.CONTRACTS[table]
    with pytest.raises(pa.errors.SchemaErrors) as errors:
        model.validate(ibis.duckdb.from_connection(warehouse).table(table, database="silver"), lazy=True)
    theirs = set(errors.value.failure_cases["check"])
    assert ours == theirs and len(ours) >= 4


def test_borrowed_connection_keeps_its_session_settings(warehouse):
    warehouse.execute("SET TimeZone = 'America/Chicago'")
    assert validate(warehouse, "outreach_events").passed
    assert warehouse.execute("SELECT current_setting('TimeZone')").fetchone()[0] == "America/Chicago"
    assert warehouse.execute("SELECT count(*) FROM silver.members").fetchone()[0] == 3


def test_validates_from_a_path_read_only(warehouse_file):
    assert validate(str(warehouse_file), "care_gaps").passed


# --- the asset checks ---------------------------------------------------------------------

CONTRACT_CHECKS = [
    checks.check_contract_outreach_events,
    checks.check_contract_appointment_events,
    checks.check_contract_appointments,
    checks.check_contract_members,
    checks.check_contract_care_gaps,
    checks.check_contract_rx_fills,
]


def test_check_definitions():
    specs = {spec.asset_key.path[1]: spec for check in CONTRACT_CHECKS for spec in check.check_specs}
    assert set(specs) == set(contracts.CONTRACTS)
    assert {t for t, s in specs.items() if s.blocking} == set(contracts.CONTRACTS) - {"appointments"}
    for table, spec in specs.items():
        assert spec.name == f"check_contract_{table}"
        assert spec.asset_key == dg.AssetKey(["silver", table])
    assert all(check.node_def.pool == WAREHOUSE_POOL for check in CONTRACT_CHECKS)


def test_checks_invoked_directly_with_the_resource(warehouse_file):
    resources = {"duckdb": DuckDBResource(database=str(warehouse_file))}
    for check in CONTRACT_CHECKS:
        result = check(dg.build_asset_check_context(resources=resources))
        assert result.passed, result.metadata
    with duckdb.connect(str(warehouse_file)) as con:
        copy_with(con, "rx_fills", fill_id="'F9'", days_supply="0")
        copy_with(con, "care_gaps", gap_id="'G9'", gap_status="'CLOSED'", close_date="NULL")
    failed = checks.check_contract_rx_fills(dg.build_asset_check_context(resources=resources))
    assert not failed.passed and failed.severity == dg.AssetCheckSeverity.ERROR
    assert failed.metadata["failures_by_check"].value == {"days_supply: in_range(1, 365)": 1}
    assert failed.metadata["rows_checked"].value == 4
    warned = checks.check_contract_care_gaps(dg.build_asset_check_context(resources=resources))
    assert not warned.passed and warned.severity == dg.AssetCheckSeverity.WARN
    assert warned.metadata["warnings_by_check"].value == {"table: gap_status disagrees with close_date": 1}


@pytest.mark.parametrize("broken", [False, True])
def test_blocking_contract_check_in_a_real_run(warehouse_file, broken):
    """A stand-in silver/rx_fills asset built by the real silver SQL; gold downstream runs only if the contract holds."""
    if broken:
        with duckdb.connect(str(warehouse_file)) as con:
            con.execute(
                f"INSERT INTO bronze.edw_rx_fills VALUES ('F4', 'M000000001', 'STATIN', '2026-01-04', '0', {LINEAGE.format('rx_fills', 4)})"
            )

    @dg.asset(key=["silver", "rx_fills"])
    def rx_fills(duckdb: DuckDBResource) -> None:
        with duckdb.get_connection() as con:
            build_rx_fills(con)

    @dg.asset(key=["gold", "adherence_stand_in"], deps=[rx_fills])
    def adherence() -> None:
        return None

    result = dg.materialize(
        [rx_fills, adherence, checks.check_contract_rx_fills],
        resources={"duckdb": DuckDBResource(database=str(warehouse_file))},
        raise_on_error=False,
    )
    (evaluation,) = result.get_asset_check_evaluations()
    materialized = {e.asset_key for e in result.get_asset_materialization_events()}
    assert evaluation.check_name == "check_contract_rx_fills"
    assert evaluation.passed is not broken
    assert evaluation.metadata["rows_checked"].value == 3 + broken
    assert result.success is not broken
    assert (dg.AssetKey(["gold", "adherence_stand_in"]) in materialized) is not broken


def test_every_contract_holds_on_a_generated_and_ingested_world(request, tmp_path):
    """The pipeline's own output (faults injected and quarantined upstream) satisfies every contract."""
    try:
        ingested = request.getfixturevalue("ingested")  # session fixture of conftest.py, shared with test_silver
    except pytest.FixtureLookupError:
        pytest.skip("needs the generated-world fixture `ingested` (stars_assets_tests/conftest.py)")
    warehouse = tmp_path / "warehouse.duckdb"
    shutil.copy(ingested.warehouse, warehouse)
    resources = {"duckdb": DuckDBResource(database=str(warehouse))}
    for check in CONTRACT_CHECKS:
        result = check(dg.build_asset_check_context(resources=resources))
        assert result.passed, result.metadata
        assert result.metadata["rows_checked"].value > 0
