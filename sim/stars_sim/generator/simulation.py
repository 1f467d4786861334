"""World dynamics, day by day from EPOCH: which members each channel reaches, which in-home
visits complete and which appointments are booked, and which care gaps close.

What the dynamics need per member and day is only *whether* outreach reached, engaged, or
merely delivered to a member (and whether they opted out), so that is all the simulation draws:
by Poisson thinning, each of those outcome groups occurs independently with probability
1 - exp(-rate x share). The full counts of messages and calls are drawn later, conditioned on
these flags, for delivery days only (activity.py). So simulating from EPOCH costs the same at
the default volume and at 28 million rows a day, and a day's activity never depends on the
window being written.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import numpy as np

from . import codes
from .rng import stream
from .textfmt import day_from_number, day_number
from .world import World, YearGaps

TOUCH_CHANNELS = ("sms", "email", "live", "ivr")  # engage sms/email, dialer LIVE/IVR

# Touches per member per day at the default volume: (gap campaigns for members with an open
# gap, wellness campaigns for every enrolled member).
DEFAULT_RATES = {
    "sms": (0.050, 0.010),
    "email": (0.040, 0.010),
    "live": (0.020, 0.003),
    "ivr": (0.020, 0.005),
    "visit": (0.004, 0.001),
}
OUTCOME_PROBS = {
    "sms": np.array(codes.ENGAGE_OUTCOME_PROB["sms"]),
    "email": np.array(codes.ENGAGE_OUTCOME_PROB["email"]),
    "live": np.array(codes.DIALER_DISPOSITION_PROB["LIVE"]),
    "ivr": np.array(codes.DIALER_DISPOSITION_PROB["IVR"]),
}
# Outcome groups, as columns of the outcome tables (codes.ENGAGE_OUTCOMES / DIALER_DISPOSITIONS):
# reached, engaged, delivered, opted out (what the dynamics react to), and the rest.
_ENGAGE_GROUPS = {"reached": [3, 4], "engaged": [2], "delivered": [1], "opted_out": [5], "other": [0]}
_DIALER_GROUPS = {"reached": [0], "engaged": [], "delivered": [1], "opted_out": [5], "other": [2, 3, 4]}
OUTCOME_GROUPS = {"sms": _ENGAGE_GROUPS, "email": _ENGAGE_GROUPS, "live": _DIALER_GROUPS, "ivr": _DIALER_GROUPS}
FLAG_GROUPS = ("reached", "engaged", "delivered", "opted_out")  # bit i of a member's daily flags
# Vendor rows one touch produces, used to scale volume to --outreach-rows-per-day.
EVENTS_PER_OUTCOME = {
    "sms": np.array([len(codes.ENGAGE_OUTCOME_EVENTS[o]) for o in codes.ENGAGE_OUTCOMES]),
    "email": np.array([len(codes.ENGAGE_OUTCOME_EVENTS[o]) for o in codes.ENGAGE_OUTCOMES]),
    "live": np.ones(6, dtype=np.int64),
    "ivr": np.ones(6, dtype=np.int64),
}
ROWS_PER_TOUCH = {c: float(np.dot(OUTCOME_PROBS[c], EVENTS_PER_OUTCOME[c])) for c in TOUCH_CHANNELS} | {"visit": 2.0}
VISIT_COMPLETED_SHARE = codes.IHWA_OUTCOME_PROB[0]
MAX_VISIT_LEAD = 21  # days from scheduling to the visit

# Audience bits of a member's daily state.
ENROLLED, SMS_OK, EMAIL_OK, DIALER_OK = 1, 2, 4, 8
AUDIENCE_BIT = {"sms": SMS_OK, "email": EMAIL_OK, "live": DIALER_OK, "ivr": DIALER_OK, "visit": ENROLLED}

# Extra chance, on the day, that each open gap of a member closes: why outreach is measurable.
REACH_BOOST = (0.0, 0.004, 0.02, 0.05)  # none, delivered, engaged, reached
BOOKING_PROB = (0.0, 0.0, 0.12, 0.35)
BUSINESS_START_MS, BUSINESS_END_MS = 8 * 3_600_000, 18 * 3_600_000
MS_PER_MIN = 60_000

CLOSED_BY = ("baseline", "outreach", "in_home", "appointment")
_CLOSE_SOURCE_OF_CAUSE = np.array([0, 0, 1, 2], dtype=np.int8)  # -> codes.CLOSE_SOURCES


@dataclass
class DayState:
    """What a delivery day's outreach is expanded from (kept for days near the window only)."""

    day: int
    mask: np.ndarray  # uint8 open-gap mask per member
    audience: np.ndarray  # uint8 AUDIENCE_BIT flags per member
    scale: float  # volume multiplier of the day
    flags: dict  # channel -> uint8 per member, bit i = FLAG_GROUPS[i] happened at least once
    visit_lead: np.ndarray  # int8 per member: lead days of a completed visit scheduled today, 0 = none

    def rate(self, channel: str, members: np.ndarray) -> np.ndarray:
        gap_rate, wellness_rate = DEFAULT_RATES[channel]
        return self.scale * (wellness_rate + gap_rate * (self.mask[members] > 0))


@dataclass
class GapState:
    gaps: YearGaps
    close_day: np.ndarray
    closed_by: np.ndarray  # index into CLOSED_BY, -1 while open
    lookup: np.ndarray  # member * 6 + measure -> gap index, -1 if none


@dataclass
class SimResult:
    seed: int
    first_day: int
    last_day: int
    day_states: dict  # day number -> DayState
    appointments: dict  # column -> array, every appointment booked since EPOCH
    gap_states: dict  # year -> GapState (final state at last_day)
    cache: dict = field(default_factory=dict, repr=False)


APPOINTMENT_COLUMNS = {
    "appt_id": np.int64,
    "emr": np.int8,
    "member": np.int32,
    "measure": np.int8,
    "booked_day": np.int64,
    "booked_ms": np.int64,
    "start1_day": np.int64,
    "start1_ms": np.int64,
    "duration_min": np.int64,
    "resched_day": np.int64,
    "resched_ms": np.int64,
    "start2_day": np.int64,
    "start2_ms": np.int64,
    "outcome": np.int8,
    "outcome_day": np.int64,
    "outcome_ms": np.int64,
}


def random_set_bit(rng: np.random.Generator, masks: np.ndarray) -> np.ndarray:
    """One measure index drawn uniformly among the set bits of each (non-zero) mask."""
    bits = (masks[:, None] >> np.arange(len(codes.MEASURES), dtype=np.uint8)[None, :]) & 1
    counts = bits.sum(axis=1)
    pick = np.floor(rng.random(len(masks)) * counts).astype(np.int64)
    ranks = np.cumsum(bits, axis=1) - 1
    return np.argmax((ranks == pick[:, None]) & (bits == 1), axis=1).astype(np.int8)


def business_ms(rng, n, start=BUSINESS_START_MS, end=BUSINESS_END_MS) -> np.ndarray:
    """Whole-second local times of day between start and end."""
    return (start + np.floor(rng.random(n) * (end - start) / 1000) * 1000).astype(np.int64)


def group_share(channel: str, group: str) -> float:
    return float(OUTCOME_PROBS[channel][OUTCOME_GROUPS[channel][group]].sum())


class Simulation:
    def __init__(self, world: World, outreach_rows_per_day: int | None = None):
        self.world = world
        self.rows_override = outreach_rows_per_day
        # At benchmark volumes (more than a row per member a day) everyone would opt out on day
        # one and the audience would vanish, so opt-outs are only honoured at realistic volumes.
        self.honour_opt_outs = outreach_rows_per_day is None or outreach_rows_per_day <= world.n_members

    def run(self, last_day: dt.date, keep_from: dt.date) -> SimResult:
        """Simulate EPOCH..last_day; keep the day states from keep_from (minus the visit lead)."""
        world, n = self.world, self.world.n_members
        first, last = day_number(codes.EPOCH), day_number(last_day)
        keep = day_number(keep_from) - MAX_VISIT_LEAD - 1
        opted_out = {c: np.zeros(n, dtype=bool) for c in ("sms", "email", "dialer")}
        appointment_until = np.full(n, -1, dtype=np.int64)
        pending_visits: dict[int, list] = {}
        pending_appointments: dict[int, list] = {}
        day_states: dict[int, DayState] = {}
        appointment_parts = []
        gap_states: dict[int, GapState] = {}
        state: GapState | None = None
        next_appt_id = 1

        for d in range(first, last + 1):
            today = day_from_number(d)
            if state is None or state.gaps.year != today.year:
                state = self._new_year_state(today.year)
                gap_states[today.year] = state
            rng = stream(world.seed, "sim", today)
            g = state.gaps
            enrolled = (world.enroll_start <= d) & (world.enroll_end >= d)
            open_idx = np.flatnonzero((g.open_day <= d) & (state.close_day < 0) & (g.until_day >= d))
            mask = np.zeros(n, dtype=np.uint8)
            np.bitwise_or.at(mask, g.member[open_idx], (np.uint8(1) << g.measure[open_idx].astype(np.uint8)))
            audience = (
                enrolled * ENROLLED
                + (enrolled & world.has_phone & ~opted_out["sms"]) * SMS_OK
                + (enrolled & world.has_email & ~opted_out["email"]) * EMAIL_OK
                + (enrolled & world.has_phone & ~opted_out["dialer"]) * DIALER_OK
            ).astype(np.uint8)
            day = DayState(d, mask, audience, 1.0, {}, np.zeros(n, dtype=np.int8))
            day.scale = self._volume_scale(day)

            reach_level = np.zeros(n, dtype=np.int8)
            for channel in TOUCH_CHANNELS:
                members = np.flatnonzero(audience & AUDIENCE_BIT[channel])
                rate = day.rate(channel, members)
                flags = np.zeros(n, dtype=np.uint8)
                # Four independent 32-bit uniforms per member from two raw 64-bit draws (half the cost of floats).
                raw = rng.bit_generator.random_raw(2 * len(members)).reshape(2, -1)
                for bit, group in enumerate(FLAG_GROUPS):
                    uniform = (raw[bit // 2] >> np.uint64(32 * (bit % 2))) & np.uint64(0xFFFFFFFF)
                    happened = members[uniform < -np.expm1(-rate * group_share(channel, group)) * 2.0**32]
                    flags[happened] |= np.uint8(1 << bit)
                    if group == "opted_out":
                        if self.honour_opt_outs:
                            opted_out["dialer" if channel in ("live", "ivr") else channel][happened] = True
                    else:  # reached 3, engaged 2, delivered 1
                        reach_level[happened] = np.maximum(reach_level[happened], 3 - bit)
                day.flags[channel] = flags

            # In-home visits that will complete: the dynamics need when, and which gaps they address.
            members = np.flatnonzero(audience & ENROLLED)
            completes = rng.random(len(members)) < -np.expm1(-day.rate("visit", members) * VISIT_COMPLETED_SHARE)
            visitors = members[completes]
            lead = rng.integers(2, MAX_VISIT_LEAD + 1, len(visitors))
            day.visit_lead[visitors] = lead
            for v_day in np.unique(lead):
                who = visitors[lead == v_day]
                pending_visits.setdefault(d + int(v_day), []).append((who, mask[who]))
            if d >= keep:
                day_states[d] = day

            booked = self._book_appointments(rng, reach_level, (mask > 0) & enrolled, appointment_until, mask, d, next_appt_id)
            next_appt_id += len(booked["appt_id"])
            appointment_parts.append(booked)
            appointment_until[booked["member"]] = booked["outcome_day"]
            done = booked["outcome"] == 0
            for o_day in np.unique(booked["outcome_day"][done]):
                sel = done & (booked["outcome_day"] == o_day)
                pending_appointments.setdefault(int(o_day), []).append((booked["member"][sel], booked["measure"][sel]))

            self._close_gaps(rng, state, open_idx, reach_level, pending_visits.pop(d, []), pending_appointments.pop(d, []), d)

        appointments = {
            name: np.concatenate([p[name] for p in appointment_parts]).astype(t) for name, t in APPOINTMENT_COLUMNS.items()
        }
        return SimResult(world.seed, first, last, day_states, appointments, gap_states)

    # --- pieces of a day ---------------------------------------------------------------
    def _new_year_state(self, year: int) -> GapState:
        gaps = self.world.gaps(year)
        lookup = np.full(self.world.n_members * len(codes.MEASURES), -1, dtype=np.int64)
        lookup[gaps.member.astype(np.int64) * len(codes.MEASURES) + gaps.measure] = np.arange(len(gaps))
        return GapState(gaps, np.full(len(gaps), -1, dtype=np.int64), np.full(len(gaps), -1, dtype=np.int8), lookup)

    def _volume_scale(self, day: DayState) -> float:
        if self.rows_override is None:
            return 1.0
        has_gap = day.mask > 0
        expected = 0.0
        for channel, (gap_rate, wellness_rate) in DEFAULT_RATES.items():
            audience = (day.audience & AUDIENCE_BIT[channel]) > 0
            expected += ROWS_PER_TOUCH[channel] * (
                gap_rate * np.count_nonzero(audience & has_gap) + wellness_rate * np.count_nonzero(audience)
            )
        return self.rows_override / expected if expected > 0 else 0.0

    def _book_appointments(self, rng, reach_level, can_book, appointment_until, mask, d, first_id) -> dict:
        candidates = np.flatnonzero((reach_level >= 2) & can_book & (appointment_until < d))
        books = rng.random(len(candidates)) < np.take(BOOKING_PROB, reach_level[candidates])
        member = candidates[books].astype(np.int32)
        k = len(member)
        measure = random_set_bit(rng, mask[member]) if k else np.zeros(0, dtype=np.int8)
        lead = 3 + np.minimum(rng.geometric(1 / 12, k), 40)
        start1 = d + lead
        resched = rng.random(k) < codes.APPOINTMENT_RESCHEDULE_PROB
        resched_day = np.where(resched, d + 1 + np.floor(rng.random(k) * (lead - 1)).astype(np.int64), -1)
        start2 = np.where(resched, start1 + rng.integers(2, 22, k), start1)
        start1_ms = (8 * 60 + 30 * rng.integers(0, 18, k)) * MS_PER_MIN  # 08:00-16:30, half-hour slots
        start2_ms = np.where(resched, (8 * 60 + 30 * rng.integers(0, 18, k)) * MS_PER_MIN, start1_ms)
        duration = np.where(rng.random(k) < 0.6, 30, 60)
        outcome = rng.choice(3, size=k, p=codes.APPOINTMENT_OUTCOME_PROB).astype(np.int8)
        cancel_from = np.where(resched, resched_day + 1, d + 1)
        cancel_day = cancel_from + np.floor(rng.random(k) * np.maximum(start2 - cancel_from, 1)).astype(np.int64)
        after_start = start2_ms + np.where(outcome == 0, duration + rng.integers(5, 60, k), rng.integers(60, 150, k)) * MS_PER_MIN
        return {
            "appt_id": first_id + np.arange(k, dtype=np.int64),
            "emr": self.world.emr[member],
            "member": member,
            "measure": measure,
            "booked_day": np.full(k, d, dtype=np.int64),
            "booked_ms": business_ms(rng, k),
            "start1_day": start1,
            "start1_ms": start1_ms,
            "duration_min": duration,
            "resched_day": resched_day,
            "resched_ms": np.where(resched, business_ms(rng, k), -1),
            "start2_day": start2,
            "start2_ms": start2_ms,
            "outcome": outcome,
            "outcome_day": np.where(outcome == 1, np.minimum(cancel_day, start2 - 1), start2),
            "outcome_ms": np.where(outcome == 1, business_ms(rng, k), after_start),
        }

    def _close_gaps(self, rng, state: GapState, open_idx, reach_level, visit_closures, appointment_closures, d) -> None:
        g = state.gaps
        m = len(codes.MEASURES)
        open_member, open_measure = g.member[open_idx], g.measure[open_idx]
        cause = np.full(len(open_idx), -1, dtype=np.int8)
        u = rng.random((3, len(open_idx)))
        # Appointments completed today close the gap they were booked for.
        if appointment_closures:
            member = np.concatenate([a for a, _ in appointment_closures]).astype(np.int64)
            measure = np.concatenate([b for _, b in appointment_closures])
            gap = state.lookup[member * m + measure]
            hit = np.isin(open_idx, gap[gap >= 0])
            cause[hit & (u[0] < codes.APPOINTMENT_CLOSE_PROB)] = 3
        # Completed in-home visits close some of the gaps they addressed.
        if visit_closures:
            addressed = np.zeros(self.world.n_members, dtype=np.uint8)
            np.bitwise_or.at(
                addressed, np.concatenate([a for a, _ in visit_closures]), np.concatenate([b for _, b in visit_closures])
            )
            hit = ((addressed[open_member] >> open_measure.astype(np.uint8)) & 1).astype(bool)
            cause[(cause < 0) & hit & (u[1] < _IN_HOME_CLOSE_PROB[open_measure])] = 2
        # Otherwise the baseline chance, raised for members outreach reached today.
        base = g.daily_close_prob[open_idx]
        boosted = 1.0 - (1.0 - base) * (1.0 - np.take(REACH_BOOST, reach_level[open_member]))
        cause[(cause < 0) & (u[2] < base)] = 0
        cause[(cause < 0) & (u[2] < boosted)] = 1
        closed = cause >= 0
        state.close_day[open_idx[closed]] = d
        state.closed_by[open_idx[closed]] = cause[closed]


_IN_HOME_CLOSE_PROB = np.array([codes.IHWA_CLOSE_PROB[x] for x in codes.MEASURES])


def close_source_codes(closed_by: np.ndarray) -> np.ndarray:
    """edw close_source index for each gap (-1 while open)."""
    return np.where(closed_by >= 0, _CLOSE_SOURCE_OF_CAUSE[np.maximum(closed_by, 0)], -1).astype(np.int8)
