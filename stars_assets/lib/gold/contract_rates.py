"""Projected measure stars and a projected summary rating for the plan's own contracts.

Rates come from member-level data (care gaps, PDC) and the warehouse's contract extract
(readmissions, CAHPS); CMS's cut points of the latest star year turn each into stars, and the
CMS rating engine turns the stars available into a projected summary.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from stars_assets.lib.cms import crosswalk, improvement
from stars_assets.lib.cms.rating import QBP_RATING, RatingRules, measure_star, summary_rating

RATE_COLUMNS = [
    "contract_id",
    "measure_id",
    "measure_code",
    "source",
    "numerator",
    "denominator",
    "rate",
    "projected_stars",
    "weight",
]
SUMMARY_COLUMNS = [
    "contract_id",
    "measures_rated",
    "total_weight",
    "weighted_mean",
    "reward_factor",
    "projected_summary_unrounded",
    "projected_summary",
    "p_four_plus_cut_points",
    "part_c_improvement_stars",
    "part_d_improvement_stars",
    "used_improvement",
]
CUT_POINT_DRAWS = 200


def project_measure_stars(rates: pd.DataFrame, cut_points: pd.DataFrame, rules: RatingRules) -> pd.DataFrame:
    """Adds projected_stars (None where a measure has no published cut points or no rate) and its weight."""
    rated_measures = set(cut_points["measure_id"])
    projected = rates.copy()
    projected["projected_stars"] = [
        measure_star(m, r, cut_points) if m in rated_measures and pd.notna(r) else None
        for m, r in zip(projected["measure_id"], projected["rate"])
    ]
    projected["projected_stars"] = projected["projected_stars"].astype("Int64")
    projected["weight"] = projected["measure_id"].map(rules.weights).astype(float)
    return projected[RATE_COLUMNS].sort_values(["contract_id", "measure_id"]).reset_index(drop=True)


def project_improvement(
    projected: pd.DataFrame, prior_year: pd.DataFrame, cut_points: pd.DataFrame, star_year: int
) -> pd.DataFrame:
    """Each contract's Part C and Part D improvement measures (contract_id, part, measure_id, score, stars) from its
    prior year's scores (`prior_year`: contract_id, measure_id, value, stars) to the projected rates, both in
    `star_year`'s measure numbering, rated with the improvement measures' bands in `cut_points`."""
    keys = crosswalk.keys_by_id(star_year)
    current = projected.assign(
        measure_key=projected["measure_id"].map(keys), value=projected["rate"], stars=projected["projected_stars"]
    )
    prior = prior_year.assign(measure_key=prior_year["measure_id"].map(keys))
    scores = improvement.improvement_scores(
        prior.dropna(subset=["measure_key"]), current.dropna(subset=["measure_key"]), star_year, star_year
    )
    return improvement.improvement_stars(scores[scores["measure_id"].isin(set(cut_points["measure_id"]))], cut_points)


def _improvement_by_contract(improvement_stars: pd.DataFrame | None) -> dict[str, dict[str, int]]:
    if improvement_stars is None:
        return {}
    rated = improvement_stars.dropna(subset=["stars"])
    return {contract: dict(zip(rows["measure_id"], rows["stars"].astype(int))) for contract, rows in rated.groupby("contract_id")}


def improvement_stars_by_contract(summaries: pd.DataFrame, star_year: int) -> dict[str, dict[str, int]]:
    """The improvement measures' stars of `project_summaries` rows, by contract and `star_year`'s measure id."""
    measures = crosswalk.year_measures(star_year)
    ids = dict(zip(measures.loc[measures["improvement"], "part"], measures.index[measures["improvement"]]))
    result = {}
    for row in summaries.itertuples():
        stars = {
            ids[part]: int(getattr(row, f"part_{part.lower()}_improvement_stars"))
            for part in ids
            if pd.notna(getattr(row, f"part_{part.lower()}_improvement_stars", np.nan))
        }
        if stars:
            result[row.contract_id] = stars
    return result


def _thresholds(cut_points: pd.DataFrame) -> dict[str, tuple[bool, int, np.ndarray]]:
    """Per measure (MA-PD or all org types): direction, precision and the 2..5-star thresholds from its bands."""
    bands = cut_points[cut_points["org_type"].isin(["MA-PD", "All"])].sort_values(["measure_id", "stars"])
    result = {}
    for measure_id, rows in bands.groupby("measure_id"):
        higher = bool(rows["higher_is_better"].iloc[0])
        edges = rows.set_index("stars")["lower" if higher else "upper"].reindex([2, 3, 4, 5]).to_numpy(dtype=float)
        result[measure_id] = (higher, int(rows["decimals"].max()), edges)
    return result


def p_four_plus(
    projected: pd.DataFrame,
    cut_points: pd.DataFrame,
    rules: RatingRules,
    error_mean: float,
    error_sd: float,
    draws: int = CUT_POINT_DRAWS,
    seed: int = 2028,
    fixed_stars: dict[str, dict[str, int]] | None = None,
) -> pd.Series:
    """Per contract, the share of simulated cut-point sets under which the projected summary reaches 4 stars.

    Each draw moves every measure's thresholds together by a normal error with the forecast back-test's mean and
    spread, in the direction that makes the measure harder when positive (cut points mostly rise). The error is
    in points of 0-100 measures; measures on other scales (complaints per 1,000, improvement scores) keep their
    forecast cut points, as do the improvement measures' `fixed_stars` (their score is not a 0-100 rate)."""
    fixed_stars = fixed_stars or {}
    thresholds = _thresholds(cut_points)
    rated = projected.dropna(subset=["rate"])
    rated = rated[rated["measure_id"].isin(thresholds)]
    rng = np.random.default_rng(seed)
    measures = sorted(rated["measure_id"].unique())
    shifts = dict(zip(measures, rng.normal(error_mean, error_sd, size=(len(measures), draws))))
    result = {}
    for contract_id, rows in rated.groupby("contract_id"):
        stars_by_measure = {}
        for measure_id, rate in zip(rows["measure_id"], rows["rate"]):
            higher, decimals, edges = thresholds[measure_id]
            value = np.round(float(rate), decimals)
            shift = shifts[measure_id] if decimals == 0 else np.zeros(draws)
            moved = edges[None, :] + (shift if higher else -shift)[:, None]
            reached = value >= moved if higher else value <= moved
            stars_by_measure[measure_id] = 1 + np.nan_to_num(reached, nan=0).sum(axis=1)
        fixed = fixed_stars.get(contract_id, {})
        ratings = [
            summary_rating({**{m: int(s[draw]) for m, s in stars_by_measure.items()}, **fixed}, rules).rating
            for draw in range(draws)
        ]
        result[contract_id] = float(np.mean(np.array(ratings) >= QBP_RATING))
    return pd.Series(result, name="p_four_plus_cut_points", dtype=float)


def project_summaries(
    projected: pd.DataFrame,
    rules: RatingRules,
    cut_points: pd.DataFrame | None = None,
    error_mean: float = 0.0,
    error_sd: float | None = None,
    improvement_stars: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """The CMS summary computed over each contract's projected measure stars and its improvement measures' stars
    (`project_improvement`; the improvement hold-harmless applies) without CAI (unknown ahead of time), and, given the
    cut points and their forecast error, P(4+) from simulated cut points (NaN otherwise)."""
    by_contract = _improvement_by_contract(improvement_stars)
    chances = (
        p_four_plus(projected, cut_points, rules, error_mean, error_sd, fixed_stars=by_contract)
        if cut_points is not None and error_sd is not None
        else pd.Series(dtype=float)
    )
    records = []
    for contract_id, rows in projected.dropna(subset=["projected_stars"]).groupby("contract_id"):
        stars = dict(zip(rows["measure_id"], rows["projected_stars"].astype(int)))
        improvement_stars_of = by_contract.get(contract_id, {})
        stars.update(improvement_stars_of)
        result = summary_rating(stars, rules)
        variant = result.with_improvement if result.used_improvement else result.without_improvement
        records.append(
            {
                "contract_id": contract_id,
                "measures_rated": len(stars),
                "total_weight": float(rows["weight"].sum()),
                "weighted_mean": variant.weighted_mean,
                "reward_factor": variant.reward_factor,
                "projected_summary_unrounded": variant.unrounded,
                "projected_summary": result.rating,
                "p_four_plus_cut_points": chances.get(contract_id, np.nan),
                **{
                    f"part_{part.lower()}_improvement_stars": next(
                        (float(star) for measure, star in improvement_stars_of.items() if measure.startswith(part)), np.nan
                    )
                    for part in ("C", "D")
                },
                "used_improvement": bool(improvement_stars_of) and result.used_improvement,
            }
        )
    return pd.DataFrame.from_records(records, columns=SUMMARY_COLUMNS)
