"""Rendering one provider's files for one day: rows -> faults -> files -> truth.

A provider-day is always rendered the same way whatever the window; the targets only say which
of its files to write now (a late part or a re-delivered copy may be all that is wanted).
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from . import codes, events, writers
from .events import LATE, MAIN, Rows
from .faults import (
    ADDED_COLUMN,
    APPLIES_TO,
    EXPECTED_REASON,
    QUARANTINING_FILE_FAULTS,
    RANDOM_FAULT_MIN_ROWS,
    ROW_FAULT_KINDS,
    ContentFault,
    ExtraFile,
    FaultPlan,
    assign_row_faults,
    guarantor,
    malformed_ids,
)
from .rng import stream
from .simulation import SimResult
from .textfmt import MS_PER_DAY, day_number
from .truth import TruthWriter
from .world import World

FUTURE_DAYS = (2, 200)  # a future timestamp is this many days past the true event time
DUP, UNKNOWN, MALFORMED, FUTURE, EARLY_START, FIELDS = (ROW_FAULT_KINDS.index(k) for k in ROW_FAULT_KINDS)

# Minute of the delivery day (UTC) a file's modification time is set to.
DELIVERY_MINUTE = {"edw": 30, "ihwa": 23 * 60 + 10, "dialer": 23 * 60 + 20, "emr_north": 23 * 60 + 30, "emr_south": 23 * 60 + 40}
LATE_MINUTE, REDELIVERY_MINUTE, EMPTY_MINUTE = 12 * 60, 12 * 60 + 30, 23 * 60 + 45


def file_name(provider: str, day: dt.date, hour: int | None = None, suffix: str = "") -> str:
    ymd = day.strftime("%Y%m%d")
    return {
        "ihwa": f"ihwa/IHWA_ASSESSMENTS_{ymd}{suffix}.txt",
        "engage": f"engage/engage_events_{ymd}_{hour if hour is not None else 0:02d}{suffix}.jsonl.gz",
        "dialer": f"dialer/dialer_calls_{ymd}{suffix}.csv",
        "emr_north": f"emr_north/SIU_{ymd}{suffix}.hl7",
        "emr_south": f"emr_south/appointments_{ymd}{suffix}.json",
    }[provider]


def delivery_timestamp(day: dt.date, minute: int) -> int:
    return day_number(day) * 86_400 + minute * 60


@dataclass(frozen=True)
class SlotTarget:
    """One file to write from a provider-day's rows."""

    rel_name: str
    name_day: dt.date  # partition: the date in the name (and the truth's delivery_date)
    delivered: dt.date  # arrival day (modification time)
    minute: int  # arrival minute of that day
    variant: ContentFault | None = None
    late: ExtraFile | None = None


@dataclass
class WrittenFile:
    rel_name: str
    provider: str
    delivered: dt.date
    rows: int


@dataclass
class Context:
    world: World
    sim: SimResult
    plan: FaultPlan
    out: Path
    start: dt.date
    end: dt.date
    truth: TruthWriter
    files: list[WrittenFile] = field(default_factory=list)
    _rows: dict = field(default_factory=dict)

    @property
    def rates(self) -> dict:
        return self.plan.rates

    def rows_of(self, provider: str, day: dt.date) -> int:
        key = (provider, day)
        if key not in self._rows:
            counter = {
                "ihwa": events.ihwa_rows,
                "engage": events.engage_rows,
                "dialer": events.dialer_rows,
            }.get(provider)
            self._rows[key] = (
                counter(self.world, self.sim, day) if counter else events.appointment_rows(self.world, self.sim, provider, day)
            )
        return self._rows[key]

    def guaranteed_kinds(self, provider: str, day: dt.date) -> list[str]:
        rows = {p: self.rows_of(p, day) for p in codes.TEXT_PROVIDERS}
        return [k for k in ROW_FAULT_KINDS if provider in APPLIES_TO[k] and guarantor(k, day, rows, self.plan) == provider]

    def finish_file(self, target: SlotTarget, provider: str, rows: int) -> None:
        stamp = delivery_timestamp(target.delivered, target.minute)
        os.utime(self.out / target.rel_name, (stamp, stamp))
        self.files.append(WrittenFile(target.rel_name, provider, target.delivered, rows))


# --- outreach vendors -----------------------------------------------------------------------


@dataclass(frozen=True)
class OutreachSpec:
    provider: str
    id_attr: str  # World attribute holding the identifier this vendor writes
    unknown_attr: str
    chunks: Callable[..., list[Callable[[], Rows]]]  # builders of the day's row chunks
    header: Callable[[ContentFault | None], str | None]
    lines: Callable[..., pa.Array]
    field_count: Callable[[ContentFault | None], int]
    canonical: Callable[[Rows], tuple[pa.Array, pa.Array, pa.Array]]  # channel, event type, measure codes
    gzip_level: int | None = None
    bom: bool = False


def _missing(v):
    return v.column if v and v.kind == "missing_required_column" else None


def _added(v):
    return v.column if v and v.kind == "added_column" else None


def _ihwa_canonical(rows):
    status = pa.array([codes.IHWA_STATUS_CANONICAL[s] for s in codes.IHWA_STATUSES]).take(
        pa.array(rows["status"].astype(np.int64))
    )
    return pa.array(["IN_HOME"]).take(pa.array(np.zeros(len(rows), dtype=np.int64))), status, rows["gap_codes"]


def _engage_canonical(rows):
    channel = pa.array([codes.ENGAGE_CHANNEL_CANONICAL[c] for c in codes.ENGAGE_CHANNELS]).take(
        pa.array(rows["channel"].astype(np.int64))
    )
    event = pa.array([codes.ENGAGE_EVENT_CANONICAL[e] for e in codes.ENGAGE_EVENTS]).take(
        pa.array(rows["event"].astype(np.int64))
    )
    return channel, event, pc.fill_null(rows["measure"], "")


def _dialer_canonical(rows):
    channel = pa.array([codes.DIALER_AGENT_CANONICAL[a] for a in codes.DIALER_AGENT_TYPES]).take(
        pa.array(rows["agent"].astype(np.int64))
    )
    event = pa.array([codes.DIALER_DISPOSITION_CANONICAL[d] for d in codes.DIALER_DISPOSITIONS]).take(
        pa.array(rows["disposition"].astype(np.int64))
    )
    return channel, event, rows["measure"]


def _added_value(provider, variant):
    return ADDED_COLUMN[provider][1] if _added(variant) else None


SPECS = {
    "ihwa": OutreachSpec(
        provider="ihwa",
        id_attr="mbi",
        unknown_attr="unknown_mbi",
        chunks=lambda ctx, day, late: events.ihwa_chunks(ctx.world, ctx.sim, day, late),
        header=lambda v: writers.ihwa_header(_missing(v), _added(v)),
        lines=lambda rows, ids, ts, ff, v: writers.ihwa_lines(rows, ids, ts, ff, _missing(v), _added_value("ihwa", v)),
        field_count=lambda v: len(writers.IHWA_COLUMNS) - bool(_missing(v)) + bool(_added(v)),
        canonical=_ihwa_canonical,
    ),
    "engage": OutreachSpec(
        provider="engage",
        id_attr="member_id",
        unknown_attr="unknown_member_id",
        chunks=lambda ctx, day, late: events.engage_chunks(ctx.world, ctx.sim, day),
        header=lambda v: None,
        lines=lambda rows, ids, ts, ff, v: writers.engage_lines(rows, ids, ts, ADDED_COLUMN["engage"] if _added(v) else None),
        field_count=lambda v: 7 + bool(_added(v)),
        canonical=_engage_canonical,
        gzip_level=writers.GZIP_LEVEL,
    ),
    "dialer": OutreachSpec(
        provider="dialer",
        id_attr="vendor_ref",
        unknown_attr="unknown_vendor_ref",
        chunks=lambda ctx, day, late: events.dialer_chunks(ctx.world, ctx.sim, day, late),
        header=lambda v: writers.dialer_header(_missing(v), _added(v)),
        lines=lambda rows, ids, ts, ff, v: writers.dialer_lines(rows, ids, ts, ff, _missing(v), _added_value("dialer", v)),
        field_count=lambda v: len(writers.DIALER_COLUMNS) - bool(_missing(v)) + bool(_added(v)),
        canonical=_dialer_canonical,
        bom=True,
    ),
}


def _written_ids(spec_ids: pa.Array, pool: pa.Array, fault: np.ndarray, rng) -> pa.Array:
    """The identifier column as written, with unknown and malformed ids swapped in."""
    ids = spec_ids
    unknown = fault == UNKNOWN
    if unknown.any():
        ids = pc.replace_with_mask(ids, pa.array(unknown), pool.take(pa.array(rng.integers(0, len(pool), int(unknown.sum())))))
    malformed = fault == MALFORMED
    if malformed.any():
        bad = malformed_ids(rng, ids.filter(pa.array(malformed)).to_pylist())
        ids = pc.replace_with_mask(ids, pa.array(malformed), pa.array(bad, type=pa.string()))
    return ids


def _row_fault_detail(kind: int, written_ts: int, field_count: int, expected_fields: int) -> str:
    if kind == UNKNOWN:
        return "well-formed member identifier that is not in the member crosswalk"
    if kind == MALFORMED:
        return "member identifier of the wrong shape"
    if kind == FUTURE:
        return f"event time {dt.datetime.fromtimestamp(written_ts / 1000, dt.UTC):%Y-%m-%dT%H:%M:%SZ} is after the delivery day"
    if kind == FIELDS:
        return f"{field_count} fields where the header has {expected_fields}"
    if kind == EARLY_START:
        return "appointment start is earlier than its booking time"
    return ""


@dataclass
class SlotTable:
    """Per file slot of a provider-day: what the rows of that slot turn into."""

    variants: dict  # slot -> ContentFault | None (from the plan, whatever the targets)
    active: np.ndarray  # bool: the slot's file is written in this rendering
    reason: np.ndarray  # int8 index into REASONS when the whole file is quarantined, else -1
    name: pa.Array  # relative file name ('' when inactive)
    day: np.ndarray  # int32 day number of the name (the truth's delivery_date)


REASONS = ("loaded",) + tuple(sorted(set(EXPECTED_REASON.values())))
_REASON_OF_ROW_FAULT = np.array([0] + [REASONS.index(EXPECTED_REASON[k]) for k in ROW_FAULT_KINDS[1:]], dtype=np.int8)


def _slot_table(ctx: Context, provider: str, day: dt.date, targets: dict[int, SlotTarget]) -> SlotTable:
    if provider == "engage":
        variants = {h: ctx.plan.content_fault("engage", day, h) for h in range(24)}
    else:
        variants = {MAIN: ctx.plan.content_fault(provider, day), LATE: None}
    slots = range(max(variants) + 1)
    quarantine = [variants[s] is not None and variants[s].kind in QUARANTINING_FILE_FAULTS for s in slots]
    return SlotTable(
        variants=variants,
        active=np.array([s in targets for s in slots]),
        reason=np.array(
            [REASONS.index(EXPECTED_REASON[variants[s].kind]) if quarantine[s] else -1 for s in slots], dtype=np.int8
        ),
        name=pa.array([targets[s].rel_name if s in targets else "" for s in slots], type=pa.string()),
        day=np.array([day_number(targets[s].name_day) if s in targets else 0 for s in slots], dtype=np.int32),
    )


def render_outreach(ctx: Context, provider: str, day: dt.date, targets: dict[int, SlotTarget]) -> None:
    spec = SPECS[provider]
    world, plan = ctx.world, ctx.plan
    late = plan.late_part(day)
    has_late_part = late is not None and late.provider == provider
    table = _slot_table(ctx, provider, day, targets)
    sinks: dict[int, writers.FileSink] = {}

    def sink(s: int) -> writers.FileSink:
        # Opened on first use: an hourly batch with no events is not delivered at all.
        if s not in sinks:
            t = targets[s]
            sinks[s] = writers.FileSink(
                ctx.out / t.rel_name,
                spec.header(t.variant),
                gzip_level=spec.gzip_level,
                cp1252=bool(t.variant and t.variant.kind == "wrong_encoding"),
                bom=spec.bom,
            )
        return sinks[s]

    for s, t in targets.items():  # a daily batch has a header even without rows; a faulty file is always written
        if spec.header(None) is not None or t.variant is not None:
            sink(s)
    kinds = [k for k in ROW_FAULT_KINDS if provider in APPLIES_TO[k] and ctx.rates[k] > 0]
    guaranteed = ctx.guaranteed_kinds(provider, day)
    by_chance = ctx.rows_of(provider, day) >= RANDOM_FAULT_MIN_ROWS
    id_values, pool = getattr(world, spec.id_attr), getattr(world, spec.unknown_attr)
    seen: set[int] = set()

    builders = spec.chunks(ctx, day, has_late_part)
    for chunk_index, build in enumerate(builders):
        rows = build()
        is_last = chunk_index == len(builders) - 1
        n = len(rows)
        rng = stream(world.seed, "faults", provider, day, chunk_index)
        slot = rows["slot"].astype(np.int64)
        clean_file = table.reason[slot] < 0
        force = [k for k in guaranteed if ROW_FAULT_KINDS.index(k) not in seen] if is_last else []
        force_mask = clean_file if provider == "engage" else clean_file & (slot == MAIN)
        fault = assign_row_faults(rng, n, ctx.rates, {k: clean_file for k in kinds}, force, force_mask, chance=by_chance)
        seen.update(np.unique(fault[fault >= 0]).tolist())

        ids = _written_ids(id_values.take(pa.array(rows["member"].astype(np.int64))), pool, fault, rng)
        written_ts = rows["ts"].copy()
        future = fault == FUTURE
        written_ts[future] += rng.integers(*FUTURE_DAYS, int(future.sum())) * MS_PER_DAY
        field_fault = np.zeros(n, dtype=np.int8)
        wrong_fields = fault == FIELDS
        field_fault[wrong_fields] = rng.choice(np.array([-1, 1], dtype=np.int8), int(wrong_fields.sum()))

        # Duplicates: exact copies, later in the same file or (engage) in a later hourly batch.
        dup = np.flatnonzero(fault == DUP)
        copy_slot = slot[dup].copy()
        if provider == "engage" and len(dup):
            later = copy_slot + np.floor(rng.random(len(dup)) * (24 - copy_slot)).astype(np.int64)
            # Only between batches of the same shape, so the copy's line is byte-identical.
            plain = np.array([table.variants[h] is None for h in range(24)])
            copy_slot = np.where(plain[later] & plain[copy_slot], later, copy_slot)

        # One order for everything: by file, originals by time, copies after them.
        occ_event = np.concatenate([np.arange(n), dup])
        occ_slot = np.concatenate([slot, copy_slot])
        occ_copy = np.concatenate([np.zeros(n, bool), np.ones(len(dup), bool)])
        order = np.lexsort((rows["seq"][occ_event], rows["ts"][occ_event], occ_copy, occ_slot))
        event, slot_of, is_copy = occ_event[order], occ_slot[order], occ_copy[order]
        ordered = rows.take(event)
        ordered_ids = ids.take(pa.array(event, type=pa.int64()))
        ordered_ts, ordered_ff = written_ts[event], field_fault[event]

        source_row = np.full(len(event), -1, dtype=np.int64)
        plain_lines = lines = None
        starts = np.concatenate([[0], np.flatnonzero(np.diff(slot_of)) + 1, [len(event)]])
        for a, b in zip(starts[:-1], starts[1:]):
            s = int(slot_of[a]) if b > a else -1
            if b == a or not table.active[s]:
                continue
            variant = targets[s].variant
            if variant is None:
                if plain_lines is None:
                    plain_lines = spec.lines(ordered, ordered_ids, ordered_ts, ordered_ff, None)
                lines = plain_lines.slice(a, b - a)
            else:
                part = ordered.slice(a, b)
                if variant.kind == "wrong_encoding" and sink(s).rows == 0:
                    part = _with_non_ascii_name(provider, part)
                lines = spec.lines(part, ordered_ids.slice(a, b - a), ordered_ts[a:b], ordered_ff[a:b], variant)
            source_row[a:b] = sink(s).write_lines(lines)
        del plain_lines, lines, ordered_ids, rows, ids  # keep one chunk's worth of memory at a time

        _record_outreach_truth(ctx, spec, table, ordered, event, slot_of, is_copy, source_row, fault, ordered_ts, ordered_ff, n)

    for s, open_sink in sorted(sinks.items()):
        open_sink.close()
        target = targets[s]
        _record_file_faults(ctx, provider, target)
        ctx.finish_file(target, provider, open_sink.rows)


NON_ASCII_NAME = {"ihwa": ("nurse", codes.NON_ASCII_NURSE), "dialer": ("agent_name", codes.NON_ASCII_AGENT)}


def _with_non_ascii_name(provider: str, rows: Rows) -> Rows:
    """A Windows-1252 file must show it: its first row gets a name with a letter beyond ASCII."""
    if not len(rows):
        return rows
    column, name = NON_ASCII_NAME[provider]
    first = np.zeros(len(rows), dtype=bool)
    first[0] = True
    changed = Rows(dict(rows.cols))
    changed[column] = pc.replace_with_mask(rows[column], pa.array(first), pa.array([name]))
    return changed


def _record_outreach_truth(
    ctx, spec, table: SlotTable, ordered: Rows, event, slot_of, is_copy, source_row, fault, ordered_ts, ordered_ff, n
) -> None:
    """Truth rows for the chunk's events, fault rows for its faulty rows and duplicate copies."""
    written = source_row >= 0
    original_written = np.zeros(n, dtype=bool)
    original_written[event[written & ~is_copy]] = True
    # An event's truth is its first written line: the original, or the copy when only the copy was written.
    truth_at = np.flatnonzero(written & (~is_copy | ~original_written[event]))
    copy_at = np.flatnonzero(written & is_copy & original_written[event])
    if not len(truth_at):
        return
    position_of_original = np.empty(n, dtype=np.int64)
    position_of_original[event[~is_copy]] = np.flatnonzero(~is_copy)

    t_slot, t_fault = slot_of[truth_at], fault[event[truth_at]]
    expected = np.where(table.reason[t_slot] >= 0, table.reason[t_slot], _REASON_OF_ROW_FAULT[np.maximum(t_fault, 0)])
    expected[(table.reason[t_slot] < 0) & (t_fault < 0)] = 0
    sub = ordered.take(truth_at)
    channel, event_type, measures = spec.canonical(sub)
    ctx.truth.add_outreach(
        pa.table(
            {
                "provider": pa.array(np.full(len(truth_at), spec.provider)),
                "event_key": sub["key"],
                "member_id": ctx.world.member_id.take(pa.array(sub["member"].astype(np.int64))),
                "channel": channel,
                "event_type": event_type,
                "event_ts": pa.array(ordered_ts[truth_at] * 1000, type=pa.int64()).cast(pa.timestamp("us", tz="UTC")),
                "measure_codes": measures,
                "delivery_date": pa.array(table.day[t_slot], type=pa.date32()),
                "file_name": table.name.take(pa.array(t_slot)),
                "source_row": pa.array(source_row[truth_at], type=pa.int64()),
                "expected": pa.array(REASONS).take(pa.array(expected.astype(np.int64))),
            }
        )
    )

    # Row faults at the event's truth line (not in quarantined files), duplicates at each copy.
    faulty = truth_at[(t_fault > 0) & (table.reason[t_slot] < 0)]
    if not len(faulty) and not len(copy_at):
        return
    names = table.name.to_pylist()
    kinds, details = [], []
    for p in faulty:
        code = int(fault[event[p]])
        expected_fields = spec.field_count(table.variants[int(slot_of[p])])
        kinds.append(ROW_FAULT_KINDS[code])
        details.append(_row_fault_detail(code, int(ordered_ts[p]), expected_fields + int(ordered_ff[p]), expected_fields))
    for p in copy_at:
        original = position_of_original[event[p]]
        kinds.append("duplicate_event")
        details.append(f"copy of {names[slot_of[original]]}:{source_row[original]}")
    where = np.concatenate([faulty, copy_at])
    ctx.truth.add_faults(
        pa.table(
            {
                "provider": pa.array(np.full(len(where), spec.provider)),
                "delivery_date": pa.array(table.day[slot_of[where]], type=pa.date32()),
                "file_name": table.name.take(pa.array(slot_of[where])),
                "source_row": pa.array(source_row[where], type=pa.int64()),
                "fault_kind": pa.array(kinds, type=pa.string()),
                "expected_reason": pa.array([EXPECTED_REASON[k] for k in kinds], type=pa.string()),
                "detail": pa.array(details, type=pa.string()),
            }
        )
    )


def _record_file_faults(ctx: Context, provider: str, target: SlotTarget) -> None:
    variant = target.variant
    if variant is not None:
        if variant.kind == "truncated_gzip":
            kept, size = writers.truncate_file(ctx.out / target.rel_name)
            detail = f"cut to {kept} of {size} bytes"
        elif variant.kind == "wrong_encoding":
            detail = "whole file in Windows-1252"
        elif variant.kind == "missing_required_column":
            detail = f"column {variant.column!r} missing"
        else:
            detail = f"extra column {variant.column!r}"
        ctx.truth.add_fault(provider, target.name_day, target.rel_name, variant.kind, EXPECTED_REASON[variant.kind], detail)
    if target.late is not None:
        ctx.truth.add_fault(
            provider,
            target.name_day,
            target.rel_name,
            "late_file",
            "late_file",
            f"second file of {target.name_day.isoformat()}, delivered {target.delivered.isoformat()}",
        )


# --- appointment EMRs -------------------------------------------------------------------------


def render_emr(ctx: Context, provider: str, day: dt.date, target: SlotTarget) -> None:
    world = ctx.world
    evs = events.appointment_events(world, ctx.sim, provider, day)
    n = len(evs)
    rng = stream(world.seed, "faults", provider, day, 0)
    booking = np.array([e.status == "BOOKED" for e in evs], dtype=bool)
    everyone = np.ones(n, dtype=bool)
    kinds = {
        k: (booking if k == "start_before_booking" else everyone)
        for k in ROW_FAULT_KINDS
        if provider in APPLIES_TO[k] and ctx.rates[k] > 0
    }
    fault = assign_row_faults(rng, n, ctx.rates, kinds, ctx.guaranteed_kinds(provider, day), chance=n >= RANDOM_FAULT_MIN_ROWS)
    members = pa.array(np.array([e.member for e in evs], dtype=np.int64), type=pa.int64())
    id_attr, pool_attr = ("mbi", "unknown_mbi") if provider == "emr_north" else ("member_id", "unknown_member_id")
    ids = _written_ids(getattr(world, id_attr).take(members), getattr(world, pool_attr), fault, rng).to_pylist()
    early = np.flatnonzero(fault == EARLY_START)
    early_by = dict(zip(early.tolist(), rng.integers(1, 31, len(early)).tolist()))  # days before the booking
    member_ids = world.member_id.take(members).to_pylist()
    ymd = day.strftime("%Y%m%d")

    chunks, resources, truth_rows, fault_rows = [], [], [], []
    for i, e in enumerate(evs):
        start = e.start_utc_ms
        if i in early_by:  # same time of day, some days before the booking
            start -= (-(-(e.start_utc_ms - e.booked_utc_ms) // MS_PER_DAY) + early_by[i]) * MS_PER_DAY
        end = start + (e.end_utc_ms - e.start_utc_ms)
        if provider == "emr_north":
            key, appointment = f"N{ymd}{i + 1:06d}", f"NA{e.appt_id:09d}"
            chunks.append(writers.hl7_message(e, key, appointment, ids[i], start, end))
        else:
            appointment = f"apt-{e.appt_id:09d}"
            key = f"{appointment}/_history/{e.version}"
            resources.append(writers.fhir_appointment(e, appointment, ids[i], start, end))
        reason = "loaded" if fault[i] < 0 else EXPECTED_REASON[ROW_FAULT_KINDS[fault[i]]]
        truth_rows.append(
            {
                "provider": provider,
                "event_key": key,
                "appointment_key": f"{provider}:{appointment}",
                "member_id": member_ids[i],
                "status": e.status,
                "start_ts": _utc(start),
                "booked_ts": _utc(e.booked_utc_ms),
                "event_ts": _utc(e.event_utc_ms),
                "measure_code": e.measure,
                "delivery_date": target.name_day,
                "file_name": target.rel_name,
                "source_row": i + 1,
                "expected": reason,
            }
        )
        if fault[i] >= 0:
            fault_rows.append((i + 1, ROW_FAULT_KINDS[fault[i]], _row_fault_detail(int(fault[i]), 0, 0, 0)))

    if n == 0:
        return  # nothing happened in the EMR that day: no file
    path = ctx.out / target.rel_name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"".join(chunks) if provider == "emr_north" else writers.fhir_bundle_bytes(resources))
    ctx.truth.add_appointment_events(truth_rows)
    for row, kind, detail in fault_rows:
        ctx.truth.add_fault(provider, target.name_day, target.rel_name, kind, EXPECTED_REASON[kind], detail, row)
    ctx.finish_file(target, provider, n)


def _utc(ms: int) -> dt.datetime:
    return dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(milliseconds=ms)


# --- a delivery day -----------------------------------------------------------------------------


def regular_targets(ctx: Context, provider: str, day: dt.date) -> dict[int, SlotTarget]:
    plan = ctx.plan
    if provider == "engage":
        return {
            h: SlotTarget(file_name("engage", day, h), day, day, h * 60 + 59, plan.content_fault("engage", day, h))
            for h in range(24)
        }
    targets = {
        MAIN: SlotTarget(file_name(provider, day), day, day, DELIVERY_MINUTE.get(provider, 0), plan.content_fault(provider, day))
    }
    late = plan.late_part(day)
    if late is not None and late.provider == provider and late.delivered <= ctx.end:
        targets[LATE] = late_target(ctx, late)
    return targets


def late_target(ctx: Context, late: ExtraFile) -> SlotTarget:
    return SlotTarget(
        file_name(late.provider, late.name_day, suffix=ctx.plan.suffix(late)),
        late.name_day,
        late.delivered,
        LATE_MINUTE,
        late=late,
    )


def render_provider_day(ctx: Context, provider: str, day: dt.date, targets: dict[int, SlotTarget]) -> None:
    if provider in SPECS:
        render_outreach(ctx, provider, day, targets)
    else:
        render_emr(ctx, provider, day, targets[MAIN])


def deliver_day(ctx: Context, day: dt.date) -> None:
    """Everything that arrives on one day (the edw extracts are written by the caller)."""
    plan = ctx.plan
    for provider in codes.TEXT_PROVIDERS:
        render_provider_day(ctx, provider, day, regular_targets(ctx, provider, day))

    # Late parts of days before the window arrive too; rendering their day gives the same bytes.
    for late in plan.late_arrivals(day):
        if late.name_day < ctx.start:
            render_outreach(ctx, late.provider, late.name_day, {LATE: late_target(ctx, late)})

    copy = plan.redelivered(day)
    if copy is not None:
        _deliver_copy(ctx, copy, day)
    empty = plan.empty_file(day)
    if empty is not None:
        _deliver_empty(ctx, empty, day)


def _deliver_copy(ctx: Context, copy: ExtraFile, day: dt.date) -> None:
    source = file_name(copy.provider, copy.source_day, copy.hour)
    target = SlotTarget(file_name(copy.provider, day, copy.hour, ctx.plan.suffix(copy)), day, day, REDELIVERY_MINUTE)
    if copy.source_day >= ctx.start:
        if not (ctx.out / source).exists():
            return  # an hourly batch without events was never delivered, so there is nothing to resend
        shutil.copyfile(ctx.out / source, ctx.out / target.rel_name)
        rows = next(f.rows for f in ctx.files if f.rel_name == source)
        ctx.truth.add_fault(
            copy.provider, day, target.rel_name, "redelivered_file", "duplicate_file", f"identical copy of {source}"
        )
        ctx.finish_file(target, copy.provider, rows)
    else:
        # The original predates this run, so here the copy is the only delivery of its rows.
        slot = copy.hour if copy.provider == "engage" else MAIN
        render_provider_day(ctx, copy.provider, copy.source_day, {slot: target})


def _deliver_empty(ctx: Context, empty: ExtraFile, day: dt.date) -> None:
    target = SlotTarget(file_name(empty.provider, day, empty.hour, ctx.plan.suffix(empty)), day, day, EMPTY_MINUTE)
    (ctx.out / target.rel_name).parent.mkdir(parents=True, exist_ok=True)
    (ctx.out / target.rel_name).write_bytes(b"")
    ctx.truth.add_fault(empty.provider, day, target.rel_name, "empty_file", "empty_file", "zero-byte file")
    ctx.finish_file(target, empty.provider, 0)
