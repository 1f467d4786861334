"""File formats: where each vendor's bytes come from.

Delimited and JSON-lines files are built as one Arrow string column of finished lines and
written as a single buffer per chunk (textfmt.lines_bytes), so a chunk of millions of rows costs
a few vectorized calls. HL7 and FHIR files are small (appointments) and are built per event.
"""

from __future__ import annotations

import datetime as dt
import gzip
import json
import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from . import codes
from .textfmt import (
    concat_text,
    format_datetime_space,
    format_hm,
    format_mdy,
    int_strings,
    lines_bytes,
    to_local_ms,
    utc_offset_ms,
)

GZIP_LEVEL = 3  # fast enough for a 28-million-row day; the bytes do not depend on the machine
PARQUET_OPTIONS = dict(compression="zstd", compression_level=3, use_dictionary=True, write_statistics=True, version="2.6")

IHWA_COLUMNS = ("RECORD_ID", "MBI", "VISIT_ID", "VISIT_STATUS", "STATUS_DATE", "STATUS_TIME", "GAP_CODES", "NURSE_NAME")
DIALER_COLUMNS = (
    "Call ID",
    "Member Ref",
    "Campaign",
    "Call Start",
    "Disposition",
    "Duration Sec",
    "Agent Type",
    "Measure",
    "Agent Name",
)
UTF8_BOM = b"\xef\xbb\xbf"


def write_parquet(table: pa.Table, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path, **PARQUET_OPTIONS)


class FileSink:
    """One output file, written a chunk at a time; counts data rows for source_row."""

    def __init__(self, path: Path, header: str | None, *, gzip_level: int | None = None, cp1252: bool = False, bom: bool = False):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._raw = open(path, "wb")
        # filename='' and mtime=0 keep the gzip header free of anything but the content.
        self._out = (
            gzip.GzipFile(filename="", mode="wb", fileobj=self._raw, mtime=0, compresslevel=gzip_level)
            if gzip_level
            else self._raw
        )
        self.cp1252 = cp1252
        self.header_lines = 1 if header is not None else 0
        self.rows = 0
        if bom and not cp1252:
            self._out.write(UTF8_BOM)
        if header is not None:
            self._write(memoryview(header.encode("utf-8")))

    def _write(self, data: memoryview) -> None:
        # A Windows-1252 file (the wrong-encoding fault) is transcoded a whole chunk at a time.
        self._out.write(bytes(data).decode("utf-8").encode("cp1252") if self.cp1252 else data)

    def write_lines(self, lines: pa.Array) -> np.ndarray:
        """Append finished lines; returns their 1-based line numbers in the file."""
        first = self.header_lines + self.rows + 1
        self._write(lines_bytes(lines))
        self.rows += len(lines)
        return np.arange(first, first + len(lines), dtype=np.int64)

    def close(self) -> None:
        if self._out is not self._raw:
            self._out.close()
        self._raw.close()


def truncate_file(path: Path) -> tuple[int, int]:
    """Cut a finished file to 60% of its bytes (the gzip trailer goes missing)."""
    size = path.stat().st_size
    keep = max(1, size * 6 // 10)
    os.truncate(path, keep)
    return keep, size


# --- ihwa -----------------------------------------------------------------------------------

_IHWA_STATUS = pa.array(codes.IHWA_STATUSES)


def ihwa_header(missing: str | None, added: str | None) -> str:
    names = [c for c in IHWA_COLUMNS if c != missing] + ([added] if added else [])
    return "|".join(names) + "\n"


def ihwa_lines(
    rows, ids: pa.Array, written_ts: np.ndarray, field_fault: np.ndarray, missing: str | None, added_value: str | None
) -> pa.Array:
    local = to_local_ms(written_ts, codes.ZONE["ihwa"])
    nurse = pc.if_else(pa.array(field_fault > 0), concat_text(rows["nurse"], "|RN"), rows["nurse"])
    values = {
        "RECORD_ID": rows["key"],
        "MBI": ids,
        "VISIT_ID": rows["visit_id"],
        "VISIT_STATUS": _IHWA_STATUS.take(pa.array(rows["status"].astype(np.int64))),
        "STATUS_DATE": format_mdy(local),
        "STATUS_TIME": format_hm(local),
        "GAP_CODES": rows["gap_codes"],
    }
    parts: list = []
    for name in IHWA_COLUMNS[:-1]:
        if name != missing:
            parts += [values[name], "|"]
    parts.pop()  # the separator before NURSE_NAME comes with it, so a short row can drop both
    parts.append(pc.if_else(pa.array(field_fault < 0), "", concat_text("|", nurse)))
    if added_value is not None:
        parts.append("|" + added_value)
    parts.append("\n")
    return concat_text(*parts)


# --- engage ---------------------------------------------------------------------------------

_ENGAGE_CHANNEL = pa.array(codes.ENGAGE_CHANNELS)
_ENGAGE_EVENT = pa.array(codes.ENGAGE_EVENTS)


def engage_lines(rows, ids: pa.Array, written_ts: np.ndarray, added: tuple[str, str] | None) -> pa.Array:
    measure = pc.if_else(pc.is_null(rows["measure"]), "null", concat_text('"', pc.fill_null(rows["measure"], ""), '"'))
    tail = f',"{added[0]}":"{added[1]}"}}\n' if added else "}\n"
    return concat_text(
        '{"event_id":"',
        rows["key"],
        '","member_id":"',
        ids,
        '","channel":"',
        _ENGAGE_CHANNEL.take(pa.array(rows["channel"].astype(np.int64))),
        '","event":"',
        _ENGAGE_EVENT.take(pa.array(rows["event"].astype(np.int64))),
        '","ts":',
        int_strings(written_ts),
        ',"campaign_id":"',
        rows["campaign"],
        '","measure":',
        measure,
        tail,
    )


# --- dialer ---------------------------------------------------------------------------------

_DIALER_DISPOSITION = pa.array(codes.DIALER_DISPOSITIONS)
_DIALER_AGENT = pa.array(codes.DIALER_AGENT_TYPES)


def dialer_header(missing: str | None, added: str | None) -> str:
    names = [c for c in DIALER_COLUMNS if c != missing] + ([added] if added else [])
    return '"' + '","'.join(names) + '"\r\n'


def dialer_lines(
    rows, ids: pa.Array, written_ts: np.ndarray, field_fault: np.ndarray, missing: str | None, added_value: str | None
) -> pa.Array:
    local = to_local_ms(written_ts, codes.ZONE["dialer"])
    agent_name = pc.if_else(pa.array(field_fault > 0), concat_text(rows["agent_name"], '","TRANSFER'), rows["agent_name"])
    values = {
        "Call ID": rows["key"],
        "Member Ref": ids,
        "Campaign": rows["campaign"],
        "Call Start": format_datetime_space(local),
        "Disposition": _DIALER_DISPOSITION.take(pa.array(rows["disposition"].astype(np.int64))),
        "Duration Sec": int_strings(rows["duration"]),
        "Agent Type": _DIALER_AGENT.take(pa.array(rows["agent"].astype(np.int64))),
        "Measure": rows["measure"],
    }
    parts: list = ['"']
    for name in DIALER_COLUMNS[:-1]:
        if name != missing:
            parts += [values[name], '","']
    parts.pop()
    parts.append(pc.if_else(pa.array(field_fault < 0), "", concat_text('","', agent_name)))
    if added_value is not None:
        parts.append('","' + added_value)
    parts.append('"\r\n')
    return concat_text(*parts)


# --- HL7 v2 SIU (emr_north) -----------------------------------------------------------------


def _with_offset(utc_ms: int, zone: str) -> tuple[dt.datetime, str]:
    offset = int(utc_offset_ms(np.array([utc_ms]), zone)[0])
    local = dt.datetime(1970, 1, 1) + dt.timedelta(milliseconds=utc_ms + offset)
    sign = "+" if offset >= 0 else "-"
    minutes = abs(offset) // 60_000
    return local, f"{sign}{minutes // 60:02d}{minutes % 60:02d}"


def hl7_time(utc_ms: int, zone: str) -> str:
    local, offset = _with_offset(utc_ms, zone)
    return local.strftime("%Y%m%d%H%M%S") + offset


def iso_time(utc_ms: int, zone: str) -> str:
    local, offset = _with_offset(utc_ms, zone)
    return local.strftime("%Y-%m-%dT%H:%M:%S") + offset[:3] + ":" + offset[3:]


def hl7_message(event, control_id: str, placer_id: str, patient_id: str, start_ms: int, end_ms: int) -> bytes:
    zone = codes.ZONE["emr_north"]
    trigger = codes.HL7_TRIGGER[event.status]
    sch = [""] * 25
    sch[0], sch[1] = placer_id, placer_id
    sch[6] = event.measure
    sch[10] = f"^^^{hl7_time(start_ms, zone)}^{hl7_time(end_ms, zone)}"
    sch[24] = codes.HL7_FILLER_STATUS[event.status]
    segments = [
        f"MSH|^~\\&|NORTHEMR|NORTH_REGION|STARS|PAYER|{hl7_time(event.event_utc_ms, zone)}||SIU^{trigger}^SIU_S12|{control_id}|P|2.5.1",
        "SCH|" + "|".join(sch),
        f"PID|1||{patient_id}^^^CMS^MB",
        f"AIS|1||{event.measure}^Care gap visit",
    ]
    return ("\r".join(segments) + "\r\n").encode("utf-8")


# --- FHIR R4 (emr_south) --------------------------------------------------------------------


def fhir_appointment(event, appointment_id: str, member_ref: str, start_ms: int, end_ms: int) -> dict:
    zone = codes.ZONE["emr_south"]
    return {
        "resourceType": "Appointment",
        "id": appointment_id,
        "meta": {"versionId": str(event.version), "lastUpdated": iso_time(event.event_utc_ms, zone)},
        "status": codes.FHIR_STATUS[event.status],
        "created": iso_time(event.booked_utc_ms, zone),
        "start": iso_time(start_ms, zone),
        "end": iso_time(end_ms, zone),
        "reasonCode": [{"coding": [{"system": "urn:payer:stars-measure", "code": event.measure}]}],
        "participant": [{"actor": {"identifier": {"system": "urn:payer:member-id", "value": member_ref}}, "status": "accepted"}],
    }


def fhir_bundle_bytes(resources: list[dict]) -> bytes:
    bundle = {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": r} for r in resources]}
    return (json.dumps(bundle, ensure_ascii=False, indent=1) + "\n").encode("utf-8")
