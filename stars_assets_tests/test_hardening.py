"""Ingestion hardening with real crafted files: every file written to break the pipeline fails only
itself (or only its own rows), is accounted for in the manifest with a status and a reason, and
leaves other vendors' and days' results exactly as a clean run writes them.

Each case states what its rows must become: loaded with the right values, or quarantined with the
right reason; and for line formats, the file's physical lines = rows loaded + rows rejected +
skipped lines (the header).
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import shutil
import time
from datetime import date, timedelta
from pathlib import Path

import dagster as dg
import duckdb
import pandas as pd
import pytest

from stars_assets.defs.bronze.assets import bronze_assets
from stars_assets.lib.bronze.landing import MAX_LINE_BYTES
from stars_assets.lib.bronze.load import load_partition
from stars_assets.lib.providers import load_registry
from stars_assets_tests.conftest import ingest, query
from stars_assets_tests.test_faults import DIALER_HEADER, dialer_row, engage_line, land

PROVIDERS = {p.name: p for p in load_registry()}
DAY = date(2026, 10, 1)
YMD = DAY.strftime("%Y%m%d")
OTHER_DAY = DAY - timedelta(days=1)
OTHER_YMD = OTHER_DAY.strftime("%Y%m%d")
MBI = "1EG4TE5MK73"


def materialize_bronze(landing: Path, warehouse: Path, *providers: str, day: date = DAY) -> dg.ExecuteInProcessResult:
    return ingest(landing, warehouse, day, day, assets=[a for a in bronze_assets if a.key.path[1] in providers])


def physical_lines(path: Path) -> int:
    data = gzip.decompress(path.read_bytes()) if path.name.endswith(".gz") else path.read_bytes()
    return data.count(b"\n") + (0 if data.endswith(b"\n") or not data else 1)


def hl7_message(control: str, appointment: str, pid3: str, field: str = "|", component: str = "^", repetition: str = "~") -> str:
    f, c = field, component
    msh = f"MSH{f}{c}{repetition}\\&{f}EMR{f}NORTH{f}STARS{f}PAYER{f}20261001093000-0400{f}{f}SIU{c}S12{c}SIU_S12{f}{control}{f}P{f}2.5.1"
    sch = f.join(
        [
            "SCH",
            appointment,
            appointment,
            "",
            "",
            "",
            "",
            f"BCS{c}Care gap visit",
            "",
            "",
            "",
            f"{c * 3}20261015100000-0400{c}20261015103000-0400",
        ]
        + [""] * 13
        + ["Booked"]
    )
    pid = f"PID{f}1{f}{f}{pid3}"
    return "\r".join([msh, sch, pid]) + "\r\n"


def fhir_entry(appointment: str, patient: str = "M100000001") -> dict:
    return {
        "resource": {
            "resourceType": "Appointment",
            "id": appointment,
            "meta": {"versionId": "1", "lastUpdated": "2026-10-01T09:00:00-05:00"},
            "status": "booked",
            "created": "2026-10-01T09:00:00-05:00",
            "start": "2026-10-15T10:00:00-05:00",
            "reasonCode": [{"coding": [{"system": "urn:payer:stars-measure", "code": "BCS"}]}],
            "participant": [{"actor": {"identifier": {"system": "urn:payer:member-id", "value": patient}}}],
        }
    }


def bundle(*entries) -> str:
    return json.dumps({"resourceType": "Bundle", "type": "collection", "entry": list(entries)}, indent=1)


CLEAN_FILES = [
    name
    for ymd in (OTHER_YMD, YMD)
    for name in (
        f"dialer/dialer_calls_{ymd}.csv",
        f"engage/engage_events_{ymd}_00.jsonl.gz",
        f"emr_north/SIU_{ymd}.hl7",
        f"emr_south/appointments_{ymd}.json",
    )
]


def clean_files(landing: Path) -> None:
    """Good deliveries of every crafted vendor: the other day, and beside the bad files on DAY."""
    for ymd in (OTHER_YMD, YMD):
        land(landing / "dialer" / f"dialer_calls_{ymd}.csv", DIALER_HEADER + "".join(dialer_row(f"G{ymd}{i}") for i in range(5)))
        land(
            landing / "engage" / f"engage_events_{ymd}_00.jsonl.gz",
            gzip.compress("".join(engage_line(f"g{ymd}{i}") for i in range(5)).encode()),
        )
        land(landing / "emr_north" / f"SIU_{ymd}.hl7", hl7_message(f"N{ymd}1", "NA000000001", f"{MBI}^^^CMS^MB"))
        land(landing / "emr_south" / f"appointments_{ymd}.json", bundle(fhir_entry(f"apt-{ymd}")))


def bad_files(landing: Path, outside: Path) -> None:
    dialer, engage, north, south = (landing / p for p in ("dialer", "engage", "emr_north", "emr_south"))
    # one Windows-1252 byte in a file of valid rows: only that row goes
    rows = [dialer_row(f"W{i}") for i in range(30)]
    rows[7] = dialer_row("W7", "Jos\xe9 Pe\xf1a")
    land(
        dialer / f"dialer_calls_{YMD}_02.csv",
        DIALER_HEADER.encode() + b"".join(r.encode("cp1252") if i == 7 else r.encode("utf-8") for i, r in enumerate(rows)),
    )
    # an unterminated quote in the middle: the row after it is valid and loads
    land(
        dialer / f"dialer_calls_{YMD}_03.csv",
        DIALER_HEADER
        + dialer_row("Q1")
        + '"Q2","VR0000000A","FALL","2026-10-01 10:15:00","CONNECTED","95","LIVE","BCS","Pat\r\n'
        + dialer_row("Q3")
        + dialer_row("Q4"),
    )
    # names and places the pipeline must account for without reading
    land(dialer / "vendor_notes.txt", "call volumes were low today\n")
    land(dialer / "archive" / f"dialer_calls_{YMD}_04.csv", DIALER_HEADER + dialer_row("S1"))
    land(outside / f"dialer_calls_{YMD}.csv", DIALER_HEADER + dialer_row("X1"))
    (dialer / f"dialer_calls_{YMD}_05.csv").symlink_to(outside / f"dialer_calls_{YMD}.csv")
    land(
        dialer / f"dialer_calls_{YMD}_06.csv", DIALER_HEADER + dialer_row("U1"), age_seconds=-600
    )  # still uploading (its clock runs ahead)

    # gzip JSON lines: an extremely long last line (the parser would lose it), a long line mid-file,
    # a file that is not gzip at all, one cut short
    huge = json.dumps({"event_id": "huge", "pad": "x" * 70_000_000})
    land(
        engage / f"engage_events_{YMD}_01.jsonl.gz",
        gzip.compress(("".join(engage_line(f"h{i}") for i in range(3)) + huge).encode(), 1),
    )
    long = json.dumps({"event_id": "long", "pad": "y" * (MAX_LINE_BYTES + 10)}) + "\n"
    land(
        engage / f"engage_events_{YMD}_02.jsonl.gz",
        gzip.compress((engage_line("m1") + long + engage_line("m3") + "\n" + engage_line("m5")).encode(), 1),
    )
    land(engage / f"engage_events_{YMD}_03.jsonl.gz", b"PK\x03\x04 this is a zip file, not gzip" * 10)
    land(engage / f"engage_events_{YMD}_04.jsonl.gz", gzip.compress(os.urandom(50_000).hex().encode())[:-300])
    land(
        engage / f"engage_events_{YMD}_05.jsonl.gz",
        gzip.compress(
            (
                engage_line("d1") + engage_line("deep").rstrip("}\n") + ', "nest": ' + "[" * 100_000 + "]" * 100_000 + "}\n"
            ).encode()
        ),
    )

    # HL7: MLLP framing; other separators declared in MSH-2; the MBI in a later repetition of PID-3
    land(
        north / f"SIU_{YMD}_02.hl7", "\x0b" + hl7_message(f"N{YMD}2", "NA000000002", f"{MBI}^^^CMS^MB").rstrip("\r\n") + "\x1c\r"
    )
    land(
        north / f"SIU_{YMD}_03.hl7",
        hl7_message(f"N{YMD}3", "NA000000003", f"{MBI}$$$CMS$MB", field="#", component="$", repetition="*"),
    )
    land(north / f"SIU_{YMD}_04.hl7", hl7_message(f"N{YMD}4", "NA000000004", f"M100000001^^^PAYER^MR~{MBI}^^^CMS^MB"))
    land(
        north / f"SIU_{YMD}_05.hl7",
        hl7_message(f"N{YMD}5", "NA000000005", f"{MBI}^^^CMS^MB").encode()
        + hl7_message(f"N{YMD}6", "NA000000006", f"{MBI}^^^CMS^MB").replace("Care gap", "Caf\xe9 gap").encode("cp1252")
        + "".join(hl7_message(f"N{YMD}{n}", f"NA00000000{n}", f"{MBI}^^^CMS^MB") for n in range(7, 17)).encode(),
    )

    # FHIR: entry that is not a list; a document nested far too deep
    land(
        south / f"appointments_{YMD}_02.json",
        json.dumps({"resourceType": "Bundle", "type": "collection", "entry": {"resource": fhir_entry("apt-x")["resource"]}}),
    )
    land(south / f"appointments_{YMD}_03.json", '{"resourceType": "Bundle", "entry": ' + "[" * 200_000 + "]" * 200_000 + "}")


@pytest.fixture(scope="module")
def crafted(tmp_path_factory):
    base = tmp_path_factory.mktemp("hardening")
    clean, landing, outside = base / "clean", base / "landing", base / "outside"
    clean_files(clean)
    clean_files(landing)
    bad_files(landing, outside)
    providers = ("dialer", "engage", "emr_north", "emr_south")
    runs = {}
    for name, folder in (("clean", clean), ("hardened", landing)):
        warehouse = base / f"{name}.duckdb"
        runs[name] = (folder, warehouse, [materialize_bronze(folder, warehouse, *providers, day=d) for d in (OTHER_DAY, DAY)])
    return runs


def manifest(warehouse: Path):
    return query(warehouse, "SELECT * FROM audit.file_manifest ORDER BY file_path").set_index("file_path")


def rejects(warehouse: Path, file: str) -> list[tuple[int, str]]:
    rows = query(
        warehouse,
        "SELECT source_row, reason FROM audit.quarantine WHERE source_file = $f AND source_row IS NOT NULL ORDER BY source_row",
        {"f": file},
    )
    return [tuple(r) for r in rows.itertuples(index=False)]


def test_no_run_fails_and_every_entry_is_accounted_for(crafted):
    landing, warehouse, results = crafted["hardened"]
    assert all(r.success for r in results)
    checks = [(e.asset_key.path[1], e.check_name, e.passed) for r in results for e in r.get_asset_check_evaluations()]
    assert all(passed for _, name, passed in checks if name == "check_reconciliation_files"), checks
    # the bad files make the quarantine check warn on DAY
    assert not all(passed for _, name, passed in checks if name == "check_validity_rows_quarantined")

    m = manifest(warehouse)
    statuses = m["status"].to_dict()
    assert statuses["dialer/vendor_notes.txt"] == "unrecognized_name"
    assert statuses[f"dialer/archive/dialer_calls_{YMD}_04.csv"] == "in_subfolder"
    assert statuses[f"dialer/dialer_calls_{YMD}_05.csv"] == "outside_folder"
    assert statuses[f"dialer/dialer_calls_{YMD}_06.csv"] == "still_being_written"
    assert m.loc["dialer/vendor_notes.txt", "partition_date"] is None or str(
        m.loc["dialer/vendor_notes.txt", "partition_date"]
    ) in ("NaT", "None")
    # nothing of them reached bronze: the link's target and the sub-folder's rows are not loaded
    loaded_ids = set(query(warehouse, "SELECT call_id FROM bronze.dialer")["call_id"])
    assert not loaded_ids & {"S1", "X1", "U1"}
    # every file on disk (walked, links not followed) has exactly one manifest row
    on_disk = {f"{p.relative_to(landing).as_posix()}" for p in landing.rglob("*") if p.is_file() or p.is_symlink()}
    assert on_disk == set(m.index)
    # not-read entries are also visible in the quarantine, with their reason
    visible = set(
        query(warehouse, "SELECT source_file, reason FROM audit.quarantine WHERE source_row IS NULL").itertuples(
            index=False, name=None
        )
    )
    assert {
        ("dialer/vendor_notes.txt", "unrecognized_name"),
        (f"dialer/dialer_calls_{YMD}_05.csv", "outside_folder"),
        (f"dialer/archive/dialer_calls_{YMD}_04.csv", "in_subfolder"),
    } <= visible


@pytest.mark.parametrize(
    "file, loaded, quarantined, reason",
    [
        (f"dialer/dialer_calls_{YMD}_02.csv", 29, [(9, "invalid_encoding")], None),
        (f"dialer/dialer_calls_{YMD}_03.csv", 3, [(3, "malformed_quoting")], None),
        (f"engage/engage_events_{YMD}_01.jsonl.gz", 3, [(4, "line_too_long")], None),
        (f"engage/engage_events_{YMD}_02.jsonl.gz", 3, [(2, "line_too_long")], None),
        (f"engage/engage_events_{YMD}_05.jsonl.gz", 2, [], None),
        (f"emr_north/SIU_{YMD}_02.hl7", 1, [], None),
        (f"emr_north/SIU_{YMD}_03.hl7", 1, [], None),
        (f"emr_north/SIU_{YMD}_04.hl7", 1, [], None),
        (f"emr_north/SIU_{YMD}_05.hl7", 11, [(2, "invalid_encoding")], None),
        (f"engage/engage_events_{YMD}_03.jsonl.gz", 0, [], "not_gzip"),
        (f"engage/engage_events_{YMD}_04.jsonl.gz", 0, [], "truncated_gzip"),
        (f"emr_south/appointments_{YMD}_02.json", 0, [], "malformed_bundle"),
        (f"emr_south/appointments_{YMD}_03.json", 0, [], "too_deeply_nested"),
    ],
)
def test_each_bad_file_fails_only_itself_or_its_own_rows(crafted, file, loaded, quarantined, reason):
    landing, warehouse, _ = crafted["hardened"]
    row = manifest(warehouse).loc[file]
    assert row["status"] == ("quarantined" if reason else "loaded"), (row["status"], row["reason"], row["detail"])
    if reason:
        assert row["reason"] == reason and row["detail"]
        return
    assert (row["rows_loaded"], rejects(warehouse, file)) == (loaded, quarantined)
    table = file.split("/")[0]
    assert query(warehouse, f"SELECT count(*) AS n FROM bronze.{table} WHERE _source_file = $f", {"f": file})["n"][0] == loaded
    if not pd.isna(row["line_count"]):
        # every physical line is a loaded row, a quarantined row or a skipped (header, blank) line
        assert row["line_count"] == physical_lines(landing / file)
        assert row["line_count"] == row["rows_loaded"] + row["rows_rejected"] + row["lines_skipped"]


def test_recovered_and_framed_rows_carry_the_right_values_and_lines(crafted):
    landing, warehouse, _ = crafted["hardened"]
    quoted = query(
        warehouse,
        f"SELECT call_id, _source_row FROM bronze.dialer WHERE _source_file = 'dialer/dialer_calls_{YMD}_03.csv' "
        "ORDER BY _source_row",
    )
    assert quoted.values.tolist() == [["Q1", 2], ["Q3", 4], ["Q4", 5]]
    for call_id, line in (("Q3", 4), ("Q4", 5)):
        assert (landing / f"dialer/dialer_calls_{YMD}_03.csv").read_text().splitlines()[line - 1].startswith(f'"{call_id}"')
    encoded = query(
        warehouse,
        f"SELECT call_id, _source_row FROM bronze.dialer WHERE _source_file = 'dialer/dialer_calls_{YMD}_02.csv' "
        "AND call_id IN ('W6', 'W8')  ORDER BY 1",
    )
    assert encoded.values.tolist() == [["W6", 8], ["W8", 10]]
    north = query(
        warehouse,
        "SELECT message_control_id, patient_id, start_ts, trigger_event, placer_appointment_id FROM bronze.emr_north "
        "WHERE _source_file IN (SELECT unnest($f)) ORDER BY 1",
        {"f": [f"emr_north/SIU_{YMD}_0{n}.hl7" for n in (2, 3, 4)]},
    )
    assert north.values.tolist() == [[f"N{YMD}{n}", MBI, "20261015100000-0400", "S12", f"NA00000000{n}"] for n in (2, 3, 4)]
    # a line past the parser's limit is quarantined with its number, and the rows after it keep theirs
    mid = query(
        warehouse,
        f"SELECT event_id, _source_row FROM bronze.engage WHERE _source_file = 'engage/engage_events_{YMD}_02.jsonl.gz' "
        "ORDER BY 2",
    )
    assert mid.values.tolist() == [["m1", 1], ["m3", 3], ["m5", 5]]
    deep = query(warehouse, "SELECT event_id, length(_extra) > 200000 AS kept FROM bronze.engage WHERE event_id = 'deep'")
    assert deep.values.tolist() == [["deep", True]]  # a deep JSON line is data, kept in _extra


def test_other_vendors_and_days_are_exactly_what_a_clean_run_writes(crafted):
    _, clean, clean_results = crafted["clean"]
    _, hardened, _ = crafted["hardened"]
    assert all(r.success for r in clean_results)
    for table in ("dialer", "engage", "emr_north", "emr_south"):
        sql = f"SELECT * EXCLUDE (_ingested_at) FROM bronze.{table} WHERE _source_file IN (SELECT unnest($files)) ORDER BY ALL"
        expected = query(clean, sql, {"files": CLEAN_FILES})
        assert len(expected) and expected.equals(query(hardened, sql, {"files": CLEAN_FILES})), table
        # and the clean run holds nothing else
        assert len(expected) == query(clean, f"SELECT count(*) AS n FROM bronze.{table}")["n"][0]


def test_a_settled_upload_loads_on_the_next_run(crafted, tmp_path):
    landing, warehouse, _ = crafted["hardened"]
    copy_landing, copy = tmp_path / "landing", tmp_path / "copy.duckdb"
    shutil.copytree(landing, copy_landing, symlinks=True)
    shutil.copy(warehouse, copy)
    uploading = copy_landing / "dialer" / f"dialer_calls_{YMD}_06.csv"
    stamp = time.time() - 60
    os.utime(uploading, (stamp, stamp))
    assert materialize_bronze(copy_landing, copy, "dialer").success
    m = manifest(copy)
    assert m.loc[f"dialer/dialer_calls_{YMD}_06.csv", "status"] == "loaded"
    assert query(copy, "SELECT count(*) AS n FROM bronze.dialer WHERE call_id = 'U1'")["n"][0] == 1


def test_a_file_rewritten_in_place_with_the_same_size_and_time_never_keeps_stale_rows(tmp_path):
    landing, warehouse = tmp_path / "landing", tmp_path / "warehouse.duckdb"
    path = land(landing / "dialer" / f"dialer_calls_{YMD}.csv", DIALER_HEADER + dialer_row("C1") + dialer_row("C2"))
    assert materialize_bronze(landing, warehouse, "dialer").success
    before = os.stat(path)
    path.write_bytes(path.read_bytes().replace(b'"C2"', b'"C9"'))
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert (os.stat(path).st_size, os.stat(path).st_mtime_ns) == (before.st_size, before.st_mtime_ns)
    again = materialize_bronze(landing, warehouse, "dialer")
    assert again.success
    modes = [
        e.materialization.metadata["mode"].value
        for e in again.get_asset_materialization_events()
        if "mode" in e.materialization.metadata
    ]
    assert modes == ["replace"]
    assert sorted(query(warehouse, "SELECT call_id FROM bronze.dialer")["call_id"]) == ["C1", "C9"]
    assert (
        manifest(warehouse).loc[f"dialer/dialer_calls_{YMD}.csv", "content_hash"] == hashlib.sha256(path.read_bytes()).hexdigest()
    )
    # and with nothing changed, nothing is read
    third = materialize_bronze(landing, warehouse, "dialer")
    assert [
        e.materialization.metadata["mode"].value
        for e in third.get_asset_materialization_events()
        if "mode" in e.materialization.metadata
    ] == ["unchanged"]


def test_a_declared_fallback_encoding_decodes_the_file_and_flags_it(tmp_path):
    landing = tmp_path / "landing"
    dialer = PROVIDERS["dialer"].model_copy(update={"fallback_encoding": "windows-1252"})
    content = DIALER_HEADER + dialer_row("F1", "Jos\xe9 Pe\xf1a") + dialer_row("F2", "Ren\xe9e C\xf4t\xe9 \u20ac")
    land(landing / "dialer" / f"dialer_calls_{YMD}.csv", content.encode("cp1252"))
    land(landing / "dialer" / f"dialer_calls_{YMD}_02.csv", "\ufeff" + DIALER_HEADER + dialer_row("F3", "Zo\xeb M\xfcller"))
    with duckdb.connect(str(tmp_path / "warehouse.duckdb")) as con:
        load = load_partition(con, dialer, landing, DAY, "run-1")
        outcomes = {o.file_path: o for o in load.files}
        flagged = outcomes[f"dialer/dialer_calls_{YMD}.csv"]
        assert (flagged.status, flagged.reason, flagged.rows_loaded, flagged.rows_rejected) == (
            "loaded",
            "fallback_encoding",
            2,
            0,
        )
        assert "windows-1252" in flagged.detail
        assert outcomes[f"dialer/dialer_calls_{YMD}_02.csv"].reason is None  # valid UTF-8 is not flagged
        names = con.execute("SELECT call_id, agent_name FROM bronze.dialer ORDER BY 1").fetchall()
        assert names == [("F1", "Jos\xe9 Pe\xf1a"), ("F2", "Ren\xe9e C\xf4t\xe9 \u20ac"), ("F3", "Zo\xeb M\xfcller")]


def test_without_a_fallback_a_file_mostly_in_another_encoding_is_quarantined_whole(tmp_path):
    landing = tmp_path / "landing"
    rows = "".join(dialer_row(f"E{i}", "Jos\xe9 Pe\xf1a" if i % 2 else "Pat Lee") for i in range(10))
    land(landing / "dialer" / f"dialer_calls_{YMD}.csv", (DIALER_HEADER + rows).encode("cp1252"))
    with duckdb.connect(str(tmp_path / "warehouse.duckdb")) as con:
        (outcome,) = load_partition(con, PROVIDERS["dialer"], landing, DAY, "run-1").files
        assert (outcome.status, outcome.reason) == ("quarantined", "wrong_encoding")
        assert con.execute("SELECT count(*) FROM bronze.dialer").fetchone()[0] == 0


# --- silver: identity, conflicting duplicates, exact time, thresholds on a quiet day ------------

SILVER_DAY = date(2026, 11, 2)  # the day after the end of daylight saving time
SILVER_OTHER_DAY = date(2026, 11, 1)
MBIS = {
    "M100000001": "1EG4TE5MK73",
    "M100000002": "2FH5TE6MK84",
    "M100000003": "3AC4DE7FG95",
    "M100000004": "3AC4DE7FG95",
    "M100000005": "4AC4DE7FG96",
    "M100000006": "5AC4DE7FG97",
}


def members_frame() -> pd.DataFrame:
    rows = []
    for number, (member, mbi) in enumerate(MBIS.items(), start=1):
        rows.append(
            {
                "member_id": member,
                "mbi": mbi,
                "vendor_ref": f"VR0000000{number}",
                "birth_date": date(1950, 1, number),
                "sex": "F",
                "contract_id": "H1111",
                "region": "NORTH",
                "dual_status": False,
                "lis_status": False,
                "enrollment_start": date(2026, 1, 1),
                "enrollment_end": None,
                "has_diabetes": True,
                "has_hypertension": False,
                "has_hyperlipidemia": False,
            }
        )
    rows.append({**rows[4], "contract_id": "H2222", "region": "SOUTH"})  # M100000005 again, with other values
    rows.append(dict(rows[5]))  # M100000006 again, identical
    return pd.DataFrame(rows)


IHWA_HEADER = "RECORD_ID|MBI|VISIT_ID|VISIT_STATUS|STATUS_DATE|STATUS_TIME|GAP_CODES|NURSE_NAME\n"


def ihwa_row(record: str, mbi: str, when: str = "11/01/2026|10:00") -> str:
    return f"{record}|{mbi}|V0000000001|SCH|{when}|BCS|Pat Lee\n"


def dialer_call(call_id: str, ref: str, start: str, disposition: str = "CONNECTED") -> str:
    return f'"{call_id}","{ref}","FALL","{start}","{disposition}","95","LIVE","BCS","Pat Lee"\r\n'


def engage_event(event_id: str, member: str, ts) -> str:
    return (
        json.dumps(
            {
                "event_id": event_id,
                "member_id": member,
                "channel": "sms",
                "event": "sent",
                "ts": ts,
                "campaign_id": "c1",
                "measure": None,
            }
        )
        + "\n"
    )


def silver_world(landing: Path) -> None:
    (landing / "edw").mkdir(parents=True)
    members_frame().to_parquet(landing / "edw" / f"members_{SILVER_OTHER_DAY:%Y%m%d}.parquet", index=False)
    os.utime(landing / "edw" / f"members_{SILVER_OTHER_DAY:%Y%m%d}.parquet", (time.time() - 120,) * 2)
    other, day = f"{SILVER_OTHER_DAY:%Y%m%d}", f"{SILVER_DAY:%Y%m%d}"
    noon = 1793534400000  # 2026-11-01T12:00:00Z in milliseconds
    land(
        landing / "engage" / f"engage_events_{other}_12.jsonl.gz",
        gzip.compress("".join(engage_event(f"o{i}", "M100000001", noon + i) for i in range(4)).encode()),
    )
    land(landing / "ihwa" / f"IHWA_ASSESSMENTS_{other}.txt", IHWA_HEADER + ihwa_row("IH0001", MBIS["M100000002"]))
    land(
        landing / "dialer" / f"dialer_calls_{other}.csv",
        DIALER_HEADER + dialer_call("DL0001", "VR00000001", "2026-11-01 10:15:00"),
    )
    land(
        landing / "engage" / f"engage_events_{day}_12.jsonl.gz",
        gzip.compress(
            "".join(
                [
                    engage_event("e1", "M100000001", noon + 86_400_000),
                    engage_event("e2", "M100000001", noon // 1000),  # epoch seconds where milliseconds are expected: 1970
                    engage_event("e3", "M100000001", 9223372036854775807),  # the largest 64-bit integer
                    engage_event("e4", "M100000001", -9223372036854775808),
                    engage_event("e5", "M100000005", noon + 86_400_000),  # a member whose two versions conflict
                ]
            ).encode()
        ),
    )
    land(
        landing / "ihwa" / f"IHWA_ASSESSMENTS_{day}.txt",
        IHWA_HEADER
        + ihwa_row("IH0101", "1eg4-te5-mk73")  # dashes and lower case: a valid MBI
        + ihwa_row("IH0102", MBIS["M100000003"])  # shared by two members
        + ihwa_row("IH0103", " 2FH5-TE6-MK84 "),
    )
    land(
        landing / "dialer" / f"dialer_calls_{day}.csv",
        DIALER_HEADER
        + dialer_call("DL0101", "VR00000001", "2026-11-01 01:30:00")  # the repeated hour: earlier instant, flagged
        + dialer_call("DL0102", "VR00000001", "2026-03-08 02:30:00")  # the skipped hour
        + dialer_call("DL0103", "VR00000001", "2026-11-01 10:15:00")
        + dialer_call("DL0104", "VR00000002", "2026-11-01 11:00:00", "CONNECTED")
        + dialer_call("DL0104", "VR00000002", "2026-11-01 11:00:00", "REFUSED")  # same key, other content
        + dialer_call("DL0105", "VR00000002", "2026-11-01 12:00:00")
        + dialer_call("DL0105", "VR00000002", "2026-11-01 12:00:00"),
    )  # a plain duplicate
    entry = fhir_entry("apt-000000001", "M100000001")
    entry["resource"].update(
        {
            "start": "2026-11-20T10:00:00",
            "created": "2026-11-01T09:00:00",
            "meta": {"versionId": "1", "lastUpdated": "2026-11-01T09:00:00"},
        }
    )  # no offsets: Chicago time
    land(landing / "emr_south" / f"appointments_{day}.json", bundle(entry))


@pytest.fixture(scope="module")
def silver_run(tmp_path_factory):
    base = tmp_path_factory.mktemp("silver_hardening")
    landing, warehouse = base / "landing", base / "warehouse.duckdb"
    silver_world(landing)
    result = ingest(landing, warehouse, SILVER_OTHER_DAY, SILVER_DAY)
    return landing, warehouse, result


def silver_reasons(warehouse: Path, provider: str) -> dict:
    rows = query(
        warehouse, "SELECT raw_text, reason FROM audit.quarantine WHERE layer = 'silver' AND provider = $p", {"p": provider}
    )
    key = {"engage": "event_id", "ihwa": "record_id", "dialer": "call_id"}[provider]
    found: dict[str, list[str]] = {}
    for raw, reason in rows.itertuples(index=False):
        found.setdefault(json.loads(raw)[key], []).append(reason)
    return found


def test_silver_runs_succeed_and_a_quiet_days_two_bad_member_ids_only_warn(silver_run):
    _, _, result = silver_run
    assert result.success
    coverage = {
        e.partition: e
        for e in result.get_asset_check_evaluations()
        if e.check_name == "check_validity_member_id_coverage" and e.asset_key.path[-1] == "outreach_events"
    }
    assert coverage[SILVER_OTHER_DAY.isoformat()].passed
    evaluation = coverage[SILVER_DAY.isoformat()]
    assert not evaluation.passed and evaluation.severity.value == "WARN"
    assert evaluation.metadata["days_failing"].value == [] and evaluation.metadata["rows_with_invalid_member_id"].value == 2
    materialized = {e.asset_key.path[-1] for e in result.get_asset_materialization_events()}
    assert {"outreach_events", "appointment_events", "members"} <= materialized


def test_identifiers_are_normalized_and_an_ambiguous_one_loads_nothing(silver_run):
    _, warehouse, _ = silver_run
    loaded = query(warehouse, "SELECT event_key, member_id FROM silver.outreach_events WHERE provider = 'ihwa' ORDER BY 1")
    assert loaded.values.tolist() == [["IH0001", "M100000002"], ["IH0101", "M100000001"], ["IH0103", "M100000002"]]
    assert silver_reasons(warehouse, "ihwa") == {"IH0102": ["ambiguous_member"]}
    assert query(warehouse, "SELECT mbi FROM silver.members WHERE member_id = 'M100000001'")["mbi"][0] == "1EG4TE5MK73"


def test_conflicting_versions_are_quarantined_side_by_side_and_plain_copies_are_duplicates(silver_run):
    _, warehouse, _ = silver_run
    dialer = silver_reasons(warehouse, "dialer")
    assert dialer["DL0104"] == ["conflicting_duplicate", "conflicting_duplicate"]
    versions = query(
        warehouse, "SELECT raw_text FROM audit.quarantine WHERE reason = 'conflicting_duplicate' AND provider = 'dialer'"
    )
    assert {json.loads(r)["disposition"] for r in versions["raw_text"]} == {"CONNECTED", "REFUSED"}
    # the raw text is the row as delivered: the vendor's columns and the undeclared ones, not bronze's own lineage
    delivered = [c.column for c in next(p for p in load_registry() if p.name == "dialer").datasets[0].columns] + ["_extra"]
    assert {tuple(json.loads(r)) for r in versions["raw_text"]} == {tuple(delivered)}
    assert (
        query(warehouse, "SELECT count(*) AS n FROM silver.outreach_events WHERE event_key IN ('DL0104', 'DL0105')")["n"][0] == 1
    )
    # a member with two different rows in one snapshot: both kept in quarantine, the member left out
    member = query(
        warehouse,
        "SELECT reason, json_extract_string(raw_text, '$.contract_id') AS contract FROM audit.quarantine "
        "WHERE dataset = 'members' ORDER BY 2",
    )
    assert member.values.tolist() == [["conflicting_duplicate", "H1111"], ["conflicting_duplicate", "H2222"]]
    member_text = query(warehouse, "SELECT raw_text FROM audit.quarantine WHERE dataset = 'members'")["raw_text"]
    assert not any(key.startswith("_") and key != "_extra" for r in member_text for key in json.loads(r))
    assert query(warehouse, "SELECT member_id, count(*) AS n FROM silver.members GROUP BY 1 ORDER BY 1")["n"].tolist() == [1] * 5
    assert silver_reasons(warehouse, "engage")["e5"] == ["unknown_member"]


def test_times_are_exact_and_bad_ones_fail_only_their_row(silver_run):
    _, warehouse, _ = silver_run
    times = dict(
        query(
            warehouse,
            "SELECT event_key, CAST(event_ts AS VARCHAR) AS ts FROM silver.outreach_events WHERE partition_date = $d",
            {"d": SILVER_DAY},
        ).itertuples(index=False, name=None)
    )
    assert times["DL0101"] == "2026-11-01 05:30:00"  # 01:30 EDT, the earlier of the two 01:30s
    assert times["DL0103"] == "2026-11-01 15:15:00"  # 10:15 EST
    assert times["e1"] == "2026-11-02 12:00:00"
    assert silver_reasons(warehouse, "dialer")["DL0102"] == ["nonexistent_local_time"]
    engage = silver_reasons(warehouse, "engage")
    assert (engage["e2"], engage["e3"], engage["e4"]) == (["past_timestamp"], ["future_timestamp"], ["past_timestamp"])
    flags = query(warehouse, "SELECT provider, source_row, flag FROM audit.silver_flags")
    assert flags.values.tolist() == [["dialer", 2, "ambiguous_local_time"]]
    south = query(
        warehouse, "SELECT CAST(start_ts AS VARCHAR) AS s, CAST(event_ts AS VARCHAR) AS e FROM silver.appointment_events"
    )
    assert south.values.tolist() == [["2026-11-20 16:00:00", "2026-11-01 15:00:00"]]  # Chicago: CST after the change


def test_every_delivered_line_is_loaded_quarantined_or_a_duplicate_and_the_other_day_is_whole(silver_run):
    landing, warehouse, _ = silver_run
    recon = query(
        warehouse,
        "SELECT provider, partition_date, rows_delivered, rows_loaded, rows_quarantined, duplicates_removed "
        "FROM audit.silver_reconciliation WHERE silver_table = 'outreach_events'",
    )
    m = query(
        warehouse,
        "SELECT provider, partition_date, sum(line_count - lines_skipped) AS lines, sum(rows_rejected) AS rejected "
        "FROM audit.file_manifest WHERE status = 'loaded' AND provider IN ('ihwa', 'dialer', 'engage') GROUP BY 1, 2",
    )
    joined = recon.merge(m, on=["provider", "partition_date"])
    assert len(joined) == 6
    for row in joined.itertuples(index=False):
        assert row.lines == row.rows_loaded + row.rows_quarantined + row.duplicates_removed + row.rejected, row
    other = joined[joined["partition_date"] == pd.Timestamp(SILVER_OTHER_DAY)]
    assert other["rows_loaded"].sum() == 6 and other["rows_quarantined"].sum() == 0


def test_a_file_that_grows_while_it_is_read_is_left_for_a_later_run(tmp_path, monkeypatch):
    from stars_assets.lib.bronze import load as bronze_load

    landing = tmp_path / "landing"
    land(landing / "dialer" / f"dialer_calls_{YMD}.csv", DIALER_HEADER + dialer_row("C1"))
    scan = bronze_load.scan_file

    def scan_while_the_upload_goes_on(file, compression, count_lines):
        scanned = scan(file, compression, count_lines)
        with open(file, "a", encoding="utf-8") as handle:
            handle.write(dialer_row("C2"))
        return scanned

    with duckdb.connect(str(tmp_path / "warehouse.duckdb")) as con:
        monkeypatch.setattr(bronze_load, "scan_file", scan_while_the_upload_goes_on)
        (outcome,) = load_partition(con, PROVIDERS["dialer"], landing, DAY, "run-1").files
        assert (outcome.status, outcome.rows_loaded) == ("still_being_written", 0)
        assert con.execute("SELECT count(*) FROM bronze.dialer").fetchone()[0] == 0
        monkeypatch.setattr(bronze_load, "scan_file", scan)
        (outcome,) = load_partition(con, PROVIDERS["dialer"], landing, DAY, "run-2").files
        assert (outcome.status, outcome.rows_loaded) == ("loaded", 2)
        assert con.execute("SELECT status FROM audit.file_manifest").fetchall() == [("loaded",)]


def test_a_days_small_json_lines_files_read_together_equal_reading_them_one_by_one(tmp_path, monkeypatch):
    """Batched reading gives the rows, line numbers, manifest and quarantine that file-by-file reading gives:
    a day whose batch holds malformed, blank, incomplete and drifted lines, and a day where the reader
    refuses a line (not UTF-8), which is then read file by file."""
    import stars_assets.lib.bronze.load as bronze_load

    landing = tmp_path / "landing"
    engage = landing / "engage"
    lines = {
        f"{YMD}_00": engage_line("a1") + "\n" + engage_line("a2") + "{not json\n" + engage_line("a3", extra_col="x") + "   \n",
        f"{YMD}_01": engage_line("b1") + '{"event_id": "b2"}\n[1, 2]\n' + engage_line("b4").rstrip("\n"),
        f"{YMD}_02": "\n\n",
        f"{YMD}_03": engage_line("c1", other="y"),
        f"{OTHER_YMD}_00": engage_line("d1"),
    }
    for name, text in lines.items():
        land(engage / f"engage_events_{name}.jsonl.gz", gzip.compress(text.encode(), mtime=0))
    land(
        engage / f"engage_events_{OTHER_YMD}_01.jsonl.gz", gzip.compress(engage_line("d2").encode() + b'{"x": "\xff"}\n', mtime=0)
    )
    land(engage / f"engage_events_{OTHER_YMD}_02.jsonl.gz", gzip.compress(engage_line("d3").encode(), mtime=0))
    tables = {
        "bronze.engage": "SELECT * EXCLUDE (_ingested_at) FROM bronze.engage ORDER BY _source_file, _source_row",
        "audit.file_manifest": "SELECT * EXCLUDE (run_id, loaded_at) FROM audit.file_manifest ORDER BY file_path",
        "audit.quarantine": "SELECT * EXCLUDE (run_id, recorded_at) FROM audit.quarantine ORDER BY source_file, source_row",
    }
    batches = []
    spied = bronze_load.stage_jsonl_batch
    monkeypatch.setattr(bronze_load, "stage_jsonl_batch", lambda *a: batches.append(spied(*a)) or batches[-1])
    results = {}
    for batch_max in (bronze_load.BATCH_MAX_FILE_BYTES, 0):
        monkeypatch.setattr(bronze_load, "BATCH_MAX_FILE_BYTES", batch_max)
        warehouse = tmp_path / f"warehouse_{batch_max}.duckdb"
        with duckdb.connect(str(warehouse)) as con:
            for day in (OTHER_DAY, DAY):
                load_partition(con, PROVIDERS["engage"], landing, day, "run")
        results[batch_max] = {name: query(warehouse, sql) for name, sql in tables.items()}
    # One batch per day was staged, and only DAY's was usable (OTHER_DAY's reader refused a line).
    assert [b is not None for b in batches] == [False, True]
    batched, one_by_one = results.values()
    for name in tables:
        pd.testing.assert_frame_equal(batched[name], one_by_one[name], obj=name)
    assert len(batched["bronze.engage"]) == 8  # 6 on DAY; on OTHER_DAY the file half not UTF-8 is quarantined whole
    assert sorted(batched["audit.quarantine"]["reason"]) == [
        "malformed_json",
        "malformed_json",
        "missing_required_field",
        "wrong_encoding",
    ]
    assert batched["bronze.engage"].query("event_id == 'a3'")[["_source_row", "_extra"]].values.tolist() == [
        [5, '{"extra_col":"x"}']
    ]


def test_a_batch_of_small_files_is_written_once_beside_a_large_file_read_alone(tmp_path, monkeypatch):
    """The small files' batch stays staged while a large file of the day is read alone, so the partition is
    written in one pass (it was written twice: reading the large file dropped the batch's staging tables)."""
    import stars_assets.lib.bronze.load as bronze_load

    engage = tmp_path / "landing" / "engage"
    land(engage / f"engage_events_{YMD}_00.jsonl.gz", gzip.compress((engage_line("s1") + "{bad\n").encode(), mtime=0))
    land(engage / f"engage_events_{YMD}_01.jsonl.gz", gzip.compress(engage_line("s2").encode(), mtime=0))
    large = "".join(engage_line(f"L{n}", member_id=os.urandom(8).hex()) for n in range(400))
    land(engage / f"engage_events_{YMD}_02.jsonl.gz", gzip.compress(large.encode(), mtime=0))
    monkeypatch.setattr(bronze_load, "BATCH_MAX_FILE_BYTES", 1000)
    messages = []
    with duckdb.connect(str(tmp_path / "warehouse.duckdb")) as con:
        load = load_partition(con, PROVIDERS["engage"], tmp_path / "landing", DAY, "run", log=messages.append)
        rows = con.execute("SELECT _source_file, count(*), max(_source_row) FROM bronze.engage GROUP BY 1 ORDER BY 1").fetchall()
        quarantined = con.execute("SELECT source_file, source_row, reason FROM audit.quarantine").fetchall()
    assert not [m for m in messages if "again" in m], messages
    assert [(o.status, o.rows_loaded, o.rows_rejected) for o in load.files] == [
        ("loaded", 1, 1),
        ("loaded", 1, 0),
        ("loaded", 400, 0),
    ]
    assert rows == [
        (f"engage/engage_events_{YMD}_00.jsonl.gz", 1, 1),
        (f"engage/engage_events_{YMD}_01.jsonl.gz", 1, 1),
        (f"engage/engage_events_{YMD}_02.jsonl.gz", 400, 400),
    ]
    assert quarantined == [(f"engage/engage_events_{YMD}_00.jsonl.gz", 2, "malformed_json")]


def test_json_lines_that_are_blank_not_objects_or_not_json_get_their_own_reason_and_line(tmp_path):
    """Each line is judged alone: blank (spaces, also Unicode ones) is skipped, JSON that is not an object, JSON
    cut or followed by more text, and an escape JSON forbids are malformed; an empty object lacks the required
    fields; the good lines after them keep their own line numbers, also when a bad line sits among many good ones."""
    good = [engage_line(f"g{n}") for n in range(3000)]
    bad = {
        3: "{}",
        4: "[1, 2]",
        5: '"text"',
        6: "null",
        7: "\u00a0 \u3000",
        8: "\t",
        9: '{"event_id": "x"} tail',
        10: '{"event_id": "\\ud800"}',
        11: "",
        2500: '{"event_id": "late"',
    }
    lines = [line.rstrip("\n") for line in good]
    for number in sorted(bad):
        lines.insert(number - 1, bad[number])
    engage = tmp_path / "landing" / "engage"
    land(engage / f"engage_events_{YMD}_00.jsonl.gz", gzip.compress(("\n".join(lines) + "\n").encode(), mtime=0))
    with duckdb.connect(str(tmp_path / "warehouse.duckdb")) as con:
        (outcome,) = load_partition(con, PROVIDERS["engage"], tmp_path / "landing", DAY, "run").files
        quarantined = con.execute("SELECT source_row, reason FROM audit.quarantine ORDER BY 1").fetchall()
        rows = con.execute(
            "SELECT event_id, _source_row FROM bronze.engage WHERE event_id IN ('g0', 'g2', 'g3', 'g2997')"
        ).fetchall()
    assert quarantined == [
        (3, "missing_required_field"),
        (4, "malformed_json"),
        (5, "malformed_json"),
        (6, "malformed_json"),
        (8, "malformed_json"),
        (9, "malformed_json"),
        (10, "malformed_json"),
        (2500, "malformed_json"),
    ]
    assert (outcome.status, outcome.rows_loaded, outcome.rows_rejected, outcome.lines_skipped) == ("loaded", 3000, 8, 2)
    assert sorted(rows) == [("g0", 1), ("g2", 12), ("g2997", 3008), ("g3", 13)]
