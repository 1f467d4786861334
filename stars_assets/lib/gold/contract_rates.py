"""Projected measure stars and a projected summary rating for the plan's own contracts.

Rates come from member-level data (care gaps, PDC) and the warehouse's contract extract
(readmissions, CAHPS); CMS's cut points of the latest star year turn each into stars, and the
CMS rating engine turns the stars available into a projected summary.
"""

from __future__ import annotations

import pandas as pd

from stars_assets.lib.cms.rating import RatingRules, measure_star, summary_rating

RATE_COLUMNS = ["contract_id", "measure_id", "measure_code", "source", "numerator", "denominator", "rate",
                "projected_stars", "weight"]
SUMMARY_COLUMNS = ["contract_id", "measures_rated", "total_weight", "weighted_mean", "reward_factor",
                   "projected_summary_unrounded", "projected_summary"]


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


def project_summaries(projected: pd.DataFrame, rules: RatingRules) -> pd.DataFrame:
    """The CMS summary computed over each contract's projected measure stars (no CAI: unknown ahead of time)."""
    records = []
    for contract_id, rows in projected.dropna(subset=["projected_stars"]).groupby("contract_id"):
        stars = dict(zip(rows["measure_id"], rows["projected_stars"].astype(int)))
        result = summary_rating(stars, rules)
        variant = result.with_improvement if result.used_improvement else result.without_improvement
        records.append({
            "contract_id": contract_id,
            "measures_rated": len(stars),
            "total_weight": float(rows["weight"].sum()),
            "weighted_mean": variant.weighted_mean,
            "reward_factor": variant.reward_factor,
            "projected_summary_unrounded": variant.unrounded,
            "projected_summary": result.rating,
        })
    return pd.DataFrame.from_records(records, columns=SUMMARY_COLUMNS)
