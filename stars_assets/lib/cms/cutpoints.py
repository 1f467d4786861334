"""CMS's cut-point methods, as plain functions over measure scores (one row per star year, contract and measure).

Non-CAHPS measures (Technical Notes, "Clustering Methodology Detail"): Tukey outer-fence outliers are removed
(from the 2024 ratings on), the remaining scores are split at random into 10 groups, Ward hierarchical
clustering into five groups runs 10 times leaving one group out, each run's cut point for a star is the lowest
score of its cluster (highest for lower-is-better measures), and the final cut point is the mean of the 10 runs,
rounded to the scores' precision; guardrails (from 2023) then cap the move from the prior year's cut point at
5 points for 0-100 measures or 5% of the prior year's score range for others. Improvement measures cluster
scores >= 0 into 3, 4, 5 stars and negative scores into 1, 2 stars.
CAHPS measures (relative distribution and significance testing): the percentile cut points of the base groups
(15th, 30th, 60th, 80th) here; the significance test that moves a contract from its base group is in `cahps`.

CMS's own random groups come from SAS's SURVEYSELECT with seed 8675309, which numpy cannot reproduce, so the
folds differ and a threshold can land a point away from CMS's where a cluster edge is close; the engine averages
the 10-fold means over several partitions to estimate CMS's draw in expectation. Also from the Technical Notes:
the 60 percent disaster rule's exclusions (through 2025), no guardrails for measures new or respecified within
three years, and fewer than five clusters when fewer distinct scores survive outlier deletion.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.cluster.hierarchy import fcluster, linkage

from stars_assets.lib.cms import cahps

STAR_LEVELS = (2, 3, 4, 5)
FOLDS = 10
FOLD_DRAWS = 4  # independent 10-fold partitions averaged (see _fold_means)
SEED = 8675309
TUKEY_MULTIPLIER = 3.0
GUARDRAIL_POINTS = 5.0  # 0-100 measures
GUARDRAIL_SHARE_OF_RANGE = 0.05  # other measures
# 42 CFR 422.166(a)(2)(i): guardrails from the Star Ratings issued in October 2022 (the 2023 ratings), Tukey deletion
# from October 2023 (2024). The 2023 guardrails cap against 2022's cut points, which the shipped tables do not carry.
TUKEY_FROM_STAR_YEAR = 2024
GUARDRAILS_FROM_STAR_YEAR = 2023
# New and respecified measures run without guardrails while in the ratings three years or less.
NEW_MEASURE_YEARS = 3
# The "60 percent rule": through the 2025 ratings, non-CAHPS scores of contracts with 60% or more of their
# enrollees in FEMA Individual Assistance areas in the measurement year were left out of the clustering
# (the 2026 Technical Notes list its removal among the changes from 2025).
SIXTY_PERCENT_RULE_SHARE = 60.0
SIXTY_PERCENT_RULE_UNTIL_STAR_YEAR = 2025
THRESHOLD_COLUMNS = ["star_year", "measure_key", "stars", "threshold", "method"]


@dataclass(frozen=True)
class MeasureSpec:
    measure_key: str
    higher_is_better: bool
    method: str  # "clustering", "improvement" or "cahps"
    decimals: int
    percent_scale: bool
    specification_star_year: int | None = None  # star year a new or respecified measure entered the ratings

    def guardrailed(self, star_year: int) -> bool:
        """Whether CMS caps this measure's cut points against the prior year's in `star_year`."""
        new = self.specification_star_year is not None and star_year - self.specification_star_year < NEW_MEASURE_YEARS
        return self.method == "clustering" and star_year >= GUARDRAILS_FROM_STAR_YEAR and not new


def score_decimals(values: pd.Series) -> int:
    """The precision scores are published at (0 for "76%", 2 for "0.32")."""
    finite = values.dropna().to_numpy(dtype=float)
    for decimals in range(7):
        if np.allclose(finite, np.round(finite, decimals), atol=1e-9):
            return decimals
    return 6


def measure_specs(scores: pd.DataFrame, measures: pd.DataFrame) -> dict[str, MeasureSpec]:
    """One spec per measure key in `scores`, from the crosswalk rows in `measures` (higher_is_better, domain,
    improvement, specification_star_year) and the scores' own precision and range."""
    attributes = measures.drop_duplicates("measure_key").set_index("measure_key")
    specs = {}
    for key, values in scores.groupby("measure_key")["value"]:
        row = attributes.loc[key]
        method = "improvement" if row["improvement"] else "cahps" if row["domain"] == "CAHPS" else "clustering"
        decimals = score_decimals(values)
        percent = decimals == 0 and values.min() >= 0 and values.max() <= 100
        since = row.get("specification_star_year")
        specs[key] = MeasureSpec(
            key, bool(row["higher_is_better"]), method, decimals, percent, None if pd.isna(since) else int(since)
        )
    return specs


def tukey_outer_fences(values: np.ndarray, percent_scale: bool) -> tuple[float, float]:
    """Q1 - 3 IQR and Q3 + 3 IQR, capped at 0 and 100 on a 0-100 scale."""
    q1, q3 = np.percentile(values, [25, 75])
    low, high = q1 - TUKEY_MULTIPLIER * (q3 - q1), q3 + TUKEY_MULTIPLIER * (q3 - q1)
    return (max(low, 0.0), min(high, 100.0)) if percent_scale else (low, high)


def cluster_cut_points(values: np.ndarray, higher_is_better: bool, groups: int = 5) -> list[float]:
    """Ward clustering of one-dimensional scores into `groups`; the cut point of each star above the lowest is
    the lowest score of its cluster (highest for lower-is-better).

    With fewer distinct scores than groups, clusters sharing a score are combined (Technical Notes, step 3) and
    the remaining clusters take the best star levels; a level no cluster reaches gets NaN (0 once averaged,
    as CMS publishes for MPF Price Accuracy in 2026 when only one score survives outlier deletion)."""
    values = np.asarray(values, dtype=float)
    distinct = np.unique(values)
    if len(distinct) < groups:
        labels = np.searchsorted(distinct, values)
    else:
        labels = fcluster(linkage(values.reshape(-1, 1), method="ward"), groups, criterion="maxclust")
    clusters = sorted((values[labels == label] for label in np.unique(labels)), key=np.mean, reverse=not higher_is_better)
    edges = [cluster.min() if higher_is_better else cluster.max() for cluster in clusters]
    levels = range(groups - len(clusters) + 1, groups + 1)  # worst cluster first
    cut = {level: edge for level, edge in zip(levels, edges) if level >= 2}
    return [cut.get(level, math.nan) for level in range(2, groups + 1)]


def _fold_means(values: np.ndarray, cut: Callable[[np.ndarray], list[float]], seed: int, draws: int) -> list[float]:
    """Mean resampling: the cut points averaged over 10 runs, each leaving one random tenth of the scores out.

    CMS draws one such partition with SAS's generator, which cannot be reproduced here; a single numpy partition
    is another draw whose cut points differ from CMS's by a point on dense measures. Averaging over `draws`
    independent partitions estimates what CMS's draw gives in expectation, so only CMS's own draw's noise remains."""
    rng = np.random.default_rng(seed)
    runs = []
    for _ in range(draws):
        folds = rng.permutation(len(values)) % FOLDS
        runs.extend(cut(values[folds != fold]) for fold in range(FOLDS))
    runs = np.array(runs, dtype=float)
    if np.isnan(runs).all():
        return [math.nan] * runs.shape[1]
    return [float(np.nanmean(level)) if not np.isnan(level).all() else 0.0 for level in runs.T]


def _clustered(values: np.ndarray, spec: MeasureSpec, tukey: bool, seed: int, draws: int) -> list[float]:
    def kept(subset: np.ndarray) -> np.ndarray:
        if not tukey or len(subset) < 4:
            return subset
        low, high = tukey_outer_fences(subset, spec.percent_scale)
        return subset[(subset >= low) & (subset <= high)]

    if spec.method == "improvement":
        # Scores >= 0 earn 3, 4 or 5 stars, negative scores 1 or 2; the 3-star cut point is 0.
        non_negative, negative = kept(values[values >= 0]), kept(values[values < 0])
        upper = (
            _fold_means(non_negative, lambda v: cluster_cut_points(v, True, 3), seed, draws)
            if len(non_negative) > 3
            else [math.nan] * 2
        )
        lower = _fold_means(negative, lambda v: cluster_cut_points(v, True, 2), seed, draws) if len(negative) > 2 else [math.nan]
        return [lower[0], 0.0, *upper]
    return _fold_means(kept(values), lambda v: cluster_cut_points(v, spec.higher_is_better), seed, draws)


def _guardrail(thresholds: list[float], prior: dict[int, float], spec: MeasureSpec, prior_range: float | None) -> list[float]:
    cap = GUARDRAIL_POINTS if spec.percent_scale else GUARDRAIL_SHARE_OF_RANGE * (prior_range or math.inf)
    capped = []
    for stars, value in zip(STAR_LEVELS, thresholds):
        before = prior.get(stars)
        capped.append(
            value if before is None or math.isnan(before) or math.isnan(value) else min(max(value, before - cap), before + cap)
        )
    return capped


def year_cut_points(
    scores: pd.DataFrame,
    specs: dict[str, MeasureSpec],
    star_year: int,
    prior_thresholds: pd.DataFrame | None = None,
    prior_ranges: dict[str, float] | None = None,
    seed: int = SEED,
    fold_draws: int = FOLD_DRAWS,
    cahps_shift: float = 0.0,
) -> pd.DataFrame:
    """Cut points (2..5 stars) for every measure in `scores` (columns measure_key, value) of one star year.

    `prior_thresholds` (measure_key, stars, threshold) are the previous year's cut points, for the guardrails
    from 2023 on; `prior_ranges` the previous year's score range per measure (cap for non-0-100 measures);
    `fold_draws` the number of 10-fold partitions averaged (1 is CMS's single draw, at a quarter of the time);
    `cahps_shift` moves the CAHPS percentiles (`cahps.fit_percentile_shift`, fitted on other years).
    """
    tukey = star_year >= TUKEY_FROM_STAR_YEAR
    guardrails = prior_thresholds is not None
    prior_by_measure = (
        {key: dict(zip(rows["stars"], rows["threshold"])) for key, rows in prior_thresholds.groupby("measure_key")}
        if guardrails
        else {}
    )
    records = []
    for key, values in scores.dropna(subset=["value"]).groupby("measure_key")["value"]:
        spec = specs[key]
        array = np.sort(values.to_numpy(dtype=float))
        if spec.method == "cahps":
            thresholds = cahps.percentile_cut_points(array, spec.decimals, cahps_shift)
        else:
            thresholds = _clustered(array, spec, tukey, seed, fold_draws)
            if guardrails and spec.guardrailed(star_year) and key in prior_by_measure:
                thresholds = _guardrail(thresholds, prior_by_measure[key], spec, (prior_ranges or {}).get(key))
        for stars, value in zip(STAR_LEVELS, thresholds):
            rounded = value if math.isnan(value) or spec.method == "improvement" else round(value, spec.decimals)
            records.append((star_year, key, stars, rounded, spec.method))
    return pd.DataFrame(records, columns=THRESHOLD_COLUMNS)


def clustering_population(
    scores: pd.DataFrame, disaster_pct: pd.Series, specs: dict[str, MeasureSpec], star_year: int
) -> pd.DataFrame:
    """The scores of one star year that set its cut points: without the non-CAHPS scores of contracts the 60 percent
    rule excludes. `disaster_pct` is each contract's share of enrollees in FEMA Individual Assistance areas in the
    measurement year (two years before the star year), indexed by contract_id."""
    if star_year > SIXTY_PERCENT_RULE_UNTIL_STAR_YEAR:
        return scores
    affected = scores["contract_id"].map(disaster_pct).fillna(0.0) >= SIXTY_PERCENT_RULE_SHARE
    clustered = scores["measure_key"].map(lambda key: specs[key].method != "cahps")
    return scores[~(affected & clustered)]


def stars_from_thresholds(values: pd.Series, thresholds: dict[int, float], higher_is_better: bool) -> pd.Series:
    """Measure stars 1..5: at or above each threshold (at or below for lower-is-better); NaN without a score."""
    stars = pd.Series(1.0, index=values.index)
    for level in STAR_LEVELS:
        threshold = thresholds.get(level, math.nan)
        if math.isnan(threshold):
            continue
        reached = values >= threshold - 1e-9 if higher_is_better else values <= threshold + 1e-9
        stars = stars.where(~reached, float(level))
    return stars.where(values.notna())


def assign_stars(scores: pd.DataFrame, thresholds: pd.DataFrame, specs: dict[str, MeasureSpec]) -> pd.DataFrame:
    """`scores` with a `stars` column from `thresholds` (measure_key, stars, threshold); NaN for measures without."""
    by_measure = {key: dict(zip(rows["stars"], rows["threshold"])) for key, rows in thresholds.groupby("measure_key")}
    result = scores.copy()
    result["stars"] = np.nan
    for key, rows in scores.groupby("measure_key"):
        if key in by_measure and key in specs:
            result.loc[rows.index, "stars"] = stars_from_thresholds(rows["value"], by_measure[key], specs[key].higher_is_better)
    return result


def score_ranges(scores: pd.DataFrame, specs: dict[str, MeasureSpec]) -> dict[str, float]:
    """Each measure's score range after Tukey outlier deletion (the base of the non-0-100 guardrail)."""
    ranges = {}
    for key, values in scores.dropna(subset=["value"]).groupby("measure_key")["value"]:
        array = values.to_numpy(dtype=float)
        low, high = tukey_outer_fences(array, specs[key].percent_scale)
        kept = array[(array >= low) & (array <= high)]
        ranges[key] = float(kept.max() - kept.min()) if len(kept) else math.nan
    return ranges
