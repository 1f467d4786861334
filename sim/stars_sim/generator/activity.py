"""A delivery day's outreach in full: message and call counts per member and outcome, and the
in-home visits scheduled that day, drawn from the simulation's day state.

Counts are conditioned on the simulation's flags (a member flagged 'reached' gets at least one
reaching outcome, one not flagged gets none), so the files agree with the dynamics that closed
the gaps. Each draw comes from a stream keyed by (seed, day), never by the window.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import codes
from .rng import stream
from .simulation import (
    AUDIENCE_BIT,
    ENROLLED,
    FLAG_GROUPS,
    MAX_VISIT_LEAD,
    MS_PER_MIN,
    OUTCOME_GROUPS,
    OUTCOME_PROBS,
    SimResult,
    business_ms,
    group_share,
)
from .textfmt import day_from_number, day_number

VISIT_CACHE_ROWS = 1_000_000  # visits kept in memory across delivery days; beyond, they are redrawn


@dataclass
class Touches:
    """One channel's contacts on one day: members touched and their counts per outcome."""

    member: np.ndarray  # int32
    outcomes: np.ndarray  # (k, 6) int64
    open_mask: np.ndarray  # uint8 open-gap mask of each member on the day


def zero_truncated_poisson(rng: np.random.Generator, mean: np.ndarray) -> np.ndarray:
    """Poisson draws conditioned on being at least 1."""
    mean = np.asarray(mean, dtype=np.float64)
    out = np.empty(len(mean), dtype=np.int64)
    large = mean > 8.0
    if large.any():  # zeros are rarer than 1 in 3000: draw and redraw them
        draws = rng.poisson(mean[large])
        while (zero := draws == 0).any():
            draws[zero] = rng.poisson(mean[large][zero])
        out[large] = draws
    small = np.flatnonzero(~large)
    if len(small):  # inverse of the conditional distribution function
        mu = mean[small]
        u = rng.random(len(small))
        term = mu * np.exp(-mu) / -np.expm1(-mu)  # P(K = 1 | K >= 1)
        cdf, k = term.copy(), np.ones(len(small), dtype=np.int64)
        pending = u > cdf
        step = 1
        while pending.any() and step < 200:
            step += 1
            term = np.where(pending, term * mu / step, term)
            cdf = np.where(pending, cdf + term, cdf)
            k = np.where(pending, step, k)
            pending &= (u > cdf) & (term > 1e-17)
        out[small] = k
    return out


def _spread(rng, counts: np.ndarray, rows: np.ndarray, totals: np.ndarray, columns: list[int], probs: np.ndarray) -> None:
    """Share each row's total among the outcome columns of a group."""
    if not len(rows):
        return
    if len(columns) == 1:
        counts[rows, columns[0]] = totals
    else:
        counts[np.ix_(rows, columns)] = rng.multinomial(totals, probs[columns] / probs[columns].sum())


def touches(sim: SimResult, channel: str, day: int) -> Touches:
    key = ("touches", channel, day)
    if key not in sim.cache:
        sim.cache[key] = _draw_touches(sim, channel, day)
    return sim.cache[key]


def _draw_touches(sim: SimResult, channel: str, day: int) -> Touches:
    state = sim.day_states[day]
    rng = stream(sim.seed, "touches", channel, day_from_number(day))
    members = np.flatnonzero(state.audience & AUDIENCE_BIT[channel])
    rate = state.rate(channel, members)
    flags = state.flags[channel][members]
    probs = OUTCOME_PROBS[channel]
    counts = np.zeros((len(members), 6), dtype=np.int64)
    for bit, group in enumerate(FLAG_GROUPS):
        columns = OUTCOME_GROUPS[channel][group]
        if columns:
            rows = np.flatnonzero(flags & (1 << bit))
            _spread(rng, counts, rows, zero_truncated_poisson(rng, rate[rows] * group_share(channel, group)), columns, probs)
    columns = OUTCOME_GROUPS[channel]["other"]  # outcomes the dynamics ignore: plain Poisson
    totals = rng.poisson(rate * group_share(channel, "other"))
    rows = np.flatnonzero(totals)
    _spread(rng, counts, rows, totals[rows], columns, probs)
    touched = counts.sum(axis=1) > 0
    return Touches(members[touched].astype(np.int32), counts[touched], state.mask[members[touched]])


def visits(sim: SimResult, sched_day: int) -> dict[str, np.ndarray]:
    """In-home visits scheduled on a day: who, the outcome, and when each status happens."""
    key = ("visits", sched_day)
    if key not in sim.cache:
        table = _draw_visits(sim, sched_day)
        cached = [k for k in sim.cache if k[0] == "visits"]
        while cached and sum(len(sim.cache[k]["member"]) for k in cached) + len(table["member"]) > VISIT_CACHE_ROWS:
            del sim.cache[cached.pop(0)]
        sim.cache[key] = table
    return sim.cache[key]


def _draw_visits(sim: SimResult, d: int) -> dict[str, np.ndarray]:
    state = sim.day_states[d]
    rng = stream(sim.seed, "visits", day_from_number(d))
    members = np.flatnonzero(state.audience & ENROLLED)
    rate = state.rate("visit", members)
    p_complete, p_cancel, p_no_show = codes.IHWA_OUTCOME_PROB
    # Completed visits go to the members the simulation flagged, the first on its simulated day.
    flagged = np.flatnonzero(state.visit_lead[members] > 0)
    completed = zero_truncated_poisson(rng, rate[flagged] * p_complete)
    cancelled = rng.poisson(rate * p_cancel)
    no_show = rng.poisson(rate * p_no_show)
    member = np.concatenate([np.repeat(members[flagged], completed), np.repeat(members, cancelled), np.repeat(members, no_show)])
    outcome = np.concatenate(
        [np.zeros(completed.sum(), np.int8), np.ones(cancelled.sum(), np.int8), np.full(no_show.sum(), 2, np.int8)]
    )
    k = len(member)
    lead = rng.integers(2, MAX_VISIT_LEAD + 1, k)
    firsts = np.cumsum(completed) - completed
    lead[firsts] = state.visit_lead[members[flagged]]
    cancel_day = d + 1 + np.floor(rng.random(k) * (lead - 1)).astype(np.int64)
    visit_ms = business_ms(rng, k, 8 * 3_600_000, 17 * 3_600_000)
    # A completed visit is recorded after it ends, a no-show once the nurse gives up waiting.
    close_ms = visit_ms + np.where(outcome == 0, rng.integers(45, 100, k), rng.integers(20, 40, k)) * MS_PER_MIN
    day_offset = d - day_number(codes.EPOCH)
    return {
        "visit_id": day_offset * 10_000_000 + np.arange(k, dtype=np.int64),
        "member": member.astype(np.int32),
        "sched_day": np.full(k, d, dtype=np.int64),
        "sched_ms": business_ms(rng, k),
        "visit_day": d + lead,
        "outcome": outcome,
        "outcome_day": np.where(outcome == 1, cancel_day, d + lead),
        "outcome_ms": np.where(outcome == 1, business_ms(rng, k), close_ms),
        "gap_mask": state.mask[member],
    }


def ihwa_status_rows(sim: SimResult, day: int) -> dict[str, np.ndarray]:
    """Every ihwa status row of a day: SCH for the visits scheduled that day, CMP/CXL/NSH for
    earlier visits resolved that day. Columns: member, visit_id, gap_mask, status, local_ms."""
    parts = []
    for d in range(day - MAX_VISIT_LEAD, day + 1):
        if d not in sim.day_states:
            continue
        t = visits(sim, d)
        if d == day:
            idx, status, local_ms = np.arange(len(t["member"])), np.zeros(len(t["member"]), np.int8), t["sched_ms"]
        else:
            idx = np.flatnonzero(t["outcome_day"] == day)
            status, local_ms = (1 + t["outcome"][idx]).astype(np.int8), t["outcome_ms"][idx]
        parts.append(
            {
                "member": t["member"][idx],
                "visit_id": t["visit_id"][idx],
                "gap_mask": t["gap_mask"][idx],
                "status": status,
                "local_ms": local_ms,
            }
        )
    return {name: np.concatenate([p[name] for p in parts]) for name in ("member", "visit_id", "gap_mask", "status", "local_ms")}
