"""CAHPS measure stars (Technical Notes, Attachment K, "Relative Distribution and Significance Testing"), as plain
functions over scores (star_year, measure_key, value).

CMS sets base groups from the 15th/30th/60th/80th percentiles of the contracts' unrounded case-mix adjusted means,
rounded to integers, and then moves a contract's base group by the significance of its difference from the national
mean (Tables K-7/K-8): base group 1 stays 1 only if significantly below the mean (else 2), base group 3 becomes 2 if
significantly below and 4 if significantly above, base group 5 stays 5 only if significantly above (else 4); base
groups 2 and 4 stay. Low-reliability rules (a few contracts a year) are not modelled.

The public tables carry rounded scores and no standard errors, so two parts are estimated from other years'
published CAHPS cut points and stars, never from the year being rated:
- the percentiles are taken over the scores spread evenly over their rounding interval (ties of a rounded score
  stand for distinct unrounded means), moved by a shift fitted on other years' published cut points (CMS's cut
  points sit up to a point below the rounded scores' percentiles, never above: CMS's distribution holds
  unrounded means, and perhaps contracts the tables publish no score for);
- significance is |score - mean of the contracts' scores| beyond a per-measure margin, one below and one above
  the mean, fitted on other years' published stars within their published base groups.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

PERCENTILES = {2: 15, 3: 30, 4: 60, 5: 80}  # stars -> percentile of its base group's lower limit
SHIFT_GRID = np.round(np.arange(-1.0, 1.0001, 0.05), 2)  # percentile shift, points
MARGIN_GRID = np.round(np.arange(0.0, 8.0001, 0.05), 2)  # significance margin, points
MARGIN_COLUMNS = ["measure_key", "margin_below", "margin_above"]


def derounded(values: np.ndarray, decimals: int = 0) -> np.ndarray:
    """Sorted scores with each run of equal rounded scores spread evenly over its rounding interval."""
    values = np.sort(np.asarray(values, dtype=float))
    half = 0.5 * 10.0**-decimals
    spread = values.copy()
    for value in np.unique(values):
        positions = np.flatnonzero(values == value)
        spread[positions] = value - half + 2 * half * (np.arange(len(positions)) + 0.5) / len(positions)
    return spread


def percentile_cut_points(values: np.ndarray, decimals: int = 0, shift: float = 0.0) -> list[float]:
    """The unrounded 2..5-star cut points: the percentiles of the derounded scores, moved by `shift`."""
    return list(np.percentile(derounded(values, decimals), list(PERCENTILES.values())) + shift)


def fit_percentile_shift(scores: pd.DataFrame, published: pd.DataFrame) -> float:
    """The shift (points) under which the rounded percentile cut points of `scores` (star_year, measure_key, value:
    CAHPS measures of the fitting years) match the most `published` thresholds (star_year, measure_key, stars,
    threshold); the middle of the best shifts."""
    unshifted = []
    for (year, key), rows in scores.dropna(subset=["value"]).groupby(["star_year", "measure_key"]):
        unshifted.extend((year, key, stars, cut) for stars, cut in zip(PERCENTILES, percentile_cut_points(rows["value"])))
    frame = pd.DataFrame(unshifted, columns=["star_year", "measure_key", "stars", "unshifted"]).merge(
        published, on=["star_year", "measure_key", "stars"]
    )
    matches = [float((np.round(frame["unshifted"] + shift) == frame["threshold"]).mean()) for shift in SHIFT_GRID]
    return float(_middle_of_best(SHIFT_GRID, matches))


def with_national_deviation(scores: pd.DataFrame) -> pd.DataFrame:
    """`scores` with `deviation`: the score minus the mean of its measure's scores that star year (the national mean
    as far as the public tables tell)."""
    mean = scores.groupby(["star_year", "measure_key"])["value"].transform("mean")
    return scores.assign(deviation=scores["value"] - mean)


def fit_significance_margins(rated: pd.DataFrame) -> pd.DataFrame:
    """Per measure, the margins below and above the mean beyond which a score counts as significantly different.

    `rated`: star_year, measure_key, value, base (base group under the published cut points) and published (CMS's
    stars) of the fitting years. The margin below is fitted on base groups 1 and 3 (significantly below: 1 stays 1,
    3 becomes 2), the margin above on base groups 3 and 5 (significantly above: 3 becomes 4, 5 stays 5): each the
    middle of the margins that classify the most contracts as CMS did."""
    rated = with_national_deviation(rated)
    records = []
    for key, rows in rated.groupby("measure_key"):
        base, published, deviation = rows["base"].to_numpy(), rows["published"].to_numpy(), rows["deviation"].to_numpy()
        below = np.isin(base, [1, 3])
        above = np.isin(base, [3, 5])
        went_below = published[below] == np.where(base[below] == 1, 1, 2)
        went_above = published[above] == np.where(base[above] == 5, 5, 4)
        records.append(
            (
                key,
                _best_margin(-deviation[below], went_below),
                _best_margin(deviation[above], went_above),
            )
        )
    return pd.DataFrame(records, columns=MARGIN_COLUMNS)


def significance_stars(scored: pd.DataFrame, margins: pd.DataFrame) -> pd.Series:
    """Final CAHPS stars from base groups: `scored` has star_year, measure_key, value and base (NaN without a
    score); the national mean is the mean of `scored`'s scores per measure and year; measures without margins keep
    their base group."""
    scored = with_national_deviation(scored)
    by_key = margins.set_index("measure_key")
    stars = moved_by_significance(
        scored["base"].to_numpy(dtype=float),
        scored["deviation"].to_numpy(dtype=float),
        scored["measure_key"].map(by_key["margin_below"]).to_numpy(dtype=float),
        scored["measure_key"].map(by_key["margin_above"]).to_numpy(dtype=float),
    )
    return pd.Series(stars, index=scored.index, name="stars")


def moved_by_significance(
    base: np.ndarray, deviation: np.ndarray, margin_below: np.ndarray, margin_above: np.ndarray
) -> np.ndarray:
    """Tables K-7/K-8 on arrays (broadcast together): base groups 1, 3 and 5 moved by the significance of
    `deviation` (score - national mean) beyond the margins; NaN margins leave the base group."""
    base, deviation, margin_below, margin_above = np.broadcast_arrays(
        np.asarray(base, dtype=float), deviation, np.asarray(margin_below, dtype=float), np.asarray(margin_above, dtype=float)
    )
    known = ~np.isnan(margin_below) & ~np.isnan(margin_above)
    below = known & (deviation < -margin_below)
    above = known & (deviation > margin_above)
    stars = base.copy()
    stars[known & (base == 1) & ~below] = 2
    stars[(base == 3) & below] = 2
    stars[(base == 3) & above] = 4
    stars[known & (base == 5) & ~above] = 4
    return stars


def out_of_sample(years: list[int], fit: Callable[[list[int]], object]) -> dict[int, object]:
    """For each year, `fit` on every other year (never on the year it is applied to)."""
    return {year: fit([other for other in years if other != year]) for year in years}


def _best_margin(distance: np.ndarray, observed: np.ndarray) -> float:
    """The margin beyond which `distance` from the mean (in the tested direction) agrees best with `observed`."""
    if not len(observed):
        return float("nan")
    agreement = [float(((distance > margin) == observed).mean()) for margin in MARGIN_GRID]
    return float(_middle_of_best(MARGIN_GRID, agreement))


def _middle_of_best(grid: np.ndarray, scores: list[float]) -> float:
    scores = np.asarray(scores)
    best = np.flatnonzero(scores >= scores.max() - 1e-12)
    return grid[best[len(best) // 2]]
