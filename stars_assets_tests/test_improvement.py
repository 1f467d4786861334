"""The improvement measures (C30/D04) from consecutive years, checked against CMS's published 2026 stars, and fed
into the plan's projected summary."""

import pandas as pd
import pytest

from stars_assets import settings
from stars_assets.lib.cms import crosswalk, forecast, improvement, rating, tables
from stars_assets.lib.gold.contract_rates import project_improvement, project_measure_stars, project_summaries


def _year(star_year: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(scores with their published stars, measure stars) of one published star year, keyed by the crosswalk."""
    folder = settings.cms_reference_dir(star_year)
    stars = crosswalk.with_measure_keys(tables.measure_stars(folder))
    scores = crosswalk.with_measure_keys(tables.measure_scores(folder).dropna(subset=["value"]))
    scores = scores.merge(stars[["contract_id", "measure_key", "stars"]], on=["contract_id", "measure_key"], how="left")
    return scores, stars


@pytest.fixture(scope="module")
def reproduced_2026() -> pd.DataFrame:
    """2026 C30/D04 recomputed from the 2025 and 2026 published scores of non-PDP contracts, beside CMS's stars."""
    prior, _ = _year(2025)
    current, published = _year(2026)
    summary = tables.summary_ratings(settings.cms_reference_dir(2026))
    pdp = set(summary.loc[summary["organization_type"].fillna("").str.contains("PDP"), "contract_id"])
    scores = improvement.improvement_scores(prior, current, 2025, 2026)
    rated = improvement.improvement_stars(
        scores[~scores["contract_id"].isin(pdp)], tables.cut_points(settings.cms_reference_dir(2026))
    )
    return rated.merge(
        published[["contract_id", "measure_id", "stars"]], on=["contract_id", "measure_id"], suffixes=("", "_published")
    ).dropna(subset=["stars", "stars_published"])


def test_improvement_reproduces_published_2026_stars(reproduced_2026):
    compared = reproduced_2026.assign(
        exact=lambda t: t["stars"] == t["stars_published"], within_one=lambda t: (t["stars"] - t["stars_published"]).abs() <= 1
    )
    by_part = compared.groupby("part")[["exact", "within_one"]].mean().round(3)
    print(
        f"\n2026 improvement stars from 2025 -> 2026 scores (n={len(compared)}, denominator "
        f"{improvement.ASSUMED_DENOMINATOR}):\n{by_part.to_string()}"
    )
    assert set(by_part.index) == {"C", "D"} and len(compared) > 500
    # Guessing 3 stars for everyone matches 35% (C) and 39% (D) exact, 80% and 76% within one: a broken test or sign fails.
    assert (by_part["exact"] > 0.4).all() and (by_part["within_one"] > 0.8).all()
    correlation = compared[["stars", "stars_published"]].astype(float).corr().iloc[0, 1]
    assert correlation > 0.5


def test_improvement_score_follows_the_technical_notes():
    """Two eligible measures weighted by the current year: a significant gain on a 3-weight outcome, a significant
    decline on a 1-weight process measure held harmless at 5 stars both years, and too few measures elsewhere."""
    measures = improvement.improvement_measures(2025, 2026)
    part_c = measures[measures["part"] == "C"]
    outcome = part_c[part_c["weight"] == 3].index[0]
    process = part_c[(part_c["weight"] == 1) & part_c["higher_is_better"]].index[:2]
    rest = [key for key in part_c.index if key not in {outcome, *process}]
    required = -(-len(part_c) // 2)
    filler = rest[: required - 3]
    rows_prior = [("H0001", outcome, 50.0, 3), ("H0001", process[0], 90.0, 5), ("H0001", process[1], 80.0, 4)]
    rows_current = [("H0001", outcome, 70.0, 4), ("H0001", process[0], 70.0, 5), ("H0001", process[1], 60.0, 2)]
    rows_prior += [("H0001", key, 50.0, 3) for key in filler] + [("H0002", outcome, 50.0, 3)]
    rows_current += [("H0001", key, 50.0, 3) for key in filler] + [("H0002", outcome, 90.0, 5)]
    prior = pd.DataFrame(rows_prior, columns=improvement.SCORE_COLUMNS)
    current = pd.DataFrame(rows_current, columns=improvement.SCORE_COLUMNS)
    no_correlation = pd.Series(0.0, index=part_c.index)
    scores = improvement.improvement_scores(prior, current, 2025, 2026, correlations=no_correlation).set_index("contract_id")
    weights = part_c["weight"]
    expected = (3 - 1) / (weights[outcome] + weights[process].sum() + weights[filler].sum())
    assert scores.loc["H0001", "improved"] == 1 and scores.loc["H0001", "declined"] == 1
    assert scores.loc["H0001", "score"] == pytest.approx(expected, abs=1e-6)
    assert pd.isna(scores.loc["H0002", "score"])  # one measure of the part: not rated


def test_projected_summary_counts_improvement(cms_history):
    """The plan's projection rates C30/D04 from its prior scores and includes them (weight 5) in the summary."""
    bands = forecast.projection_cut_points(cms_history, tables.cut_points(settings.cms_reference_dir(2026)), 2028)
    rules = rating.rules_for(2026)
    measures = improvement.improvement_measures(2026, 2026)
    ids = crosswalk.ids_by_key(2026)
    rated_ids = [ids[key] for key in measures.index if ids[key] in set(bands["measure_id"])]
    prior = pd.DataFrame({"contract_id": "H9999", "measure_id": rated_ids, "value": 60.0, "stars": pd.NA})
    counts = prior.assign(
        measure_code=prior["measure_id"],
        source="test",
        numerator=None,
        denominator=100.0,
        rate=[90.0 if measures.loc[crosswalk.keys_by_id(2026)[m], "higher_is_better"] else 30.0 for m in rated_ids],
    )
    rates = project_measure_stars(counts.drop(columns=["value", "stars"]), bands, rules)
    improved = project_improvement(rates, prior, bands, 2026)
    assert set(improved["part"]) == {"C", "D"} and (improved["stars"] == 5).all()
    with_improvement = project_summaries(rates, rules, improvement_stars=improved).iloc[0]
    without = project_summaries(rates, rules).iloc[0]
    assert with_improvement["part_c_improvement_stars"] == 5 and with_improvement["used_improvement"]
    assert with_improvement["measures_rated"] == without["measures_rated"] + 2
    assert with_improvement["weighted_mean"] > without["weighted_mean"]
