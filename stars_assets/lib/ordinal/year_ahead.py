"""Next year's overall rating from this year's data: a proportional-odds model (statsmodels OrderedModel)
trained on pairs of consecutive star years (year t data -> year t+1 published rating), evaluated on a pair it
never saw against persistence (the rating stays) and against CMS's rules applied with carried-forward cut points.

Inputs per contract and base year t (all from CMS's public tables, so the model runs on any year's data):
    rating            the published overall rating at t
    unrounded_gap     the recomputed unrounded rating minus the published one (where in its half-star band it sits)
    forecast_gap      the rules of t+1 applied to year t's scores under the forecast t+1 cut points, minus rating
    last_change       rating at t minus rating at t-1 (ratings that rose tend to fall back); 0 without t-1
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from statsmodels.miscmodels.ordinal_model import OrderedModel

from stars_assets.lib.cms import backtest, forecast, rating

INPUTS = ("rating", "unrounded_gap", "forecast_gap", "last_change")
LOWEST_LEVEL = 2.5  # the few 1.0-2.0 ratings join 2.5 (too few contracts to carry their own cut point)
QBP_LINE = 4.0


def _overall(history: backtest.History, year: int) -> pd.Series:
    summary = history.summary[(history.summary["star_year"] == year) & history.summary["overall"].notna()]
    return summary.set_index("contract_id")["overall"]


def year_features(history: backtest.History, base_year: int, specs=None) -> pd.DataFrame:
    """The model inputs for every contract rated in `base_year` (index contract_id), plus the two baselines:
    persistence and the rules with carried-forward cut points (`carried_forward`)."""
    specs = specs or backtest.specs_for(history)
    target_year = base_year + 1
    published = _overall(history, base_year)
    frame = pd.DataFrame({"rating": published})
    year_stars = history.stars[history.stars["star_year"] == base_year]
    recomputed = rating.overall_ratings(
        year_stars, history.cai[history.cai["star_year"] == base_year], history.summary[history.summary["star_year"] == base_year]
    ).set_index("contract_id")
    unrounded = recomputed["unrounded_with_improvement"].where(
        recomputed["used_improvement"], recomputed["unrounded_without_improvement"]
    )
    frame["unrounded_gap"] = (unrounded.reindex(frame.index) - frame["rating"]).fillna(0.0)
    carried = history.thresholds[history.thresholds["star_year"] == base_year]
    carried_ratings = forecast.project_ratings(history, base_year, carried, target_year, specs).set_index("contract_id")[
        "overall_rating"
    ]
    frame["carried_forward"] = carried_ratings.reindex(frame.index).fillna(frame["rating"])
    forecast_thresholds = forecast.forecast_cut_points(history, base_year, target_year, forecast.SHIPPED_METHOD, specs)
    projected = forecast.project_ratings(history, base_year, forecast_thresholds, target_year, specs).set_index("contract_id")[
        "overall_rating"
    ]
    frame["forecast_gap"] = (projected.reindex(frame.index) - frame["rating"]).fillna(0.0)
    previous = _overall(history, base_year - 1)
    frame["last_change"] = (frame["rating"] - previous.reindex(frame.index)).fillna(0.0)
    frame["base_year"] = base_year
    return frame


def year_pairs(history: backtest.History, base_years: list[int], specs=None) -> pd.DataFrame:
    """Features at t with the published rating at t+1 (`next_rating`), for contracts rated in both years."""
    specs = specs or backtest.specs_for(history)
    pairs = []
    for base_year in base_years:
        features = year_features(history, base_year, specs)
        features["next_rating"] = _overall(history, base_year + 1).reindex(features.index)
        pairs.append(features.dropna(subset=["next_rating"]).reset_index())
    return pd.concat(pairs, ignore_index=True)


def _level(ratings: pd.Series) -> pd.Series:
    return ratings.clip(lower=LOWEST_LEVEL)


@dataclass(frozen=True)
class YearAheadModel:
    levels: list[float]
    params: pd.Series
    result: object

    def probabilities(self, features: pd.DataFrame) -> pd.DataFrame:
        probabilities = self.result.model.predict(self.params.values, exog=features[list(INPUTS)].astype(float).values)
        return pd.DataFrame(probabilities, index=features.index, columns=self.levels)

    def predict(self, features: pd.DataFrame) -> pd.Series:
        """The most probable rating."""
        return self.probabilities(features).idxmax(axis=1).astype(float)


def fit_year_ahead(pairs: pd.DataFrame) -> YearAheadModel:
    labels = _level(pairs["next_rating"])
    levels = sorted(labels.unique())
    endog = pd.Series(pd.Categorical(labels, categories=levels, ordered=True))
    model = OrderedModel(endog, pairs[list(INPUTS)].astype(float).reset_index(drop=True), distr="logit")
    result = model.fit(method="bfgs", disp=False, maxiter=2000)
    return YearAheadModel(levels=levels, params=result.params, result=result)


def scores_of(predicted: pd.Series, actual: pd.Series) -> dict[str, float]:
    predicted, actual = _level(predicted), _level(actual)
    return {
        "exact": float((predicted == actual).mean()),
        "within_half_star": float(((predicted - actual).abs() <= 0.5).mean()),
        "side_of_4_stars": float(((predicted >= QBP_LINE) == (actual >= QBP_LINE)).mean()),
    }


def evaluate(model: YearAheadModel, test: pd.DataFrame, draws: int = 1000, seed: int = 7) -> tuple[pd.DataFrame, dict]:
    """Per method (model, persistence, carried-forward rules): exact, within half a star, correct side of 4 stars;
    and the model's exact-match gain over persistence with a bootstrap 95% interval over contracts."""
    predictions = {
        "ordinal_model": model.predict(test),
        "persistence": test["rating"],
        "rules_carried_forward": test["carried_forward"],
    }
    table = pd.DataFrame(
        [
            {"method": name, "contracts": len(test), **scores_of(values, test["next_rating"])}
            for name, values in predictions.items()
        ]
    )
    actual = _level(test["next_rating"]).to_numpy()
    model_hit = (_level(predictions["ordinal_model"]).to_numpy() == actual).astype(float)
    persistence_hit = (_level(test["rating"]).to_numpy() == actual).astype(float)
    rng = np.random.default_rng(seed)
    samples = rng.integers(0, len(test), size=(draws, len(test)))
    gains = (model_hit[samples] - persistence_hit[samples]).mean(axis=1)
    gain = {
        "gain_exact_points": 100 * float(model_hit.mean() - persistence_hit.mean()),
        "ci_low": 100 * float(np.percentile(gains, 2.5)),
        "ci_high": 100 * float(np.percentile(gains, 97.5)),
        "draws": draws,
    }
    return table, gain
