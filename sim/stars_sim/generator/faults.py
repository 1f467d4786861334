"""Fault kinds, their rates, and which files and rows carry them.

File-level faults follow a deterministic calendar: a kind with rate r strikes every round(1/r)-th
day (with a per-seed phase), so any window at least that long contains it and a day's faults
depend only on (seed, rates, day). Row-level faults strike each row with probability r; on
every day one provider is designated per kind to carry at least one, so no enabled kind is
ever missing from a run.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from functools import cache

import numpy as np

from . import codes
from .rng import stable_int
from .textfmt import day_number

ROW_FAULT_KINDS = (
    "duplicate_event",
    "unknown_member_id",
    "malformed_member_id",
    "future_timestamp",
    "start_before_booking",
    "wrong_field_count",
)
FILE_FAULT_KINDS = (
    "redelivered_file",
    "late_file",
    "wrong_encoding",
    "truncated_gzip",
    "empty_file",
    "added_column",
    "missing_required_column",
)
FAULT_KINDS = ROW_FAULT_KINDS + FILE_FAULT_KINDS

EXPECTED_REASON = {
    "duplicate_event": "duplicate_event",
    "redelivered_file": "duplicate_file",
    "late_file": "late_file",
    "unknown_member_id": "unknown_member",
    "malformed_member_id": "malformed_member_id",
    "future_timestamp": "future_timestamp",
    "start_before_booking": "start_before_booking",
    "wrong_field_count": "wrong_field_count",
    "wrong_encoding": "wrong_encoding",
    "truncated_gzip": "truncated_gzip",
    "empty_file": "empty_file",
    "added_column": "schema_drift",
    "missing_required_column": "missing_required_column",
}
# File faults after which the pipeline loads nothing from the file.
QUARANTINING_FILE_FAULTS = ("wrong_encoding", "truncated_gzip", "missing_required_column", "empty_file")

APPLIES_TO = {
    "duplicate_event": ("ihwa", "engage", "dialer"),
    "unknown_member_id": codes.TEXT_PROVIDERS,
    "malformed_member_id": codes.TEXT_PROVIDERS,
    "future_timestamp": codes.OUTREACH_PROVIDERS,
    "start_before_booking": codes.EMR_PROVIDERS,
    "wrong_field_count": ("ihwa", "dialer"),
    "redelivered_file": codes.TEXT_PROVIDERS,
    "late_file": ("ihwa", "dialer"),
    "wrong_encoding": ("ihwa", "dialer"),
    "truncated_gzip": ("engage",),
    "empty_file": codes.TEXT_PROVIDERS,
    "added_column": ("ihwa", "dialer", "engage"),
    "missing_required_column": ("ihwa", "dialer"),
}

# Row kinds: chance per row. File kinds: share of delivery days that carry the fault.
DEFAULT_RATES = {
    "duplicate_event": 0.004,
    "unknown_member_id": 0.003,
    "malformed_member_id": 0.003,
    "future_timestamp": 0.002,
    "start_before_booking": 0.004,
    "wrong_field_count": 0.002,
} | {kind: 1 / 7 for kind in FILE_FAULT_KINDS}

REQUIRED_COLUMNS = {"ihwa": ("MBI", "STATUS_DATE", "VISIT_STATUS"), "dialer": ("Member Ref", "Call Start", "Disposition")}
ADDED_COLUMN = {
    "ihwa": ("SOURCE_SYSTEM", "IHWA-EXPORT-V2"),
    "dialer": ("Queue", "STARS-OUTBOUND"),
    "engage": ("template_id", "tpl-2026-gap-reminder"),
}
BUSY_ENGAGE_HOURS = tuple(range(15, 22))  # the busiest UTC hours, so a faulty hourly file has rows
ENGAGE_ROWS_FOR_DRIFT = 400  # about 25 lines in one busy hour
MAX_DELIVERY_LAG = 3
# A rate of a few per thousand means nothing in a file of a dozen rows (one fault would be 8%),
# so chance faults are only drawn in a provider-day with at least this many rows...
RANDOM_FAULT_MIN_ROWS = 100
# ...and the guaranteed one of each kind goes to a provider with this many rows, else the biggest.
GUARANTOR_MIN_ROWS = 200


def resolve_rates(overrides: dict[str, float] | None, enabled: bool) -> dict[str, float]:
    rates = dict(DEFAULT_RATES)
    for kind, rate in (overrides or {}).items():
        if kind not in rates:
            raise ValueError(f"unknown fault kind {kind!r}; known kinds: {', '.join(FAULT_KINDS)}")
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"fault rate for {kind} must be between 0 and 1, got {rate}")
        rates[kind] = float(rate)
    return rates if enabled else {kind: 0.0 for kind in rates}


@dataclass(frozen=True)
class ContentFault:
    kind: str  # wrong_encoding, missing_required_column, truncated_gzip or added_column
    provider: str
    hour: int | None = None  # engage hourly file
    column: str | None = None


@dataclass(frozen=True)
class ExtraFile:
    """A file beyond a provider's regular ones for a date: late part, empty file or re-delivered copy."""

    kind: str  # late_file, empty_file, redelivered_file
    provider: str
    name_day: dt.date  # the date in the file's name (its partition)
    delivered: dt.date  # the day it arrives
    hour: int | None = None
    source_day: dt.date | None = None  # redelivered: the day of the original


class FaultPlan:
    """Every file-level decision, as a pure function of (seed, rates, day)."""

    def __init__(self, seed: int, rates: dict[str, float], rows_of=None):
        self.seed = seed
        self.rates = rates
        # rows_of(provider, day) -> the day's row count (a world fact, window-independent): lets
        # a file fault prefer a file that has rows, so the fault is visible.
        self.rows_of = rows_of or (lambda provider, day: 1)
        # Phases are a per-seed permutation: at the default rates (every 7th day) each file-level
        # kind has its own weekday, so two of them never compete for the same file.
        order = sorted(FILE_FAULT_KINDS, key=lambda kind: stable_int(seed, "phase", kind))
        self.phase = {kind: order.index(kind) for kind in FILE_FAULT_KINDS}

    def strikes(self, kind: str, day: dt.date) -> bool:
        rate = self.rates[kind]
        if rate <= 0 or day < codes.EPOCH:  # the world has no files before it starts
            return False
        period = max(1, round(1 / rate))
        return (day_number(day) + self.phase[kind]) % period == 0

    def _pick(self, kind: str, day: dt.date, candidates, min_rows: int = 0) -> list:
        start = stable_int(self.seed, "pick", kind, day) % len(candidates)
        ordered = list(candidates[start:]) + list(candidates[:start])
        if min_rows:  # providers with enough rows first, the rest after
            ordered.sort(key=lambda p: self.rows_of(p, day) < min_rows)
        return ordered

    @cache
    def content_faults(self, day: dt.date) -> tuple[ContentFault, ...]:
        """Faults inside a day's regular files; at most one per file."""
        taken: set = set()
        faults = []
        for kind in ("wrong_encoding", "missing_required_column", "truncated_gzip", "added_column"):
            if not self.strikes(kind, day):
                continue
            for provider in self._pick(kind, day, APPLIES_TO[kind], min_rows=1):
                if provider == "engage" and kind == "added_column" and self.rows_of("engage", day) < ENGAGE_ROWS_FOR_DRIFT:
                    continue  # an hourly batch this thin may have no line to show the extra key
                if provider == "engage":
                    hours = [h for h in self._pick(kind + "-hour", day, BUSY_ENGAGE_HOURS) if ("engage", h) not in taken]
                    target = ("engage", hours[0])
                else:
                    target = (provider, None)
                if target in taken:
                    continue
                taken.add(target)
                column = None
                if kind == "missing_required_column":
                    column = self._pick("missing-column", day, REQUIRED_COLUMNS[provider])[0]
                elif kind == "added_column":
                    column = ADDED_COLUMN[provider][0]
                faults.append(ContentFault(kind, provider, target[1], column))
                break
        return tuple(faults)

    def content_fault(self, provider: str, day: dt.date, hour: int | None = None) -> ContentFault | None:
        for fault in self.content_faults(day):
            if fault.provider == provider and fault.hour == hour:
                return fault
        return None

    def quarantined_main(self, provider: str, day: dt.date) -> bool:
        return any(
            f.provider == provider and f.kind in QUARANTINING_FILE_FAULTS and f.hour is None for f in self.content_faults(day)
        )

    @cache
    def late_part(self, day: dt.date) -> ExtraFile | None:
        """The day's second file, held back by the vendor and delivered 1-3 days later."""
        if not self.strikes("late_file", day):
            return None
        provider = self._pick("late_file", day, APPLIES_TO["late_file"], min_rows=5)[0]
        lag = 1 + stable_int(self.seed, "late-lag", day) % MAX_DELIVERY_LAG
        return ExtraFile("late_file", provider, day, day + dt.timedelta(days=lag))

    @cache
    def empty_file(self, day: dt.date) -> ExtraFile | None:
        if not self.strikes("empty_file", day):
            return None
        provider = self._pick("empty_file", day, APPLIES_TO["empty_file"])[0]
        hour = self._pick("empty-hour", day, BUSY_ENGAGE_HOURS)[0] if provider == "engage" else None
        return ExtraFile("empty_file", provider, day, day, hour)

    @cache
    def redelivered(self, day: dt.date) -> ExtraFile | None:
        """A clean regular file of an earlier day, sent again under a name dated this day."""
        if not self.strikes("redelivered_file", day):
            return None
        source = day - dt.timedelta(days=1 + stable_int(self.seed, "redelivery-lag", day) % MAX_DELIVERY_LAG)
        if source < codes.EPOCH:
            return None
        for provider in self._pick("redelivered_file", day, APPLIES_TO["redelivered_file"]):
            if provider == "engage":
                faulty_hours = {f.hour for f in self.content_faults(source) if f.provider == "engage"}
                hour = next(h for h in self._pick("redelivery-hour", day, BUSY_ENGAGE_HOURS) if h not in faulty_hours)
                return ExtraFile("redelivered_file", provider, day, day, hour, source)
            if self.content_fault(provider, source) is None and self.rows_of(provider, source) > 0:
                return ExtraFile("redelivered_file", provider, day, day, None, source)
        return None

    def late_arrivals(self, day: dt.date) -> list[ExtraFile]:
        """Late parts of earlier days that arrive on this day."""
        found = []
        for lag in range(1, MAX_DELIVERY_LAG + 1):
            late = self.late_part(day - dt.timedelta(days=lag))
            if late is not None and late.delivered == day:
                found.append(late)
        return found

    def extra_files(self, provider: str, name_day: dt.date, hour: int | None = None) -> list[ExtraFile]:
        """Extra files whose names carry this provider and date (and hour), in suffix order _02, _03..."""
        extras = []
        late = self.late_part(name_day)
        if late is not None and late.provider == provider and hour is None:
            extras.append(late)
        for extra in (self.empty_file(name_day), self.redelivered(name_day)):
            if extra is not None and extra.provider == provider and extra.hour == hour:
                extras.append(extra)
        return extras

    def suffix(self, extra: ExtraFile) -> str:
        siblings = self.extra_files(extra.provider, extra.name_day, extra.hour)
        return f"_{siblings.index(extra) + 2:02d}"

    def __hash__(self):  # lru_cache on methods keys on the instance
        return id(self)


def guarantor(kind: str, day: dt.date, rows_by_provider: dict[str, int], plan: FaultPlan) -> str | None:
    """The provider that must carry at least one row of this kind on this day."""
    if plan.rates[kind] <= 0:
        return None
    eligible = [p for p in APPLIES_TO[kind] if rows_by_provider.get(p, 0) > 0 and not plan.quarantined_main(p, day)]
    if not eligible:
        return None
    roomy = [p for p in eligible if rows_by_provider[p] >= GUARANTOR_MIN_ROWS]
    if not roomy:  # a small world: the provider with the most rows that day
        return max(eligible, key=lambda p: (rows_by_provider[p], -eligible.index(p)))
    return roomy[(day_number(day) + ROW_FAULT_KINDS.index(kind)) % len(roomy)]  # spread over the big ones


def assign_row_faults(
    rng: np.random.Generator,
    n: int,
    rates: dict[str, float],
    eligible: dict[str, np.ndarray],
    force: list[str],
    force_mask: np.ndarray | None = None,
    chance: bool = True,
) -> np.ndarray:
    """Index into ROW_FAULT_KINDS per row (-1 = clean); at most one fault per row.

    `eligible[kind]` says which rows may carry the kind; `force` lists kinds that must appear at
    least once (placed on a row allowed by `force_mask` when chance alone left none); with
    `chance` False only the forced faults are placed.
    """
    assigned = np.full(n, -1, dtype=np.int8)
    if chance:
        u = rng.random(n)
        low = 0.0
        for kind, mask in eligible.items():
            rate = rates[kind]
            hit = (u >= low) & (u < low + rate) & mask
            assigned[hit] = ROW_FAULT_KINDS.index(kind)
            low += rate
    for kind in force:
        code = ROW_FAULT_KINDS.index(kind)
        if (assigned == code).any():
            continue
        room = np.flatnonzero((assigned < 0) & eligible[kind] & (True if force_mask is None else force_mask))
        if len(room):
            assigned[room[rng.integers(0, len(room))]] = code
    return assigned


# --- malformed and unknown member identifiers ----------------------------------------------


def malformed_ids(rng: np.random.Generator, ids: list[str]) -> list[str]:
    """Wrong-shape variants of real ids: one character short, a letter where a digit belongs, or empty."""
    out = []
    variants = rng.integers(0, 3, len(ids))
    positions = rng.integers(0, 10**6, len(ids))
    for value, variant, pos in zip(ids, variants, positions):
        if variant == 0:
            out.append(value[:-1])
        elif variant == 1:
            digit_positions = [i for i, ch in enumerate(value) if ch.isdigit()] or list(range(2, len(value)))
            i = digit_positions[pos % len(digit_positions)]
            # 'O' is a letter CMS never uses in an MBI and never a hex digit in a vendor reference.
            out.append(value[:i] + "O" + value[i + 1 :])
        else:
            out.append("")
    return out
