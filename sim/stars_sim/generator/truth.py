"""Ground truth under <out>/_truth/: what the generator wrote and what a correct pipeline must make of it."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from . import codes
from .simulation import CLOSED_BY, SimResult, close_source_codes
from .textfmt import day_number
from .world import NO_END, REGIONS, World
from .writers import PARQUET_OPTIONS, write_parquet

UTC_TS = pa.timestamp("us", tz="UTC")

OUTREACH_EVENTS_SCHEMA = pa.schema(
    [
        ("provider", pa.string()),
        ("event_key", pa.string()),
        ("member_id", pa.string()),
        ("channel", pa.string()),
        ("event_type", pa.string()),
        ("event_ts", UTC_TS),
        ("measure_codes", pa.string()),
        ("delivery_date", pa.date32()),
        ("file_name", pa.string()),
        ("source_row", pa.int64()),
        ("expected", pa.string()),
    ]
)
APPOINTMENT_EVENTS_SCHEMA = pa.schema(
    [
        ("provider", pa.string()),
        ("event_key", pa.string()),
        ("appointment_key", pa.string()),
        ("member_id", pa.string()),
        ("status", pa.string()),
        ("start_ts", UTC_TS),
        ("booked_ts", UTC_TS),
        ("event_ts", UTC_TS),
        ("measure_code", pa.string()),
        ("delivery_date", pa.date32()),
        ("file_name", pa.string()),
        ("source_row", pa.int64()),
        ("expected", pa.string()),
    ]
)
FAULTS_SCHEMA = pa.schema(
    [
        ("provider", pa.string()),
        ("delivery_date", pa.date32()),
        ("file_name", pa.string()),
        ("source_row", pa.int64()),
        ("fault_kind", pa.string()),
        ("expected_reason", pa.string()),
        ("detail", pa.string()),
    ]
)


def _dates(day_numbers: np.ndarray) -> pa.Array:
    return pa.array(np.asarray(day_numbers, dtype=np.int32), type=pa.date32())


def _nullable_dates(day_numbers: np.ndarray, present: np.ndarray) -> pa.Array:
    return pa.array(np.asarray(day_numbers, dtype=np.int32), type=pa.date32(), mask=~present)


class TruthWriter:
    def __init__(self, out_dir: Path):
        self.dir = out_dir / "_truth"
        self.dir.mkdir(parents=True, exist_ok=True)
        # Event keys and member ids are nearly unique: dictionary-encode only the repetitive columns.
        options = PARQUET_OPTIONS | {
            "use_dictionary": ["provider", "channel", "event_type", "measure_codes", "file_name", "expected"]
        }
        self._outreach = pq.ParquetWriter(self.dir / "outreach_events.parquet", OUTREACH_EVENTS_SCHEMA, **options)
        self._faults = pq.ParquetWriter(self.dir / "faults.parquet", FAULTS_SCHEMA, **PARQUET_OPTIONS)
        self._appointment_rows: list[dict] = []
        self.outreach_expected: dict[str, int] = {}
        self.appointment_expected: dict[str, int] = {}
        self.faults_by_kind: dict[str, int] = {}

    def add_outreach(self, table: pa.Table) -> None:
        if table.num_rows:
            self._outreach.write_table(table.cast(OUTREACH_EVENTS_SCHEMA))
            _count_into(self.outreach_expected, table["expected"])

    def add_appointment_events(self, rows: list[dict]) -> None:
        self._appointment_rows.extend(rows)
        for row in rows:
            self.appointment_expected[row["expected"]] = self.appointment_expected.get(row["expected"], 0) + 1

    def add_faults(self, table: pa.Table) -> None:
        if table.num_rows:
            self._faults.write_table(table.cast(FAULTS_SCHEMA))
            _count_into(self.faults_by_kind, table["fault_kind"])

    def add_fault(
        self,
        provider: str,
        delivery_date: dt.date,
        file_name: str,
        kind: str,
        reason: str,
        detail: str,
        source_row: int | None = None,
    ) -> None:
        self.add_faults(
            pa.table(
                {
                    "provider": [provider],
                    "delivery_date": [delivery_date],
                    "file_name": [file_name],
                    "source_row": pa.array([source_row], type=pa.int64()),
                    "fault_kind": [kind],
                    "expected_reason": [reason],
                    "detail": [detail],
                }
            )
        )

    def finish(self, world: World, sim: SimResult, start: dt.date, end: dt.date, manifest: dict) -> None:
        self._outreach.close()
        self._faults.close()
        appointment_events = pa.Table.from_pylist(self._appointment_rows, schema=APPOINTMENT_EVENTS_SCHEMA)
        write_parquet(appointment_events, self.dir / "appointment_events.parquet")
        write_parquet(final_appointments(appointment_events), self.dir / "appointments.parquet")
        write_parquet(members_truth(world), self.dir / "members.parquet")
        write_parquet(contracts_truth(world), self.dir / "contracts.parquet")
        write_parquet(care_gaps_truth(world, sim, start, end), self.dir / "care_gaps.parquet")
        (self.dir / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")


def _count_into(counts: dict[str, int], values: pa.Array) -> None:
    for item in pc.value_counts(values).to_pylist():
        counts[item["values"]] = counts.get(item["values"], 0) + item["counts"]


def final_appointments(events: pa.Table) -> pa.Table:
    """Each appointment's latest state among the events a correct pipeline loads."""
    con = duckdb.connect()
    con.register("events", events)
    table = con.sql(
        """
        SELECT appointment_key, provider, member_id, measure_code,
               arg_max(status, (event_ts, event_key)) AS status,
               arg_max(start_ts, (event_ts, event_key)) AS start_ts,
               min(booked_ts) AS booked_ts,
               max(event_ts) AS last_event_ts,
               count(*) AS loaded_events
        FROM events
        WHERE expected = 'loaded'
        GROUP BY ALL
        ORDER BY appointment_key
        """
    ).to_arrow_table()
    con.close()
    return table


def members_truth(world: World) -> pa.Table:
    enrolled_to = world.enroll_end < NO_END
    return pa.table(
        {
            "member_id": world.member_id,
            "mbi": world.mbi,
            "vendor_ref": world.vendor_ref,
            "contract_id": pa.array([c.contract_id for c in world.contracts]).take(pa.array(world.contract.astype(np.int64))),
            "region": pa.array(REGIONS).take(pa.array(world.region.astype(np.int64))),
            "emr": pa.array(codes.EMR_PROVIDERS).take(pa.array(world.emr.astype(np.int64))),
            "birth_date": _dates(world.birth_day),
            "sex": pa.array(np.where(world.female, "F", "M")),
            "dual_status": world.dual,
            "lis_status": world.lis,
            "has_diabetes": world.diabetes,
            "has_hypertension": world.hypertension,
            "has_hyperlipidemia": world.hyperlipidemia,
            "enrollment_start": _dates(world.enroll_start),
            "enrollment_end": _nullable_dates(np.where(enrolled_to, world.enroll_end, 0), enrolled_to),
            "has_phone": world.has_phone,
            "has_email": world.has_email,
        }
    )


def contracts_truth(world: World) -> pa.Table:
    rows = []
    for c in world.contracts:
        for measure, value in c.rates.items():
            cms_id = codes.CMS_MEASURE_ID.get(measure, measure)
            rows.append(
                {
                    "contract_id": c.contract_id,
                    "region": c.region,
                    "quality_level": c.quality_level,
                    "measure_code": measure if measure in codes.CMS_MEASURE_ID else None,
                    "cms_measure_id": cms_id,
                    "true_rate": value,
                    "rate_kind": _rate_kind(cms_id),
                }
            )
    return pa.Table.from_pylist(rows)


def _rate_kind(cms_id: str) -> str:
    if cms_id in ("C01", "C02", "C11", "C12", "C14", "C20"):
        return "gap closure by year end, percent (without outreach)"
    if cms_id in ("D08", "D09", "D10"):
        return "share of members on the drug who are adherent, percent"
    if cms_id == "C18":
        return "readmission rate, percent (lower is better)"
    if cms_id == "C28":
        return "complaints per 1,000 members (lower is better)"
    if cms_id == "C29":
        return "members choosing to leave, percent (lower is better)"
    return "CAHPS score 0-100"


def care_gaps_truth(world: World, sim: SimResult, start: dt.date, end: dt.date) -> pa.Table:
    tables = []
    for year, state in sorted(sim.gap_states.items()):
        if year < start.year:
            continue
        g = state.gaps
        closed = state.close_day >= 0
        source = close_source_codes(state.closed_by)
        tables.append(
            pa.table(
                {
                    "gap_id": g.gap_ids,
                    "member_id": world.member_id.take(pa.array(g.member.astype(np.int64))),
                    "measure_code": pa.array(codes.MEASURES).take(pa.array(g.measure.astype(np.int64))),
                    "cms_measure_id": pa.array([codes.CMS_MEASURE_ID[m] for m in codes.MEASURES]).take(
                        pa.array(g.measure.astype(np.int64))
                    ),
                    "measurement_year": pa.array(np.full(len(g), year, dtype=np.int32)),
                    "open_date": _dates(g.open_day),
                    "closable_until": _dates(g.until_day),
                    "close_date": _nullable_dates(np.where(closed, state.close_day, 0), closed),
                    "close_source": pa.array(
                        np.array(codes.CLOSE_SOURCES, dtype=object)[np.maximum(source, 0)], mask=~closed, type=pa.string()
                    ),
                    "closed_by": pa.array(
                        np.array(CLOSED_BY, dtype=object)[np.maximum(state.closed_by, 0)], mask=~closed, type=pa.string()
                    ),
                    "opened_by_window_end": pa.array(g.open_day <= day_number(end)),
                }
            )
        )
    return pa.concat_tables(tables)
