"""The payer's own warehouse extracts (Parquet): members, care gaps, Part D fills, contract quality."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pyarrow as pa

from . import codes
from .rng import stream
from .simulation import SimResult, close_source_codes
from .textfmt import day_number
from .world import LAST_PUBLISHED, LOWER_IS_BETTER, NATIONAL, REGIONS, World

SNAPSHOT_CADENCE = "first day of the window and the 1st of each month"


def _dates(values) -> pa.Array:
    return pa.array(np.asarray(values, dtype=np.int32), type=pa.date32())


def members_snapshot(world: World, day: dt.date) -> pa.Table:
    """Everyone enrolled on or before the day; enrollment_end shows once it has passed."""
    d = day_number(day)
    idx = np.flatnonzero(world.enroll_start <= d)
    take = pa.array(idx.astype(np.int64))
    ended = world.enroll_end[idx] < d
    return pa.table(
        {
            "member_id": world.member_id.take(take),
            "mbi": world.mbi.take(take),
            "vendor_ref": world.vendor_ref.take(take),
            "birth_date": _dates(world.birth_day[idx]),
            "sex": pa.array(np.where(world.female[idx], "F", "M")),
            "contract_id": pa.array([c.contract_id for c in world.contracts]).take(
                pa.array(world.contract[idx].astype(np.int64))
            ),
            "region": pa.array(REGIONS).take(pa.array(world.region[idx].astype(np.int64))),
            "dual_status": pa.array(world.dual[idx]),
            "lis_status": pa.array(world.lis[idx]),
            "enrollment_start": _dates(world.enroll_start[idx]),
            "enrollment_end": pa.array(np.where(ended, world.enroll_end[idx], 0).astype(np.int32), type=pa.date32(), mask=~ended),
            "has_diabetes": pa.array(world.diabetes[idx]),
            "has_hypertension": pa.array(world.hypertension[idx]),
            "has_hyperlipidemia": pa.array(world.hyperlipidemia[idx]),
        }
    )


def care_gaps_snapshot(world: World, sim: SimResult, day: dt.date) -> pa.Table:
    """The measurement year's gap list as of the start of the day."""
    d = day_number(day)
    state = sim.gap_states[day.year]
    g = state.gaps
    idx = np.flatnonzero(g.open_day <= d)
    closed = (state.close_day[idx] >= 0) & (state.close_day[idx] < d)
    source = close_source_codes(state.closed_by[idx])
    measure = pa.array(g.measure[idx].astype(np.int64))
    return pa.table(
        {
            "gap_id": g.gap_ids.take(pa.array(idx.astype(np.int64))),
            "member_id": world.member_id.take(pa.array(g.member[idx].astype(np.int64))),
            "measure_code": pa.array(codes.MEASURES).take(measure),
            "cms_measure_id": pa.array([codes.CMS_MEASURE_ID[m] for m in codes.MEASURES]).take(measure),
            "measurement_year": pa.array(np.full(len(idx), day.year, dtype=np.int32)),
            "gap_status": pa.array(np.where(closed, "CLOSED", "OPEN")),
            "open_date": _dates(g.open_day[idx]),
            "close_date": pa.array(np.where(closed, state.close_day[idx], 0).astype(np.int32), type=pa.date32(), mask=~closed),
            "close_source": pa.array(
                np.array(codes.CLOSE_SOURCES, dtype=object)[np.maximum(source, 0)], mask=~closed, type=pa.string()
            ),
        }
    )


def rx_fills(world: World, first_day: dt.date, last_day: dt.date) -> pa.Table:
    """Fills dated first_day..last_day (same calendar year)."""
    fills = world.rx_fills(first_day.year)
    lo, hi = np.searchsorted(fills["fill_day"], [day_number(first_day), day_number(last_day) + 1])
    sel = np.arange(lo, hi)
    take = pa.array(sel.astype(np.int64))
    return pa.table(
        {
            "fill_id": fills["fill_id"].take(take),
            "member_id": world.member_id.take(pa.array(fills["member"][sel].astype(np.int64))),
            "drug_class": pa.array(codes.DRUG_CLASSES).take(pa.array(fills["drug"][sel].astype(np.int64))),
            "fill_date": _dates(fills["fill_day"][sel]),
            "days_supply": pa.array(fills["days_supply"][sel]),
        }
    )


def _prior_year_score(world: World, contract_id: str, measure: str, score: float) -> float:
    """The contract's score one measurement year before `score` on a measure (a NATIONAL or LAST_PUBLISHED key): its
    own trend (the same on every measure, in sds of the measure; positive = improved since) plus the measure's own
    change, so contracts differ in how much they improved."""
    sd = (NATIONAL.get(measure) or LAST_PUBLISHED[measure])[1]
    trend = stream(world.seed, "prior-year-trend", contract_id).normal(0, 0.4)
    change = sd * (trend + stream(world.seed, "prior-year", contract_id, measure).normal(0, 0.25))
    if measure == "C28":
        return round(max(score + 0.3 * change, 0.0), 2)
    prior = score + change if measure in LOWER_IS_BETTER else score - change
    return round(float(np.clip(prior, 0, 100)), 1)


def contract_quality(world: World, day: dt.date) -> pa.Table:
    """Year-to-date C18 readmissions, CAHPS C22-C27, complaints C28 and leavers C29 per contract, and each
    contract's last published score on the measures member-level data cannot compute (same every day).

    `prior_year_score` is each measure's score one measurement year earlier (the improvement measures C30/D04 compare
    consecutive years); the measures the plan computes from member data (care gaps, PDC) come as rows with that
    score alone (no numerator, denominator or score)."""
    rng = stream(world.seed, "contract-quality", day.year, day.month)
    d = day_number(day)
    enrolled = (world.enroll_start <= d) & (world.enroll_end >= d)
    year_share = max((day - dt.date(day.year, 1, 1)).days, 30) / 365
    rows = []
    for i, c in enumerate(world.contracts):

        def prior(measure: str, score: float | None = None, contract=c) -> float:
            rate = contract.rates[measure] if score is None else score
            return _prior_year_score(world, contract.contract_id, measure, rate)

        members = int(np.count_nonzero(enrolled & (world.contract == i)))
        stays = max(30, round(members * 0.22 * year_share))
        readmit = int(round(stays * max(0.5, c.rates["C18"] + rng.normal(0, 0.3)) / 100))
        rows.append((c.contract_id, "C18", readmit, stays, round(100 * readmit / stays, 2), prior("C18")))
        for measure in codes.CAHPS_MEASURES:
            respondents = int(rng.integers(350, 900))
            score = round(float(np.clip(c.rates[measure] + rng.normal(0, 0.4), 0, 100)), 1)
            rows.append((c.contract_id, measure, None, respondents, score, prior(measure)))
        complaints = int(round(c.rates["C28"] * members * year_share * 12 / 1000))
        complaint_rate = round(1000 * complaints / max(members, 1) / (year_share * 12), 2)
        rows.append((c.contract_id, "C28", complaints, members, complaint_rate, prior("C28")))
        leavers = int(round(c.rates["C29"] / 100 * members))
        rows.append((c.contract_id, "C29", leavers, members, round(100 * leavers / max(members, 1), 1), prior("C29")))
        published = stream(world.seed, "last-published", c.contract_id)
        for measure, (mean, sd) in LAST_PUBLISHED.items():
            score = float(np.clip(round(mean + sd * (c.quality_level + published.normal(0, 0.5))), 0, 100))
            rows.append((c.contract_id, measure, None, max(members, 1), score, prior(measure, score)))
        for measure in codes.MEASURES:
            rows.append((c.contract_id, codes.CMS_MEASURE_ID[measure], None, None, None, prior(measure)))
        for measure in codes.ADHERENCE_MEASURE.values():
            rows.append((c.contract_id, measure, None, None, None, prior(measure)))
    return pa.table(
        {
            "contract_id": pa.array([r[0] for r in rows]),
            "measure_id": pa.array([r[1] for r in rows]),
            "numerator": pa.array([r[2] for r in rows], type=pa.int64()),
            "denominator": pa.array([r[3] for r in rows], type=pa.int64()),
            "score": pa.array([r[4] for r in rows], type=pa.float64()),
            "prior_year_score": pa.array([r[5] for r in rows], type=pa.float64()),
        }
    )
