"""The static world, a function of (seed, member count) alone: contracts and their true rates,
members with their identifiers and conditions, care gaps per measurement year, Part D fills.

Nothing here depends on the delivery window, so any window sees the same world.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import pyarrow as pa

from . import codes
from .rng import stream
from .textfmt import civil_from_days, day_number, digits, hex_digits, join_columns, strings_from_matrix

NO_END = 10**6  # day number standing for "still enrolled"

# 2026 national means / sds across MA-PD contracts (STARS.md section 4; CAHPS, C28 and C29 from
# CMS's 2026 Measure Data table). "lower" marks measures where a lower value is better.
NATIONAL = {
    "BCS": (74.1, 8.5),
    "COL": (71.3, 9.9),
    "EED": (77.7, 8.7),
    "GSD": (85.2, 8.6),
    "CBP": (79.0, 6.6),
    "TRC": (63.2, 13.8),
    "C18": (10.2, 1.9),
    "D08": (87.1, 2.9),
    "D09": (89.6, 2.6),
    "D10": (88.9, 2.7),
    "C22": (81.3, 3.3),
    "C23": (83.9, 2.9),
    "C24": (90.3, 2.1),
    "C25": (86.8, 2.2),
    "C26": (86.9, 3.0),
    "C27": (87.3, 2.0),
    "C28": (0.24, 0.31),
    "C29": (16.3, 12.0),
}
LOWER_IS_BETTER = {"C18", "C28", "C29"}
# Measures the plan's member-level data cannot compute: the warehouse extract carries each contract's last
# published score (2026 Star Ratings), drawn here around the 2026 MA-PD mean / sd from CMS's Measure Data.
LAST_PUBLISHED = {
    "C03": (66.5, 8.4),
    "C04": (70.9, 3.3),
    "C05": (84.2, 3.0),
    "C06": (50.6, 6.3),
    "C07": (74.5, 15.9),
    "C08": (94.8, 8.9),
    "C09": (94.1, 9.3),
    "C10": (44.7, 15.4),
    "C13": (61.8, 12.6),
    "C15": (58.2, 8.5),
    "C16": (45.5, 4.9),
    "C17": (77.3, 15.0),
    "C19": (86.7, 3.8),
    "C21": (60.8, 9.5),
    "C31": (97.7, 5.1),
    "C32": (97.1, 4.0),
    "C33": (97.4, 4.0),
    "D01": (98.0, 4.0),
    "D05": (87.2, 2.4),
    "D06": (89.6, 1.8),
    "D07": (98.1, 3.6),
    "D11": (90.5, 6.8),
    "D12": (87.4, 3.7),
}
# Contract quality levels (in sds from the national mean), shuffled per seed so the five
# contracts land in different star bands.
QUALITY_LEVELS = (-1.4, -0.6, 0.0, 0.7, 1.4)

_MBI_LETTERS = np.frombuffer(b"ACDEFGHJKMNPQRTUVWXY", dtype=np.uint8)  # CMS excludes S L O I B Z
_MBI_ALNUM = np.concatenate([_MBI_LETTERS, np.frombuffer(b"0123456789", dtype=np.uint8)])
_DIGITS = np.frombuffer(b"0123456789", dtype=np.uint8)
_MBI_POSITIONS = ("n1", "a", "an", "n", "a", "an", "n", "a", "a", "n", "n")  # the 11 positions


def random_mbis(rng: np.random.Generator, n: int) -> np.ndarray:
    """(n, 11) bytes in CMS's MBI format."""
    out = np.empty((n, 11), dtype=np.uint8)
    for pos, kind in enumerate(_MBI_POSITIONS):
        table = {"n1": _DIGITS[1:], "n": _DIGITS, "a": _MBI_LETTERS, "an": _MBI_ALNUM}[kind]
        out[:, pos] = table[rng.integers(0, len(table), n)]
    return out


def _unique_rows(rng, n, draw) -> np.ndarray:
    """Draw byte rows until n distinct ones exist, keeping first-draw order (deterministic)."""
    rows = draw(rng, n)
    while True:
        keys = np.ascontiguousarray(rows).view(f"S{rows.shape[1]}").ravel()
        _, first = np.unique(keys, return_index=True)
        if len(first) >= n:
            return rows[np.sort(first)[:n]]
        rows = np.vstack([rows[np.sort(first)], draw(rng, n - len(first) + 16)])


def _unique_ints(rng, n, low, high) -> np.ndarray:
    values = rng.integers(low, high, n)
    while True:
        _, first = np.unique(values, return_index=True)
        if len(first) >= n:
            return values[np.sort(first)[:n]]
        values = np.concatenate([values[np.sort(first)], rng.integers(low, high, n - len(first) + 16)])


@dataclass(frozen=True)
class ContractTruth:
    contract_id: str
    region: str
    quality_level: float
    rates: dict  # measure code or CMS id -> true rate / score


@dataclass
class YearGaps:
    """The care gaps that exist in one measurement year (their static part)."""

    year: int
    member: np.ndarray  # int32 member index
    measure: np.ndarray  # int8 index into codes.MEASURES
    open_day: np.ndarray  # day number the gap opens
    until_day: np.ndarray  # last day it can still close (TRC: 30 days after discharge)
    daily_close_prob: np.ndarray  # baseline chance per day of closing
    first_index: int  # gap ids are numbered from here within the year

    def __len__(self) -> int:
        return len(self.member)

    @cached_property
    def gap_ids(self) -> pa.Array:
        return join_columns(f"G{self.year}", digits(np.arange(len(self)) + self.first_index, 8))


@dataclass
class World:
    seed: int
    n_members: int
    contracts: tuple[ContractTruth, ...]
    member_id: pa.Array
    mbi: pa.Array
    vendor_ref: pa.Array
    unknown_member_id: pa.Array  # well-formed ids that no member has
    unknown_mbi: pa.Array
    unknown_vendor_ref: pa.Array
    birth_day: np.ndarray
    female: np.ndarray
    contract: np.ndarray  # int8 index into contracts
    dual: np.ndarray
    lis: np.ndarray
    diabetes: np.ndarray
    hypertension: np.ndarray
    hyperlipidemia: np.ndarray
    enroll_start: np.ndarray  # day number
    enroll_end: np.ndarray  # day number, NO_END while enrolled
    has_phone: np.ndarray
    has_email: np.ndarray
    _by_year: dict = field(default_factory=dict, repr=False, compare=False)

    @cached_property
    def region(self) -> np.ndarray:
        """int8 index into REGIONS."""
        lookup = np.array([REGIONS.index(c.region) for c in self.contracts], dtype=np.int8)
        return lookup[self.contract]

    @cached_property
    def emr(self) -> np.ndarray:
        """0 = emr_north, 1 = emr_south."""
        lookup = np.array([codes.EMR_PROVIDERS.index(codes.EMR_BY_REGION[r]) for r in REGIONS], dtype=np.int8)
        return lookup[self.region]

    def rate(self, contract_index: np.ndarray, measure: str) -> np.ndarray:
        table = np.array([c.rates[measure] for c in self.contracts])
        return table[contract_index]

    # --- care gaps ---------------------------------------------------------------------
    def gaps(self, year: int) -> YearGaps:
        if ("gaps", year) not in self._by_year:
            self._by_year[("gaps", year)] = self._draw_gaps(year)
        return self._by_year[("gaps", year)]

    def _draw_gaps(self, year: int) -> YearGaps:
        rng = stream(self.seed, "gaps", year)
        jan1, dec31 = day_number(dt.date(year, 1, 1)), day_number(dt.date(year, 12, 31))
        age = year - civil_from_days(self.birth_day)[0]  # age reached during the year (HEDIS: as of Dec 31)
        enrolled = (self.enroll_start <= dec31) & (self.enroll_end >= jan1)
        span_start = np.maximum(jan1, self.enroll_start)
        span_end = np.minimum(dec31, self.enroll_end)
        eligible = {
            "BCS": self.female & (age >= 50) & (age <= 74),
            "COL": (age >= 45) & (age <= 75),
            "EED": self.diabetes & (age >= 18) & (age <= 75),
            "GSD": self.diabetes & (age >= 18) & (age <= 75),
            "CBP": self.hypertension & (age >= 18) & (age <= 85),
        }
        conditions = self.diabetes.astype(int) + self.hypertension + self.hyperlipidemia
        discharge_chance = 0.06 + 0.04 * conditions + 0.04 * self.dual
        discharged = rng.random(self.n_members) < discharge_chance
        discharge_day = span_start + np.floor(rng.random(self.n_members) * (span_end - span_start + 1)).astype(np.int64)

        parts = []
        for m_index, measure in enumerate(codes.MEASURES):
            if measure == "TRC":
                who = np.flatnonzero(enrolled & discharged & (age >= 18))
                open_day, until = discharge_day[who], np.minimum(discharge_day[who] + 30, span_end[who])
                window = 30.0
            else:
                who = np.flatnonzero(enrolled & eligible[measure])
                open_day, until = span_start[who], span_end[who]
                window = 365.0
            rate = self.rate(self.contract[who], measure) / 100.0
            daily = 1.0 - (1.0 - rate) ** (1.0 / window)
            parts.append((who, np.full(len(who), m_index, dtype=np.int8), open_day, until, daily))
        member = np.concatenate([p[0] for p in parts]).astype(np.int32)
        order = np.lexsort((np.concatenate([p[1] for p in parts]), member))  # member, then measure
        return YearGaps(
            year=year,
            member=member[order],
            measure=np.concatenate([p[1] for p in parts])[order],
            open_day=np.concatenate([p[2] for p in parts]).astype(np.int64)[order],
            until_day=np.concatenate([p[3] for p in parts]).astype(np.int64)[order],
            daily_close_prob=np.concatenate([p[4] for p in parts])[order],
            first_index=1,
        )

    # --- Part D fills ------------------------------------------------------------------
    @cached_property
    def drug_users(self) -> tuple[np.ndarray, np.ndarray]:
        """(member index, drug class index) of every member-drug pair on maintenance therapy."""
        rng = stream(self.seed, "drug-users")
        users = {
            0: self.diabetes & (rng.random(self.n_members) < 0.85),
            1: self.hypertension & (rng.random(self.n_members) < 0.80),
            2: (self.hyperlipidemia | self.diabetes) & (rng.random(self.n_members) < 0.75),
        }
        member = np.concatenate([np.flatnonzero(users[k]) for k in range(3)])
        drug = np.concatenate([np.full(int(users[k].sum()), k, dtype=np.int8) for k in range(3)])
        order = np.lexsort((drug, member))
        return member[order].astype(np.int32), drug[order]

    def rx_fills(self, year: int) -> dict[str, np.ndarray]:
        """Every fill of the year, sorted by fill day: adherent members refill on time, others late."""
        if ("rx", year) not in self._by_year:
            self._by_year[("rx", year)] = self._draw_rx_fills(year)
        return self._by_year[("rx", year)]

    def _draw_rx_fills(self, year: int) -> dict[str, np.ndarray]:
        rng = stream(self.seed, "rx", year)
        member, drug = self.drug_users
        n = len(member)
        jan1, dec31 = day_number(dt.date(year, 1, 1)), day_number(dt.date(year, 12, 31))
        target = (
            np.select(
                [drug == k for k in range(3)],
                [self.rate(self.contract[member], codes.ADHERENCE_MEASURE[c]) for c in codes.DRUG_CLASSES],
            )
            / 100.0
        )
        adherent = rng.random(n) < target
        supply = np.where(rng.random(n) < 0.65, 30, 90)
        new_start = rng.random(n) < 0.15
        first = np.where(new_start, jan1 + rng.integers(0, 300, n), jan1 + np.floor(rng.random(n) * supply).astype(np.int64))
        max_fills = 16
        late_mean = np.where(adherent, 1.2, np.where(supply == 30, 13.0, 32.0))[:, None]
        delay = np.where(
            adherent[:, None],
            np.clip(np.round(rng.normal(0.5, 2.0, (n, max_fills))), -4, 9),
            np.round(rng.exponential(1.0, (n, max_fills)) * late_mean),
        ).astype(np.int64)
        steps = supply[:, None] + delay
        steps[:, 0] = 0
        fill_day = first[:, None] + np.cumsum(steps, axis=1)
        stops_after = np.where(rng.random(n) < 0.07, rng.integers(1, max_fills, n), max_fills)
        keep = (
            (fill_day <= dec31)
            & (np.arange(max_fills)[None, :] < stops_after[:, None])
            & (fill_day >= self.enroll_start[member][:, None])
            & (fill_day <= self.enroll_end[member][:, None])
        )
        pair, k = np.nonzero(keep)
        days = fill_day[pair, k]
        order = np.lexsort((k, pair, days))
        pair, k, days = pair[order], k[order], days[order]
        return {
            "fill_id": join_columns(f"RX{year % 100:02d}", digits(pair, 7), digits(k, 2)),
            "member": member[pair],
            "drug": drug[pair],
            "fill_day": days,
            "days_supply": supply[pair].astype(np.int32),
        }


REGIONS = ("NORTH", "SOUTH", "EAST", "WEST")


def _draw_contract_rates(seed: int) -> tuple[ContractTruth, ...]:
    rng = stream(seed, "contracts")
    levels = rng.permutation(np.array(QUALITY_LEVELS))
    contracts = []
    for (cid, region), level in zip(codes.CONTRACTS, levels):
        rates = {}
        for measure, (mean, sd) in NATIONAL.items():
            z = 0.85 * level + 0.5 * rng.standard_normal()
            if measure == "C28":
                value = round(mean * float(np.exp(-0.7 * z)), 2)
            elif measure == "C29":
                value = round(float(np.clip(mean * np.exp(-0.45 * z), 2.0, 55.0)), 1)
            elif measure in LOWER_IS_BETTER:
                value = round(float(np.clip(mean - sd * z, 4.0, 18.0)), 2)
            else:
                value = round(float(np.clip(mean + sd * z, 20.0, 96.0)), 2)
            rates[measure] = value
        contracts.append(ContractTruth(cid, region, float(level), rates))
    return tuple(contracts)


def build_world(seed: int, n_members: int) -> World:
    rng = stream(seed, "members")
    n = n_members
    member_numbers = _unique_ints(rng, n, 100_000_000, 900_000_000)
    mbis = _unique_rows(rng, n, random_mbis)
    refs = _unique_ints(rng, n, 0, 2**32)

    age_end_2026 = np.where(
        rng.random(n) < 0.08, rng.integers(30, 65, n), 65 + np.minimum(rng.exponential(9.0, n).astype(np.int64), 35)
    )
    birth_year_jan1 = (2026 - age_end_2026 - 1970).astype("datetime64[Y]").astype("datetime64[D]").astype(np.int64)
    birth_day = birth_year_jan1 + rng.integers(0, 365, n)
    female = rng.random(n) < 0.56
    contract = rng.choice(len(codes.CONTRACTS), size=n, p=codes.CONTRACT_MEMBER_SHARE).astype(np.int8)
    dual = rng.random(n) < 0.18
    lis = dual | (rng.random(n) < 0.08)
    diabetes = rng.random(n) < np.where(dual, 0.36, 0.26)
    hypertension = rng.random(n) < np.where(diabetes, 0.75, 0.58)
    hyperlipidemia = rng.random(n) < np.where(diabetes, 0.70, 0.50)

    # Medicare enrollment starts on the 1st of a month; a few members join during 2026.
    month_starts = np.array([day_number(dt.date(y, m, 1)) for y in range(2014, 2027) for m in range(1, 13)])
    before_2026 = month_starts[month_starts < day_number(dt.date(2026, 1, 1))]
    in_2026 = month_starts[(month_starts > day_number(dt.date(2026, 1, 1)))]
    joins_2026 = rng.random(n) < 0.05
    enroll_start = np.where(
        joins_2026, in_2026[rng.integers(0, len(in_2026), n)], before_2026[rng.integers(0, len(before_2026), n)]
    )
    month_ends = np.array([day_number(dt.date(2026, m, 1)) - 1 for m in range(2, 13)] + [day_number(dt.date(2026, 12, 31))])
    leaves = rng.random(n) < 0.04
    enroll_end = np.where(leaves, month_ends[rng.integers(0, len(month_ends), n)], NO_END)
    enroll_end = np.where(enroll_end < enroll_start, NO_END, enroll_end)

    # Ids that are well formed but belong to nobody, for the unknown-member fault.
    unknown_rng = stream(seed, "unknown-ids")
    unknown_mbis = _unique_rows(unknown_rng, 600, random_mbis)
    known = set(np.ascontiguousarray(mbis).view("S11").ravel().tolist())
    unknown_mbis = unknown_mbis[[row.tobytes() not in known for row in unknown_mbis]][:500]
    known_refs = set(refs.tolist())
    unknown_refs = np.array([r for r in _unique_ints(unknown_rng, 600, 0, 2**32) if r not in known_refs][:500])

    return World(
        seed=seed,
        n_members=n,
        contracts=_draw_contract_rates(seed),
        member_id=join_columns("M", digits(member_numbers, 9)),
        mbi=strings_from_matrix(mbis),
        vendor_ref=join_columns("VR", hex_digits(refs, 8, upper=True)),
        unknown_member_id=join_columns("M", digits(unknown_rng.integers(900_000_000, 1_000_000_000, 500), 9)),
        unknown_mbi=strings_from_matrix(unknown_mbis),
        unknown_vendor_ref=join_columns("VR", hex_digits(unknown_refs, 8, upper=True)),
        birth_day=birth_day.astype(np.int64),
        female=female,
        contract=contract,
        dual=dual,
        lis=lis,
        diabetes=diabetes,
        hypertension=hypertension,
        hyperlipidemia=hyperlipidemia,
        enroll_start=enroll_start.astype(np.int64),
        enroll_end=enroll_end.astype(np.int64),
        has_phone=rng.random(n) < 0.93,
        has_email=rng.random(n) < 0.55,
    )
