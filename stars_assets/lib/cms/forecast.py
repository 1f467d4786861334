"""Cut points for a star year nobody has published yet, and the back-test that decides how to forecast them.

Two forecasts of the target year's thresholds from a base year's published ones:
- carry-forward: the base year's published cut points, unchanged;
- score forecast: each measure's base-year scores moved by their recent trend (each score by the mean yearly
  change of its quantile of the measure's distribution over the last two years, damped toward no change year
  by year: a trend regresses to the mean), the cut-point engine run on the forecast scores, and the engine's move (forecast minus the
  engine's own base-year cut points) added to the published base-year cut points, capped by CMS's guardrails
  each year. Adding the move, rather than using the engine's level, cancels the engine's own reproduction error.

The back-test runs both one and two years ahead over the published history and reports the mean absolute
error per threshold and the signed bias each leaves in overall ratings computed from the target year's actual
scores. `SHIPPED_METHOD` names the winner.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from stars_assets.lib.cms import backtest, crosswalk, cutpoints, rating

CARRY_FORWARD = "carry_forward"
SCORE_FORECAST = "score_forecast"
TREND_DAMPING = 0.75  # share of a year's trend that persists into the next (0.5, 0.75 and 1 back-tested; 0.75 had the lowest MAE)
TREND_YEARS = 2
# The forecast runs the engine once per year ahead and keeps only its move; averaging several fold partitions
# (as the engine's own back-test does) left the forecast's back-test mixed (+-0.2 points MAE) at 8 times the time.
FORECAST_FOLD_DRAWS = 1
# The back-test winner (lower MAE per threshold and smaller rating bias, one and two years ahead): see README.
SHIPPED_METHOD = SCORE_FORECAST


QUANTILE_GRID = np.linspace(0, 100, 21)


def quantile_trends(scores: pd.DataFrame, base_year: int) -> dict[str, np.ndarray]:
    """Per measure, the mean yearly change of each quantile of its score distribution (0th, 5th, ... 100th)
    over the last `TREND_YEARS` years up to `base_year`: thresholds move with the part of the distribution they
    sit in (the lower tail has been catching up faster than the top), which one mean shift would miss."""
    window = scores[scores["star_year"].between(base_year - TREND_YEARS, base_year)]
    trends = {}
    for key, rows in window.groupby("measure_key"):
        by_year = {
            year: np.percentile(values, QUANTILE_GRID) for year, values in rows.groupby("star_year")["value"] if len(values) >= 20
        }
        years = sorted(by_year)
        if base_year not in by_year or len(years) < 2:
            continue
        changes = [(by_year[later] - by_year[earlier]) / (later - earlier) for earlier, later in zip(years, years[1:])]
        trends[key] = np.mean(changes, axis=0)
    return trends


def forecast_scores(scores: pd.DataFrame, base_year: int, years_ahead: int, damping: float | None = None) -> pd.DataFrame:
    """The base year's scores, each moved by the trend of its quantile in its measure's distribution, damped
    toward no change year by year (a trend regresses to the mean), labelled with the target star year."""
    damping = TREND_DAMPING if damping is None else damping
    factor = sum(damping**step for step in range(1, years_ahead + 1))
    trends = quantile_trends(scores, base_year)
    moved = scores[scores["star_year"] == base_year].copy()
    for key, rows in moved.groupby("measure_key"):
        if key in trends:
            percentile = rows["value"].rank(pct=True) * 100
            moved.loc[rows.index, "value"] = rows["value"] + np.interp(percentile, QUANTILE_GRID, trends[key]) * factor
    moved["star_year"] = base_year + years_ahead
    return moved


def _capped(values: pd.Series, reference: pd.Series, cap: pd.Series) -> pd.Series:
    return values.clip(lower=reference - cap, upper=reference + cap)


def forecast_cut_points(
    history: backtest.History,
    base_year: int,
    target_year: int,
    method: str = SCORE_FORECAST,
    specs: dict[int, dict[str, cutpoints.MeasureSpec]] | None = None,
) -> pd.DataFrame:
    """Thresholds (star_year = target_year, measure_key, stars, threshold) forecast from `base_year`'s published ones."""
    published = history.thresholds[history.thresholds["star_year"] == base_year].copy()
    if method == CARRY_FORWARD:
        return published.assign(star_year=target_year)
    specs = specs or backtest.specs_for(history)
    base_specs = specs[base_year]
    base_scores = history.scores[history.scores["star_year"] == base_year]
    ranges = cutpoints.score_ranges(base_scores, base_specs)
    engine_base = cutpoints.year_cut_points(base_scores, base_specs, base_year, fold_draws=FORECAST_FOLD_DRAWS)
    current = published.set_index(["measure_key", "stars"])["threshold"]
    for years_ahead in range(1, target_year - base_year + 1):
        year = base_year + years_ahead
        engine_year = cutpoints.year_cut_points(
            forecast_scores(history.scores, base_year, years_ahead), base_specs, year, fold_draws=FORECAST_FOLD_DRAWS
        )
        move = (
            (
                engine_year.set_index(["measure_key", "stars"])["threshold"]
                - engine_base.set_index(["measure_key", "stars"])["threshold"]
            )
            .reindex(current.index)
            .fillna(0.0)
        )
        proposed = published.set_index(["measure_key", "stars"])["threshold"] + move
        keys = current.index.get_level_values("measure_key")
        percent = pd.Series([base_specs[key].percent_scale if key in base_specs else True for key in keys], index=current.index)
        cap = pd.Series(
            np.where(
                percent,
                cutpoints.GUARDRAIL_POINTS,
                [cutpoints.GUARDRAIL_SHARE_OF_RANGE * ranges.get(key, math.inf) for key in keys],
            ),
            index=current.index,
        )
        decimals = pd.Series([base_specs[key].decimals if key in base_specs else 0 for key in keys], index=current.index)
        capped = _capped(proposed, current, cap)
        current = pd.Series([round(value, int(places)) for value, places in zip(capped, decimals)], index=current.index)
    return (
        current.rename("threshold")
        .reset_index()
        .assign(star_year=target_year)[["star_year", "measure_key", "stars", "threshold"]]
    )


def ratings_under(
    history: backtest.History, thresholds: pd.DataFrame, target_year: int, specs: dict[int, dict[str, cutpoints.MeasureSpec]]
) -> pd.DataFrame:
    """Overall ratings of the target year's contracts with measure stars from `thresholds` applied to the target
    year's actual scores (measures without a threshold keep their published stars), under the target year's rules."""
    scores = history.scores[history.scores["star_year"] == target_year]
    assigned = cutpoints.assign_stars(scores, thresholds.assign(star_year=target_year), specs[target_year]).dropna(
        subset=["stars"]
    )
    published = history.stars[history.stars["star_year"] == target_year]
    keys = ["star_year", "contract_id", "measure_key"]
    replaced = published.merge(assigned[[*keys, "stars"]], on=keys, how="left", suffixes=("", "_forecast"))
    replaced["stars"] = replaced["stars_forecast"].fillna(replaced["stars"]).astype(int)
    summary = history.summary[history.summary["star_year"] == target_year]
    cai = history.cai[history.cai["star_year"] == target_year]
    return rating.overall_ratings(replaced[["star_year", "contract_id", "measure_id", "stars"]], cai, summary)


# The plan's measurement-year data is rated two star years after the latest published one (2026 -> 2028).
PROJECTION_YEARS_AHEAD = 2

FORECAST_PAIRS = ((2024, 2025), (2025, 2026), (2023, 2025), (2024, 2026))


def forecast_backtest(history: backtest.History, pairs=FORECAST_PAIRS) -> pd.DataFrame:
    """Per (base, target, method): MAE per threshold against the target's published thresholds, and the signed
    bias and wrongly-4+ count in overall ratings from the target's actual scores, against the published ratings."""
    specs = backtest.specs_for(history)
    rows = []
    for base_year, target_year in pairs:
        if not {base_year, target_year} <= set(history.years):
            continue
        actual = history.thresholds[history.thresholds["star_year"] == target_year]
        published = history.summary[(history.summary["star_year"] == target_year) & history.summary["overall"].notna()]
        for method in (CARRY_FORWARD, SCORE_FORECAST):
            forecast = forecast_cut_points(history, base_year, target_year, method, specs)
            joined = actual.merge(forecast, on=["measure_key", "stars"], suffixes=("_actual", "_forecast")).dropna()
            ratings = ratings_under(history, forecast, target_year, specs).merge(
                published[["contract_id", "overall"]], on="contract_id"
            )
            error = ratings["overall_rating"] - ratings["overall"]
            rows.append(
                {
                    "base_year": base_year,
                    "target_year": target_year,
                    "years_ahead": target_year - base_year,
                    "method": method,
                    "thresholds": len(joined),
                    "mae_per_threshold": round(
                        float((joined["threshold_forecast"] - joined["threshold_actual"]).abs().mean()), 3
                    ),
                    "contracts": len(ratings),
                    "rating_bias": round(float(error.mean()), 3),
                    "rating_exact": round(float((error == 0).mean()), 3),
                    "wrongly_4_plus": int(((ratings["overall_rating"] >= 4) & (ratings["overall"] < 4)).sum()),
                    "wrongly_below_4": int(((ratings["overall_rating"] < 4) & (ratings["overall"] >= 4)).sum()),
                }
            )
    return pd.DataFrame(rows)


def winner(table: pd.DataFrame) -> str:
    """The method with the lower mean MAE per threshold over every back-tested pair."""
    return str(table.groupby("method")["mae_per_threshold"].mean().idxmin())


def project_ratings(
    history: backtest.History,
    base_year: int,
    thresholds: pd.DataFrame,
    target_year: int,
    specs: dict[int, dict[str, cutpoints.MeasureSpec]],
) -> pd.DataFrame:
    """Overall ratings for `target_year` from the base year's data: the base year's scores under `thresholds`
    (measures without one keep their base-year stars), renumbered to the target year's ids, rated with the
    target year's rules (weights, reward thresholds) and the base year's CAI where published."""
    scores = history.scores[history.scores["star_year"] == base_year]
    assigned = cutpoints.assign_stars(scores, thresholds.assign(star_year=base_year), specs[base_year]).dropna(subset=["stars"])
    stars = history.stars[history.stars["star_year"] == base_year]
    keys = ["contract_id", "measure_key"]
    stars = stars.merge(assigned[[*keys, "stars"]], on=keys, how="left", suffixes=("", "_projected"))
    stars["stars"] = stars["stars_projected"].fillna(stars["stars"]).astype(int)
    target_ids = crosswalk.ids_by_key(target_year)
    stars = stars[stars["measure_key"].isin(target_ids)].assign(
        star_year=target_year, measure_id=lambda frame: frame["measure_key"].map(target_ids)
    )
    summary = history.summary[history.summary["star_year"] == base_year].assign(star_year=target_year)
    cai = history.cai[history.cai["star_year"] == base_year].assign(star_year=target_year)
    return rating.overall_ratings(stars[["star_year", "contract_id", "measure_id", "stars"]], cai, summary)


def bands_from_thresholds(thresholds: pd.DataFrame, specs: dict[str, cutpoints.MeasureSpec], ids_year: int) -> pd.DataFrame:
    """Thresholds (measure_key, stars 2..5, threshold) as star bands in the `cms.cut_points` layout, with the
    measure ids of `ids_year` (the numbering the plan's rates carry), so the rating engine reads them as it reads
    CMS's published bands."""
    measures = crosswalk.year_measures(ids_year).reset_index().set_index("measure_key")
    records = []
    for (star_year, key), rows in thresholds.groupby(["star_year", "measure_key"]):
        if key not in measures.index or key not in specs or rows["threshold"].isna().any():
            continue
        measure, spec = measures.loc[key], specs[key]
        cut = dict(zip(rows["stars"], rows["threshold"]))
        for stars in range(1, 6):
            if spec.higher_is_better:
                lower, upper = cut.get(stars), cut.get(stars + 1)
                lower_inclusive, upper_inclusive = lower is not None, False
            else:
                lower, upper = cut.get(stars + 1), cut.get(stars)
                lower_inclusive, upper_inclusive = False, upper is not None
            records.append(
                {
                    "star_year": int(star_year),
                    "part": measure["part"],
                    "org_type": "All" if measure["part"] == "C" else "MA-PD",
                    "measure_id": measure["measure_id"],
                    "measure_name": measure["measure_name"],
                    "stars": stars,
                    "lower": lower,
                    "upper": upper,
                    "lower_inclusive": lower_inclusive,
                    "upper_inclusive": upper_inclusive,
                    "higher_is_better": spec.higher_is_better,
                    "decimals": spec.decimals,
                    "raw": "forecast",
                }
            )
    return pd.DataFrame(records)


def projection_cut_points(
    history: backtest.History, published_bands: pd.DataFrame, target_year: int, method: str | None = None
) -> pd.DataFrame:
    """Star bands for `target_year`: the forecast from the latest published year for every measure the forecast
    covers, that year's published bands (carried forward) for the others; ids in the latest year's numbering."""
    base_year = max(history.years)
    specs = backtest.specs_for(history)
    forecast = forecast_cut_points(history, base_year, target_year, method or SHIPPED_METHOD, specs)
    bands = bands_from_thresholds(forecast, specs[base_year], base_year)
    carried = published_bands[
        (published_bands["star_year"] == base_year) & ~published_bands["measure_id"].isin(bands["measure_id"])
    ]
    carried = carried.assign(star_year=target_year, raw="carried forward: " + carried["raw"].astype(str))
    return pd.concat([bands, carried[bands.columns]], ignore_index=True)


def difficulty_errors(history: backtest.History, base_year: int, target_year: int) -> pd.Series:
    """How much harder each published target-year threshold was than its forecast from `base_year` (points;
    positive = the actual cut point demanded more: higher for higher-is-better measures, lower otherwise)."""
    specs = backtest.specs_for(history)
    forecast = forecast_cut_points(history, base_year, target_year, SHIPPED_METHOD, specs)
    actual = history.thresholds[history.thresholds["star_year"] == target_year]
    joined = actual.merge(forecast, on=["measure_key", "stars"], suffixes=("_actual", "_forecast")).dropna()
    higher = joined["measure_key"].map({key: spec.higher_is_better for key, spec in specs[target_year].items()}).fillna(True)
    difference = joined["threshold_actual"] - joined["threshold_forecast"]
    return difference.where(higher.astype(bool), -difference)
