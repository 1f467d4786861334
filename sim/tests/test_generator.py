"""The feed generator writes real files: same options -> same bytes, every format readable the way
docs/vendor-formats.md says, every fault kind present where faults.parquet says, truth consistent
with the files, and a CLI that refuses bad options with status 2."""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from zoneinfo import ZoneInfo

import duckdb
import pyarrow.parquet as pq
import pytest
from stars_sim.generate import main as cli_main
from stars_sim.generator import FAULT_KINDS, generate
from stars_sim.generator import events as generator_events
from stars_sim.generator.world import LAST_PUBLISHED

START = dt.date(2026, 10, 26)  # 14 days crossing the end of daylight saving time on 2026-11-01
OVERLAP_START = dt.date(2026, 11, 2)  # 7 days sharing 2026-11-02..08 with the main window
MEMBERS = 2000
UTC = dt.UTC

IHWA_COLUMNS = ["RECORD_ID", "MBI", "VISIT_ID", "VISIT_STATUS", "STATUS_DATE", "STATUS_TIME", "GAP_CODES", "NURSE_NAME"]
DIALER_COLUMNS = [
    "Call ID",
    "Member Ref",
    "Campaign",
    "Call Start",
    "Disposition",
    "Duration Sec",
    "Agent Type",
    "Measure",
    "Agent Name",
]
ENGAGE_KEYS = ["event_id", "member_id", "channel", "event", "ts", "campaign_id", "measure"]
MEMBER_ID = re.compile(r"^M\d{9}$")
MBI = re.compile(r"^[1-9][AC-HJKMNP-RT-Y][AC-HJKMNP-RT-Y0-9]\d[AC-HJKMNP-RT-Y][AC-HJKMNP-RT-Y0-9]\d[AC-HJKMNP-RT-Y]{2}\d{2}$")
VENDOR_REF = re.compile(r"^VR[0-9A-F]{8}$")


@pytest.fixture(scope="module")
def run_a(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("run_a")
    generate(out, seed=7, members=MEMBERS, days=14, start_date=START)
    return out


@pytest.fixture(scope="module")
def run_b(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("run_b")
    generate(out, seed=7, members=MEMBERS, days=14, start_date=START)
    return out


@pytest.fixture(scope="module")
def run_overlap(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("run_overlap")
    generate(out, seed=7, members=MEMBERS, days=7, start_date=OVERLAP_START)
    return out


def all_files(root: Path) -> dict[str, Path]:
    return {str(p.relative_to(root)): p for p in sorted(root.rglob("*")) if p.is_file()}


def mtime_day(path: Path) -> dt.date:
    return dt.datetime.fromtimestamp(path.stat().st_mtime, UTC).date()


def truth(root: Path, name: str) -> list[dict]:
    return pq.read_table(root / "_truth" / f"{name}.parquet").to_pylist()


def faults_of(root: Path) -> list[dict]:
    return truth(root, "faults")


def file_faults(root: Path) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for f in faults_of(root):
        if f["source_row"] is None:
            found.setdefault(f["file_name"], set()).add(f["fault_kind"])
    return found


# --- reading the formats ------------------------------------------------------------------------


def text_of(path: Path) -> str:
    data = path.read_bytes()
    if path.suffix == ".gz":
        data = gzip.decompress(data)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("cp1252")  # the wrong-encoding fault


def rows_of(path: Path) -> tuple[list[str] | None, dict[int, list[str] | dict]]:
    """(header, {source_row: fields}) for a line-based file, as the doc numbers lines."""
    text = text_of(path)
    if path.name.endswith(".jsonl.gz"):
        return None, {i + 1: json.loads(line) for i, line in enumerate(text.splitlines())}
    if path.suffix == ".csv":
        lines = list(csv.reader(io.StringIO(text, newline="")))
        return lines[0], {i + 2: row for i, row in enumerate(lines[1:])}
    lines = text.split("\n")
    assert lines[-1] == ""
    return lines[0].split("|"), {i + 2: line.split("|") for i, line in enumerate(lines[1:-1])}


def hl7_messages(path: Path) -> list[dict[str, list[str]]]:
    messages = []
    for raw in path.read_bytes().decode("utf-8").split("\n")[:-1]:
        assert raw.endswith("\r")
        messages.append({seg.split("|")[0]: seg.split("|") for seg in raw[:-1].split("\r")})
    return messages


def event_key_of(provider: str, fields) -> str:
    return {"ihwa": lambda f: f[0], "dialer": lambda f: f[0], "engage": lambda f: f["event_id"]}[provider](fields)


# --- determinism ------------------------------------------------------------------------------


def test_same_seed_and_options_give_identical_bytes_and_times(run_a, run_b):
    a, b = all_files(run_a), all_files(run_b)
    assert a.keys() == b.keys()
    for name, path in a.items():
        assert path.read_bytes() == b[name].read_bytes(), name
        if not name.startswith("_truth"):
            assert path.stat().st_mtime == b[name].stat().st_mtime, name


def test_overlapping_windows_write_identical_files_for_shared_days(run_a, run_overlap):
    shared = {OVERLAP_START + dt.timedelta(days=i) for i in range(7)}
    a = {n: p for n, p in all_files(run_a).items() if not n.startswith("_truth") and mtime_day(p) in shared}
    c = {n: p for n, p in all_files(run_overlap).items() if not n.startswith("_truth") and mtime_day(p) in shared}
    first_day_extras = {f"edw/{name}_20261102.parquet" for name in ("members", "care_gaps", "contract_quality")} | {
        "edw/rx_fills_20261102_ytd.parquet"
    }
    assert set(c) - set(a) == first_day_extras
    assert set(a) <= set(c)
    for name, path in a.items():
        assert path.read_bytes() == c[name].read_bytes(), name
        assert path.stat().st_mtime == c[name].stat().st_mtime, name


def test_gzip_headers_carry_no_time_or_name(run_a):
    for path in (run_a / "engage").glob("*.gz"):
        head = path.read_bytes()[:10]
        if len(head) == 10:
            assert head[:3] == b"\x1f\x8b\x08" and head[3] == 0 and head[4:8] == b"\0\0\0\0", path.name


def test_every_file_is_dated_by_its_delivery_day(run_a):
    for name, path in all_files(run_a).items():
        if name.startswith("_truth"):
            continue
        name_day = dt.datetime.strptime(re.search(r"_(\d{8})", path.name).group(1), "%Y%m%d").date()
        faults = file_faults(run_a).get(name, set())
        if "late_file" in faults:
            assert mtime_day(path) > name_day, name
        else:
            assert mtime_day(path) == name_day, name


# --- formats ----------------------------------------------------------------------------------


def test_ihwa_pipe_files(run_a):
    faulty = file_faults(run_a)
    clean = [p for n, p in all_files(run_a).items() if n.startswith("ihwa/") and not faulty.get(n)]
    assert clean
    non_ascii = False
    for path in clean:
        data = path.read_bytes()
        text = data.decode("utf-8")
        non_ascii |= any(ord(ch) > 127 for ch in text)
        assert "\r" not in text and '"' not in text
        header, rows = rows_of(path)
        assert header == IHWA_COLUMNS
        for fields in rows.values():
            if len(fields) == 8:
                assert fields[3] in {"SCH", "CMP", "CXL", "NSH"}
                dt.datetime.strptime(fields[4] + " " + fields[5], "%m/%d/%Y %H:%M")
                assert all(code in {"BCS", "COL", "EED", "GSD", "CBP", "TRC"} for code in filter(None, fields[6].split(";")))
    assert non_ascii, "some nurse names carry letters beyond ASCII"


def test_dialer_csv_files(run_a):
    faulty = file_faults(run_a)
    clean = [p for n, p in all_files(run_a).items() if n.startswith("dialer/") and not faulty.get(n)]
    assert clean
    for path in clean:
        data = path.read_bytes()
        assert data.startswith(b"\xef\xbb\xbf")
        lines = data[3:].split(b"\r\n")
        assert lines[-1] == b"" and all(line.startswith(b'"') and line.endswith(b'"') for line in lines[:-1])
        header, rows = rows_of(path)
        assert header == DIALER_COLUMNS
        for fields in rows.values():
            if len(fields) == 9:
                assert fields[4] in {"CONNECTED", "LEFT_VM", "NO_ANSWER", "BUSY", "WRONG_NUMBER", "REFUSED"}
                assert fields[6] in {"LIVE", "IVR"}
                dt.datetime.strptime(fields[3], "%Y-%m-%d %H:%M:%S")


def test_engage_hourly_gzip_json_lines(run_a):
    faulty = file_faults(run_a)
    names = [n for n in all_files(run_a) if n.startswith("engage/")]
    assert all(re.fullmatch(r"engage/engage_events_\d{8}_\d{2}(_\d{2})?\.jsonl\.gz", n) for n in names)
    clean = [run_a / n for n in names if not faulty.get(n)]
    copies = {(f["file_name"], f["source_row"]) for f in faults_of(run_a) if f["fault_kind"] == "duplicate_event"}
    for path in clean:
        hour = int(path.name.split("_")[3][:2])
        day = dt.datetime.strptime(path.name.split("_")[2], "%Y%m%d").date()
        for row, obj in rows_of(path)[1].items():
            assert list(obj) == ENGAGE_KEYS
            assert re.fullmatch(r"[0-9a-f]{32}", obj["event_id"])
            assert obj["channel"] in {"sms", "email"}
            assert obj["event"] in {"sent", "delivered", "failed", "clicked", "replied", "opted_out"}
            assert obj["measure"] is None or obj["measure"] in {"BCS", "COL", "EED", "GSD", "CBP", "TRC"}
            when = dt.datetime.fromtimestamp(obj["ts"] / 1000, UTC)
            if when.date() == day and (f"engage/{path.name}", row) not in copies:
                assert when.hour == hour  # an event sits in its hour's batch; a re-sent copy may come later


def test_duckdb_reads_clean_files_with_default_options(tmp_path):
    """Without faults, DuckDB's own sniffing reads every text format as the doc describes."""
    generate(tmp_path, seed=11, members=400, days=2, start_date=dt.date(2026, 3, 9), faults=False)
    assert not faults_of(tmp_path)
    for path in sorted(tmp_path.glob("ihwa/*.txt")):
        relation = duckdb.sql(f"select * from read_csv('{path}', delim='|', quote='', header=true, all_varchar=true)")
        assert relation.columns == IHWA_COLUMNS and len(relation.fetchall()) == len(rows_of(path)[1])
    for path in sorted(tmp_path.glob("dialer/*.csv")):
        relation = duckdb.sql(f"select * from read_csv('{path}', all_varchar=true)")
        assert relation.columns == DIALER_COLUMNS and len(relation.fetchall()) == len(rows_of(path)[1])
    engage = sorted(tmp_path.glob("engage/*.jsonl.gz"))
    relation = duckdb.sql(f"select * from read_json({[str(p) for p in engage]}, format='newline_delimited')")
    assert relation.columns == ENGAGE_KEYS
    assert len(relation.fetchall()) == sum(len(rows_of(p)[1]) for p in engage)
    loaded = truth(tmp_path, "outreach_events")
    assert {e["expected"] for e in loaded} == {"loaded"}


def test_hl7_siu_messages(run_a):
    files = [p for n, p in all_files(run_a).items() if n.startswith("emr_north/") and p.stat().st_size]
    assert files
    triggers = set()
    for path in files:
        for msg in hl7_messages(path):
            assert list(msg) == ["MSH", "SCH", "PID", "AIS"]
            msh, sch, pid = msg["MSH"], msg["SCH"], msg["PID"]
            assert msh[1] == "^~\\&" and msh[8].startswith("SIU^") and msh[11] == "2.5.1"
            trigger = msh[8].split("^")[1]
            triggers.add(trigger)
            assert re.fullmatch(r"\d{14}[+-]\d{4}", msh[6])
            start, end = sch[11].split("^")[3:5]
            assert re.fullmatch(r"\d{14}[+-]\d{4}", start) and re.fullmatch(r"\d{14}[+-]\d{4}", end)
            assert sch[25] == {"S12": "Booked", "S13": "Booked", "S14": "Complete", "S15": "Cancelled", "S26": "Noshow"}[trigger]
            assert sch[7] in {"BCS", "COL", "EED", "GSD", "CBP", "TRC"}
            assert pid[3].endswith("^^^CMS^MB")
    assert "S12" in triggers


def test_fhir_appointment_bundles(run_a):
    files = [p for n, p in all_files(run_a).items() if n.startswith("emr_south/") and p.stat().st_size]
    assert files
    for path in files:
        bundle = json.loads(path.read_text("utf-8"))
        assert bundle["resourceType"] == "Bundle" and bundle["type"] == "collection"
        for entry in bundle["entry"]:
            r = entry["resource"]
            assert r["resourceType"] == "Appointment"
            assert r["status"] in {"booked", "cancelled", "noshow", "fulfilled"}
            for field in ("created", "start", "end"):
                assert dt.datetime.fromisoformat(r[field]).utcoffset() is not None
            assert dt.datetime.fromisoformat(r["meta"]["lastUpdated"]).utcoffset() is not None
            assert r["participant"][0]["actor"]["identifier"]["system"] == "urn:payer:member-id"
            assert r["reasonCode"][0]["coding"][0]["code"] in {"BCS", "COL", "EED", "GSD", "CBP", "TRC"}


def test_edw_parquet_extracts(run_a):
    expected = {
        "members": [
            "member_id",
            "mbi",
            "vendor_ref",
            "birth_date",
            "sex",
            "contract_id",
            "region",
            "dual_status",
            "lis_status",
            "enrollment_start",
            "enrollment_end",
            "has_diabetes",
            "has_hypertension",
            "has_hyperlipidemia",
        ],
        "care_gaps": [
            "gap_id",
            "member_id",
            "measure_code",
            "cms_measure_id",
            "measurement_year",
            "gap_status",
            "open_date",
            "close_date",
            "close_source",
        ],
        "rx_fills": ["fill_id", "member_id", "drug_class", "fill_date", "days_supply"],
        "contract_quality": ["contract_id", "measure_id", "numerator", "denominator", "score", "prior_year_score"],
    }
    edw = run_a / "edw"
    for stem, columns in expected.items():
        for path in edw.glob(f"{stem}_*.parquet"):
            assert pq.read_schema(path).names == columns, path.name
    members = pq.read_table(edw / "members_20261026.parquet").to_pylist()
    assert all(MEMBER_ID.match(m["member_id"]) and MBI.match(m["mbi"]) and VENDOR_REF.match(m["vendor_ref"]) for m in members)
    assert {m["contract_id"] for m in members} == {"H1111", "H2222", "H3333", "H4444", "H5555"}
    assert {m["region"] for m in members} == {"NORTH", "SOUTH", "EAST", "WEST"}
    assert (edw / "members_20261101.parquet").exists() and not (edw / "members_20261102.parquet").exists()

    # The first day carries the year-to-date fills, later days their own.
    history = duckdb.sql(
        f"select min(fill_date), max(fill_date), count(*) from '{edw / 'rx_fills_20261026_ytd.parquet'}'"
    ).fetchall()[0]
    assert history[0] < dt.date(2026, 1, 15) and history[1] == dt.date(2026, 10, 25) and history[2] > 10_000
    assert duckdb.sql(f"select distinct fill_date from '{edw / 'rx_fills_20261027.parquet'}'").fetchall() == [
        (dt.date(2026, 10, 27),)
    ]
    # Fill gaps vary, so adherence (PDC) varies between members.
    spreads = duckdb.sql(f"""
        select member_id, drug_class, count(*) fills from '{edw / "rx_fills_20261026_ytd.parquet"}' group by all having count(*) >= 2
    """).fetchall()
    assert len({fills for *_, fills in spreads}) > 3

    quality = duckdb.sql(
        f"select measure_id, min(score), max(score) from '{edw / 'contract_quality_20261026.parquet'}' where score is not null "
        "group by 1 order by 1"
    ).fetchall()
    assert [q[0] for q in quality] == sorted(["C18", "C22", "C23", "C24", "C25", "C26", "C27", "C28", "C29", *LAST_PUBLISHED])
    assert all(0 <= low <= high <= 100 for _, low, high in quality)
    # Every measure, including those the plan computes from member data (rows with the prior year's score alone),
    # carries its prior year's score, and contracts' changes since differ (C30/D04 compare consecutive years).
    prior = duckdb.sql(f"""
        select measure_id, count(*) filter (where prior_year_score is null), count(*) filter (where score is null),
               count(distinct round(score - prior_year_score, 1))
        from '{edw / "contract_quality_20261026.parquet"}' group by 1 order by 1
    """).fetchall()
    member_data = {"C01", "C02", "C11", "C12", "C14", "C20", "D08", "D09", "D10"}
    assert [p[0] for p in prior] == sorted({*(q[0] for q in quality), *member_data})
    assert all(missing_prior == 0 for _, missing_prior, _, _ in prior)
    assert {m for m, _, no_score, _ in prior if no_score} == member_data
    assert all(changes > 1 for m, _, _, changes in prior if m not in member_data)

    gaps = duckdb.sql(f"select gap_status, count(*) from '{edw / 'care_gaps_20261101.parquet'}' group by 1").fetchall()
    assert {status for status, _ in gaps} == {"OPEN", "CLOSED"}


def test_local_times_follow_daylight_saving(run_a):
    """Dialer (Eastern) and ihwa (Central) write local wall times; the truth holds UTC."""
    events = {
        (e["provider"], e["file_name"], e["source_row"]): e for e in truth(run_a, "outreach_events") if e["expected"] == "loaded"
    }
    offsets = {"dialer": set(), "ihwa": set()}
    for (provider, name, row), event in events.items():
        if provider not in offsets:
            continue
        fields = rows_of(run_a / name)[1][row]
        if provider == "dialer":
            local = dt.datetime.strptime(fields[3], "%Y-%m-%d %H:%M:%S").replace(tzinfo=ZoneInfo("America/New_York"))
        else:
            local = dt.datetime.strptime(f"{fields[4]} {fields[5]}", "%m/%d/%Y %H:%M").replace(tzinfo=ZoneInfo("America/Chicago"))
        assert local.astimezone(UTC) == event["event_ts"]
        offsets[provider].add(local.utcoffset())
    assert offsets["dialer"] == {dt.timedelta(hours=-4), dt.timedelta(hours=-5)}
    assert offsets["ihwa"] == {dt.timedelta(hours=-5), dt.timedelta(hours=-6)}
    hl7_offsets = {msg["MSH"][6][-5:] for p in (run_a / "emr_north").glob("*.hl7") if p.stat().st_size for msg in hl7_messages(p)}
    assert hl7_offsets == {"-0400", "-0500"}


# --- faults -----------------------------------------------------------------------------------


def test_every_fault_kind_appears(run_a):
    kinds = {f["fault_kind"] for f in faults_of(run_a)}
    assert kinds == set(FAULT_KINDS)


def test_file_faults_are_real(run_a):
    required = {"ihwa": {"MBI", "STATUS_DATE", "VISIT_STATUS"}, "dialer": {"Member Ref", "Call Start", "Disposition"}}
    for f in faults_of(run_a):
        if f["source_row"] is not None:
            continue
        path = run_a / f["file_name"]
        data = path.read_bytes()
        kind = f["fault_kind"]
        assert f["delivery_date"].strftime("%Y%m%d") in path.name
        if kind == "truncated_gzip":
            with pytest.raises((EOFError, OSError, gzip.BadGzipFile)):
                gzip.decompress(data)
        elif kind == "wrong_encoding":
            with pytest.raises(UnicodeDecodeError):
                data.decode("utf-8")
            assert data.decode("cp1252")
        elif kind == "empty_file":
            assert data == b""
        elif kind == "missing_required_column":
            header, _ = rows_of(path)
            assert required[f["provider"]] - set(header)
        elif kind == "added_column":
            header, rows = rows_of(path)
            if header is None:
                assert all(len(obj) == len(ENGAGE_KEYS) + 1 for obj in rows.values()) and rows
            else:
                assert len(header) == (len(IHWA_COLUMNS) if f["provider"] == "ihwa" else len(DIALER_COLUMNS)) + 1
        elif kind == "redelivered_file":
            original = f["detail"].rsplit(" ", 1)[-1]
            assert data == (run_a / original).read_bytes() and original != f["file_name"]
        elif kind == "late_file":
            assert mtime_day(path) > f["delivery_date"]
        assert f["expected_reason"] == {"redelivered_file": "duplicate_file", "added_column": "schema_drift"}.get(kind, kind)


def test_row_faults_are_real(run_a):
    members = pq.read_table(run_a / "_truth" / "members.parquet")
    known = set(members["member_id"].to_pylist()) | set(members["mbi"].to_pylist()) | set(members["vendor_ref"].to_pylist())
    shape = {"ihwa": MBI, "engage": MEMBER_ID, "dialer": VENDOR_REF, "emr_north": MBI, "emr_south": MEMBER_ID}
    appointment_events = {(e["file_name"], e["source_row"]): e for e in truth(run_a, "appointment_events")}
    for f in faults_of(run_a):
        if f["source_row"] is None:
            continue
        provider, path, row, kind = f["provider"], run_a / f["file_name"], f["source_row"], f["fault_kind"]
        if provider in ("emr_north", "emr_south"):
            if provider == "emr_north":
                msg = hl7_messages(path)[row - 1]
                member_ref = msg["PID"][3].split("^")[0]
            else:
                resource = json.loads(path.read_text())["entry"][row - 1]["resource"]
                member_ref = resource["participant"][0]["actor"]["identifier"]["value"]
            event = appointment_events[(f["file_name"], row)]
            assert event["expected"] == f["expected_reason"]
            if kind == "start_before_booking":
                assert event["status"] == "BOOKED" and event["start_ts"] < event["booked_ts"]
        else:
            header, rows = rows_of(path)
            fields = rows[row]
            if kind == "wrong_field_count":
                assert len(fields) != len(header)
                continue
            member_ref = fields["member_id"] if provider == "engage" else fields[1]
        if kind == "unknown_member_id":
            assert shape[provider].match(member_ref) and member_ref not in known
        elif kind == "malformed_member_id":
            assert not shape[provider].match(member_ref)
        elif kind == "future_timestamp":
            if provider == "engage":
                when = dt.datetime.fromtimestamp(fields["ts"] / 1000, UTC)
            elif provider == "dialer":
                when = dt.datetime.strptime(fields[3], "%Y-%m-%d %H:%M:%S").replace(tzinfo=ZoneInfo("America/New_York"))
            else:
                when = dt.datetime.strptime(f"{fields[4]} {fields[5]}", "%m/%d/%Y %H:%M").replace(
                    tzinfo=ZoneInfo("America/Chicago")
                )
            assert when.date() > f["delivery_date"] + dt.timedelta(days=1)
        elif kind == "duplicate_event":
            original_name, original_row = f["detail"].removeprefix("copy of ").rsplit(":", 1)
            original = rows_of(run_a / original_name)[1][int(original_row)]
            assert original == fields and (original_name, int(original_row)) < (f["file_name"], row)


# --- truth against files ----------------------------------------------------------------------


def check_truth_matches_files(root: Path) -> None:
    """Every data row of every delivered file is one truth event or one listed duplicate, never both."""
    events = truth(root, "outreach_events")
    faults = faults_of(root)
    by_location = {(e["file_name"], e["source_row"]): e for e in events}
    assert len(by_location) == len(events)
    assert len({(e["provider"], e["event_key"]) for e in events}) == len(events)
    duplicates = {(f["file_name"], f["source_row"]) for f in faults if f["fault_kind"] == "duplicate_event"}
    assert not duplicates & by_location.keys()
    skipped = {name for name, kinds in file_faults(root).items() if kinds & {"redelivered_file", "truncated_gzip", "empty_file"}}
    written = [n for n in all_files(root) if n.split("/")[0] in ("ihwa", "engage", "dialer") and n not in skipped]
    located = set()
    for name in written:
        provider = name.split("/")[0]
        _, rows = rows_of(root / name)
        for row, fields in rows.items():
            location = (name, row)
            located.add(location)
            if location in duplicates:
                continue
            event = by_location[location]
            key = event_key_of(provider, fields)
            assert key == event["event_key"], location
    truncated = {name for name, kinds in file_faults(root).items() if "truncated_gzip" in kinds}
    assert {loc for loc in by_location if loc[0] not in truncated} == located - duplicates
    assert all(e["expected"] == "truncated_gzip" for e in events if e["file_name"] in truncated)

    appointment_events = truth(root, "appointment_events")
    for name, path in all_files(root).items():
        if name.startswith("emr_") and name not in skipped:
            mine = sorted((e for e in appointment_events if e["file_name"] == name), key=lambda e: e["source_row"])
            if name.startswith("emr_north"):
                keys = [m["MSH"][9] for m in hl7_messages(path)]  # MSH-10 (MSH-1 is the separator itself)
            else:
                keys = [
                    f"{e['resource']['id']}/_history/{e['resource']['meta']['versionId']}"
                    for e in json.loads(path.read_text())["entry"]
                ]
            assert keys == [e["event_key"] for e in mine], name


def test_truth_matches_files(run_a):
    check_truth_matches_files(run_a)
    manifest = json.loads((run_a / "_truth" / "manifest.json").read_text())
    assert manifest["options"]["members"] == MEMBERS
    assert sum(manifest["outreach_events_by_expected"].values()) == len(truth(run_a, "outreach_events"))
    assert sorted(n for n in all_files(run_a) if not n.startswith("_truth")) == manifest["files"]


def test_expected_outcomes_follow_the_faults(run_a):
    events = truth(run_a, "outreach_events")
    quarantined = {
        n: k
        for n, kinds in file_faults(run_a).items()
        for k in kinds
        if k in ("wrong_encoding", "missing_required_column", "truncated_gzip")
    }
    for e in events:
        if e["file_name"] in quarantined:
            assert e["expected"] == quarantined[e["file_name"]]
    expected = {e["expected"] for e in events}
    assert {"loaded", "unknown_member", "malformed_member_id", "future_timestamp", "wrong_field_count"} <= expected
    assert sum(e["expected"] == "loaded" for e in events) > 0.9 * len(events)


def test_appointments_and_gaps_truth(run_a):
    appointments = truth(run_a, "appointments")
    assert appointments and {a["status"] for a in appointments} <= {"BOOKED", "RESCHEDULED", "CANCELLED", "NO_SHOW", "COMPLETED"}
    assert all(a["appointment_key"].startswith(("emr_north:NA", "emr_south:apt-")) for a in appointments)
    gaps = truth(run_a, "care_gaps")
    closed_by = {g["closed_by"] for g in gaps}
    assert {"baseline", "outreach", "in_home", "appointment"} <= closed_by
    eligible = {g["measure_code"] for g in gaps}
    assert eligible == {"BCS", "COL", "EED", "GSD", "CBP", "TRC"}
    contracts = truth(run_a, "contracts")
    bcs = sorted(c["true_rate"] for c in contracts if c["cms_measure_id"] == "C01")
    assert len(bcs) == 5 and bcs[-1] - bcs[0] > 8  # contracts spread across star bands


def test_chunked_days_write_consistent_files(tmp_path, monkeypatch):
    """A day too big for one chunk is appended a chunk at a time, rows numbered across chunks."""
    monkeypatch.setattr(generator_events, "CHUNK_ROWS", 60)
    generate(tmp_path, seed=3, members=600, days=2, start_date=dt.date(2026, 3, 2), outreach_rows_per_day=3000)
    check_truth_matches_files(tmp_path)
    day_rows = sum(1 for e in truth(tmp_path, "outreach_events") if e["delivery_date"] == dt.date(2026, 3, 2))
    assert 2500 < day_rows < 3600


# --- CLI --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "argv",
    [
        ["--members", "abc"],
        ["--members", "10"],
        ["--days", "0"],
        ["--start-date", "2026-13-01"],
        ["--start-date", "2025-06-01"],
        ["--fault-rate", "no_such_fault=0.1"],
        ["--fault-rate", "duplicate_event=2"],
        ["--fault-rate", "duplicate_event"],
        ["--no-faults", "--fault-rate", "empty_file=0"],
        ["--outreach-rows-per-day", "-5"],
    ],
)
def test_cli_rejects_bad_options_with_status_2(argv, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli_main(argv + ["--out", str(tmp_path)])
    assert exit_info.value.code == 2
    assert "error:" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


def test_cli_runs_and_prints_no_member_ids(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "stars_sim.generate",
            "--members",
            "300",
            "--days",
            "2",
            "--start-date",
            "2026-04-01",
            "--out",
            str(tmp_path),
            "--fault-rate",
            "empty_file=0",
        ],
        capture_output=True,
        text=True,
        check=True,
        env=os.environ | {"PYTHONHASHSEED": "1"},
    )
    assert "2026-04-01" in result.stdout and "faults injected" in result.stdout
    assert not re.search(r"M\d{9}|VR[0-9A-F]{8}", result.stdout + result.stderr)
    assert not any("empty_file" == f["fault_kind"] for f in faults_of(tmp_path))
    assert (tmp_path / "_truth" / "manifest.json").exists()
