"""Vendor rows for one provider and one day, expanded from the simulation's counts.

Outreach rows come in chunks of at most CHUNK_ROWS, each from its own random stream, so a
28-million-row day is built a few million rows at a time with the same result as one pass
would give. Everything is NumPy / Arrow: no Python loop per row.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

import numpy as np
import pyarrow as pa

from . import activity, codes
from .rng import mix64, stream
from .simulation import DEFAULT_RATES, EVENTS_PER_OUTCOME, SimResult, random_set_bit
from .textfmt import (
    MS_PER_DAY,
    MS_PER_HOUR,
    day_number,
    digits,
    hex_digits,
    join_columns,
    local_day_start_utc_ms,
    strings_from_matrix,
)
from .world import World

CHUNK_ROWS = 1_000_000
LATE_PART_FROM_MS = 15 * MS_PER_HOUR  # a held-back second file carries the day's rows from 15:00 local
MAIN, LATE = 0, 1  # file slots of daily-batch providers

# Share of engage sends per UTC hour: US daytime and evening.
ENGAGE_HOUR_WEIGHTS = np.array([3, 2, 1.5, 1, 0.5, 0.3, 0.3, 0.3, 0.3, 0.5, 1, 2, 4, 6, 7, 7, 7, 7, 7, 7, 6, 5, 4, 3.5])
ENGAGE_HOUR_WEIGHTS = ENGAGE_HOUR_WEIGHTS / ENGAGE_HOUR_WEIGHTS.sum()
# Event sequence of each message outcome, as indexes into codes.ENGAGE_EVENTS (-1 pads).
ENGAGE_TEMPLATE = np.full((len(codes.ENGAGE_OUTCOMES), 4), -1, dtype=np.int8)
for _i, _outcome in enumerate(codes.ENGAGE_OUTCOMES):
    for _j, _event in enumerate(codes.ENGAGE_OUTCOME_EVENTS[_outcome]):
        ENGAGE_TEMPLATE[_i, _j] = codes.ENGAGE_EVENTS.index(_event)
# Seconds after the previous event of the message: (low, high) per event type.
ENGAGE_DELAY_S = np.array([(0, 1), (1, 30), (5, 120), (60, 10800), (60, 7200), (10, 1800)])
DIALER_DURATION_S = {  # (low, high) per disposition, live agent / IVR
    "LIVE": np.array([(60, 900), (20, 60), (25, 45), (1, 5), (5, 60), (5, 90)]),
    "IVR": np.array([(30, 240), (20, 60), (25, 45), (1, 5), (5, 30), (5, 40)]),
}
CALLING_HOURS_MS = (8 * MS_PER_HOUR, 21 * MS_PER_HOUR)  # outbound calls 08:00-21:00 local


def day_offset(day: dt.date) -> int:
    return (day - codes.EPOCH).days


@dataclass
class Rows:
    """A chunk of one provider's rows: equal-length NumPy and Arrow columns."""

    cols: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.cols["ts"])

    def __getitem__(self, name):
        return self.cols[name]

    def __setitem__(self, name, value):
        self.cols[name] = value

    def take(self, indices: np.ndarray) -> Rows:
        idx = pa.array(indices, type=pa.int64())
        return Rows(
            {k: (v.take(idx) if isinstance(v, (pa.Array, pa.ChunkedArray)) else v[indices]) for k, v in self.cols.items()}
        )

    def slice(self, start: int, stop: int) -> Rows:
        return Rows(
            {
                k: (v.slice(start, stop - start) if isinstance(v, (pa.Array, pa.ChunkedArray)) else v[start:stop])
                for k, v in self.cols.items()
            }
        )


# --- lookups shared by the vendors ----------------------------------------------------------

_GAP_CODE_TEXT = pa.array([";".join(m for b, m in enumerate(codes.MEASURES) if mask >> b & 1) for mask in range(64)])
_MEASURE_TEXT = pa.array(list(codes.MEASURES) + [None])


def gap_codes_text(masks: np.ndarray) -> pa.Array:
    return _GAP_CODE_TEXT.take(pa.array(masks.astype(np.int64) & 63))


def campaign_measure(rng, channel: str, masks: np.ndarray) -> np.ndarray:
    """Measure index a message is about (len(MEASURES) = a wellness message about no measure)."""
    gap_rate, wellness_rate = DEFAULT_RATES[channel]
    is_gap = (masks > 0) & (rng.random(len(masks)) < gap_rate / (gap_rate + wellness_rate))
    measure = np.full(len(masks), len(codes.MEASURES), dtype=np.int8)
    if is_gap.any():
        measure[is_gap] = random_set_bit(rng, masks[is_gap])
    return measure


def _chunks_by_rows(rows_per_unit: np.ndarray) -> list[tuple[int, int]]:
    """Split units (kept whole) into consecutive ranges of at most CHUNK_ROWS rows."""
    if len(rows_per_unit) == 0:
        return [(0, 0)]
    ends = np.cumsum(rows_per_unit)
    bounds, start = [], 0
    while start < len(rows_per_unit):
        base = ends[start - 1] if start else 0
        stop = max(int(np.searchsorted(ends, base + CHUNK_ROWS, side="right")), start + 1)
        bounds.append((start, stop))
        start = stop
    return bounds


def _expand_units(member: np.ndarray, outcomes: np.ndarray, masks: np.ndarray):
    """One row per touch: (member, outcome index, open mask)."""
    flat = outcomes.ravel()
    unit = np.repeat(np.arange(len(member)), outcomes.shape[1])
    outcome = np.tile(np.arange(outcomes.shape[1], dtype=np.int8), len(member))
    unit, outcome = np.repeat(unit, flat), np.repeat(outcome, flat)
    return member[unit], outcome, masks[unit]


def _key_hex(day: dt.date, seq: np.ndarray, salt: int) -> pa.Array:
    """32 lower-case hex digits, unique per (day, seq): two bijective mixes of the pair."""
    pre = (np.uint64(day_offset(day)) << np.uint64(40)) | seq.astype(np.uint64)
    return strings_from_matrix(np.hstack([hex_digits(mix64(pre, salt), 16), hex_digits(mix64(pre, salt ^ 0x5DEECE66D), 16)]))


# --- engage ---------------------------------------------------------------------------------


def _day_touches(sim: SimResult, day: dt.date, channels: tuple[str, ...]) -> dict:
    return {c: activity.touches(sim, c, day_number(day)) for c in channels}


def engage_rows(world: World, sim: SimResult, day: dt.date) -> int:
    t = _day_touches(sim, day, ("sms", "email"))
    return int(sum((t[c].outcomes @ EVENTS_PER_OUTCOME[c]).sum() for c in ("sms", "email")))


def engage_chunks(world: World, sim: SimResult, day: dt.date) -> list[Callable[[], Rows]]:
    """Builders of the day's engage rows, CHUNK_ROWS at a time (all events of a member together)."""
    t = _day_touches(sim, day, ("sms", "email"))
    member = np.concatenate([t["sms"].member, t["email"].member])
    channel = np.concatenate([np.zeros(len(t["sms"].member), np.int8), np.ones(len(t["email"].member), np.int8)])
    outcomes = np.vstack([t["sms"].outcomes, t["email"].outcomes])
    masks = np.concatenate([t["sms"].open_mask, t["email"].open_mask])
    rows_per_unit = outcomes @ EVENTS_PER_OUTCOME["sms"]
    first_row = np.concatenate([[0], np.cumsum(rows_per_unit)])
    quarter = (day.month - 1) // 3 + 1
    campaigns = pa.array(
        [
            f"eng-{day.year}q{quarter}-{(m.lower() if m else 'wellness')}-{c}"
            for c in codes.ENGAGE_CHANNELS
            for m in list(codes.MEASURES) + [None]
        ]
    )

    def build(chunk_index: int, lo: int, hi: int) -> Rows:
        rng = stream(world.seed, "engage", day, chunk_index)
        day_start = day_number(day) * MS_PER_DAY
        msg_member, msg_outcome, msg_mask = _expand_units(member[lo:hi], outcomes[lo:hi], masks[lo:hi])
        msg_channel = np.repeat(np.repeat(channel[lo:hi], outcomes.shape[1]), outcomes[lo:hi].ravel())
        n_msg = len(msg_member)
        measure = np.empty(n_msg, dtype=np.int8)
        for c, name in enumerate(codes.ENGAGE_CHANNELS):
            sel = msg_channel == c
            measure[sel] = campaign_measure(rng, name, msg_mask[sel])
        sent = day_start + rng.choice(24, size=n_msg, p=ENGAGE_HOUR_WEIGHTS) * MS_PER_HOUR + rng.integers(0, MS_PER_HOUR, n_msg)

        # Each message expands into its outcome's event sequence, each event a little after the last.
        per_msg = EVENTS_PER_OUTCOME["sms"][msg_outcome]
        msg_of_event = np.repeat(np.arange(n_msg), per_msg)
        first_event = np.cumsum(per_msg) - per_msg
        position = np.arange(len(msg_of_event)) - first_event[msg_of_event]
        event = ENGAGE_TEMPLATE[msg_outcome[msg_of_event], position]
        low, high = ENGAGE_DELAY_S[event, 0], ENGAGE_DELAY_S[event, 1]
        delay = (low * 1000 + np.floor(rng.random(len(event)) * (high - low) * 1000)).astype(np.int64)
        delay[position == 0] = 0
        elapsed = np.cumsum(delay)
        elapsed -= elapsed[first_event][msg_of_event]
        ts = np.minimum(sent[msg_of_event] + elapsed, day_start + MS_PER_DAY - 1)  # the day's stream ends at midnight

        seq = first_row[lo] + np.arange(len(event), dtype=np.int64)
        ch, ms = msg_channel[msg_of_event], measure[msg_of_event]
        return Rows(
            {
                "member": msg_member[msg_of_event],
                "ts": ts,
                "slot": ((ts - day_start) // MS_PER_HOUR).astype(np.int16),
                "seq": seq,
                "key": _key_hex(day, seq, world.seed * 7919 + 1),
                "channel": ch,
                "event": event,
                "campaign": campaigns.take(pa.array(ch.astype(np.int64) * (len(codes.MEASURES) + 1) + ms)),
                "measure": _MEASURE_TEXT.take(pa.array(ms.astype(np.int64))),
            }
        )

    return [partial(build, i, lo, hi) for i, (lo, hi) in enumerate(_chunks_by_rows(rows_per_unit))]


# --- dialer ---------------------------------------------------------------------------------


def dialer_rows(world: World, sim: SimResult, day: dt.date) -> int:
    t = _day_touches(sim, day, ("live", "ivr"))
    return int(t["live"].outcomes.sum() + t["ivr"].outcomes.sum())


def dialer_chunks(world: World, sim: SimResult, day: dt.date, late_part: bool) -> list[Callable[[], Rows]]:
    """Builders of the day's dialer rows, CHUNK_ROWS at a time."""
    t = _day_touches(sim, day, ("live", "ivr"))
    member = np.concatenate([t["live"].member, t["ivr"].member])
    agent = np.concatenate([np.zeros(len(t["live"].member), np.int8), np.ones(len(t["ivr"].member), np.int8)])
    outcomes = np.vstack([t["live"].outcomes, t["ivr"].outcomes])
    masks = np.concatenate([t["live"].open_mask, t["ivr"].open_mask])
    calls_per_unit = outcomes.sum(axis=1)
    first_row = np.concatenate([[0], np.cumsum(calls_per_unit)])
    local_start = local_day_start_utc_ms(day, codes.ZONE["dialer"])
    quarter = (day.month - 1) // 3 + 1
    campaigns = pa.array([f"STARS_{day.year}Q{quarter}_{m or 'WELLNESS'}" for m in list(codes.MEASURES) + [None]])
    measure_text = pa.array(list(codes.MEASURES) + [""])
    agent_names = pa.array(list(codes.AGENT_NAMES) + [""])

    def build(chunk_index: int, lo: int, hi: int) -> Rows:
        rng = stream(world.seed, "dialer", day, chunk_index)
        call_member, disposition, call_mask = _expand_units(member[lo:hi], outcomes[lo:hi], masks[lo:hi])
        call_agent = np.repeat(np.repeat(agent[lo:hi], outcomes.shape[1]), outcomes[lo:hi].ravel())
        n = len(call_member)
        measure = np.empty(n, dtype=np.int8)
        for a, name in ((0, "live"), (1, "ivr")):
            sel = call_agent == a
            measure[sel] = campaign_measure(rng, name, call_mask[sel])
        local_ms = (
            CALLING_HOURS_MS[0]
            + np.floor(rng.random(n) * (CALLING_HOURS_MS[1] - CALLING_HOURS_MS[0]) / 1000).astype(np.int64) * 1000
        )
        bounds = np.where(call_agent[:, None] == 0, DIALER_DURATION_S["LIVE"][disposition], DIALER_DURATION_S["IVR"][disposition])
        duration = bounds[:, 0] + np.floor(rng.random(n) * (bounds[:, 1] - bounds[:, 0])).astype(np.int64)
        name_index = np.where(call_agent == 0, rng.integers(0, len(codes.AGENT_NAMES), n), len(codes.AGENT_NAMES))
        seq = first_row[lo] + np.arange(n, dtype=np.int64)
        measure64 = pa.array(measure.astype(np.int64))
        return Rows(
            {
                "member": call_member,
                "ts": local_start + local_ms,
                "slot": np.where(late_part & (local_ms >= LATE_PART_FROM_MS), LATE, MAIN).astype(np.int16),
                "seq": seq,
                "key": join_columns("DL", digits(np.full(n, day_offset(day)), 3), digits(seq, 9)),
                "agent": call_agent,
                "disposition": disposition,
                "duration": duration,
                "campaign": campaigns.take(measure64),
                "measure": measure_text.take(measure64),
                "agent_name": agent_names.take(pa.array(name_index.astype(np.int64))),
            }
        )

    return [partial(build, i, lo, hi) for i, (lo, hi) in enumerate(_chunks_by_rows(calls_per_unit))]


# --- ihwa -----------------------------------------------------------------------------------


def ihwa_rows(world: World, sim: SimResult, day: dt.date) -> int:
    return len(activity.ihwa_status_rows(sim, day_number(day))["member"])


def ihwa_chunks(world: World, sim: SimResult, day: dt.date, late_part: bool) -> list[Callable[[], Rows]]:
    """Builders of the day's ihwa status rows, CHUNK_ROWS at a time."""
    rows = activity.ihwa_status_rows(sim, day_number(day))
    order = np.lexsort((rows["status"], rows["visit_id"], rows["local_ms"]))
    local_start = local_day_start_utc_ms(day, codes.ZONE["ihwa"])
    nurses = pa.array(codes.NURSE_NAMES)

    def build(lo: int) -> Rows:
        sel = order[lo : lo + CHUNK_ROWS]
        n = len(sel)
        seq = lo + np.arange(n, dtype=np.int64)
        visit_id = rows["visit_id"][sel]
        local_ms = rows["local_ms"][sel] // 60_000 * 60_000  # the vendor records minutes only
        return Rows(
            {
                "member": rows["member"][sel],
                "ts": local_start + local_ms,
                "slot": np.where(late_part & (local_ms >= LATE_PART_FROM_MS), LATE, MAIN).astype(np.int16),
                "seq": seq,
                "key": join_columns("IH", digits(np.full(n, day_offset(day)), 3), digits(seq, 7)),
                "visit_id": join_columns("V", digits(visit_id, 10)),
                "status": rows["status"][sel],
                "gap_codes": gap_codes_text(rows["gap_mask"][sel]),
                "nurse": nurses.take(pa.array((visit_id * 7919) % len(codes.NURSE_NAMES))),
            }
        )

    return [partial(build, lo) for lo in range(0, max(len(order), 1), CHUNK_ROWS)]


# --- appointments ---------------------------------------------------------------------------


@dataclass
class AppointmentEvent:
    appt_id: int
    member: int
    measure: str
    status: str  # canonical
    version: int  # 1 = booking, then one per later event
    event_utc_ms: int
    start_utc_ms: int
    end_utc_ms: int
    booked_utc_ms: int


def appointment_events(world: World, sim: SimResult, provider: str, day: dt.date) -> list[AppointmentEvent]:
    """Every appointment event an EMR records on a local day, in time order."""
    a, d = sim.appointments, day_number(day)
    zone = codes.ZONE[provider]
    emr = codes.EMR_PROVIDERS.index(provider)

    def utc(days: np.ndarray, ms: np.ndarray) -> np.ndarray:
        out = np.empty(len(days), dtype=np.int64)
        for i, (dn, m) in enumerate(zip(days.tolist(), ms.tolist())):
            out[i] = local_day_start_utc_ms(codes.EPOCH + dt.timedelta(days=dn - day_number(codes.EPOCH)), zone) + m
        return out

    mine = a["emr"] == emr
    picks = []
    for status_of, when, at_ms, start_day, start_ms, version in (
        (None, "booked_day", "booked_ms", "start1_day", "start1_ms", lambda i: np.ones(len(i), np.int64)),
        ("RESCHEDULED", "resched_day", "resched_ms", "start2_day", "start2_ms", lambda i: np.full(len(i), 2, np.int64)),
        ("OUTCOME", "outcome_day", "outcome_ms", "start2_day", "start2_ms", lambda i: np.where(a["resched_day"][i] >= 0, 3, 2)),
    ):
        idx = np.flatnonzero(mine & (a[when] == d))
        if not len(idx):
            continue
        if status_of is None:
            status = np.full(len(idx), "BOOKED", dtype=object)
        elif status_of == "RESCHEDULED":
            status = np.full(len(idx), "RESCHEDULED", dtype=object)
        else:
            status = np.array(codes.APPOINTMENT_OUTCOMES, dtype=object)[a["outcome"][idx]]
        start = utc(a[start_day][idx], a[start_ms][idx])
        picks.append((idx, status, utc(a[when][idx], a[at_ms][idx]), start, version(idx)))
    events = []
    for idx, status, event_ts, start, version in picks:
        booked = utc(a["booked_day"][idx], a["booked_ms"][idx])
        for j, i in enumerate(idx.tolist()):
            events.append(
                AppointmentEvent(
                    appt_id=int(a["appt_id"][i]),
                    member=int(a["member"][i]),
                    measure=codes.MEASURES[int(a["measure"][i])],
                    status=str(status[j]),
                    version=int(version[j]),
                    event_utc_ms=int(event_ts[j]),
                    start_utc_ms=int(start[j]),
                    end_utc_ms=int(start[j] + a["duration_min"][i] * 60_000),
                    booked_utc_ms=int(booked[j]),
                )
            )
    events.sort(key=lambda e: (e.event_utc_ms, e.appt_id, e.version))
    return events


def appointment_rows(world: World, sim: SimResult, provider: str, day: dt.date) -> int:
    a, d = sim.appointments, day_number(day)
    mine = a["emr"] == codes.EMR_PROVIDERS.index(provider)
    return int(np.count_nonzero(mine & ((a["booked_day"] == d) | (a["resched_day"] == d) | (a["outcome_day"] == d))))
