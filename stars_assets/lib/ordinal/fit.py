"""Fitting the proportional-odds model (statsmodels OrderedModel, logit), cross-validation, simulation."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats
from statsmodels.miscmodels.ordinal_model import OrderedModel

from stars_assets.lib.ordinal.params import INPUT_NAMES, SEED, OrdinalParams, format_level
from stars_assets.lib.ordinal.predict import predict
from stars_assets.lib.tables import Column, TableSpec

FIT_MAX_ITERATIONS = 2000
CV_FOLDS = 5
CV_SEED = 2026
CONFIDENCE = 0.95


# Cut rows carry their levels, beta and cut rows their interval; statistic rows only a name and a value.
STAR_RATING_MODEL = TableSpec(
    "model.star_rating_model",
    "The fitted ordinal model's betas and cut points beside the seed's, then fit and cross-validation statistics.",
    (
        Column("name", "VARCHAR", "input name (beta), 'cut <lower>|<upper>' (cut) or statistic name", nullable=False),
        Column("kind", "VARCHAR", "beta, cut (threshold in P(Y <= lower) = F(cut - x.beta)) or statistic", nullable=False),
        Column("lower_level", "DOUBLE", "cut: the star level at or below the threshold"),
        Column("upper_level", "DOUBLE", "cut: the next star level above it"),
        Column("estimate", "DOUBLE", "maximum-likelihood estimate (statistic rows: the value)", nullable=False),
        Column("std_err", "DOUBLE", "standard error (cuts: delta method from statsmodels' increments)"),
        Column("ci_low", "DOUBLE", f"{CONFIDENCE:.0%} Wald interval, lower end"),
        Column("ci_high", "DOUBLE", f"{CONFIDENCE:.0%} Wald interval, upper end"),
        Column("seed_value", "DOUBLE", "the seed's value (cuts: its threshold for reaching the same upper level)"),
    ),
)


@dataclass(frozen=True)
class FitResult:
    params: OrdinalParams
    estimates: pd.DataFrame  # name, kind (beta/cut), lower_level, upper_level, estimate, std_err, ci_low, ci_high
    log_likelihood: float
    null_log_likelihood: float  # thresholds only: the observed level frequencies
    pseudo_r2: float  # McFadden: 1 - llf / llnull
    aic: float
    n_obs: int
    converged: bool


def fit(training: pd.DataFrame, label: str = "label", inputs: tuple[str, ...] = INPUT_NAMES) -> FitResult:
    """Fit P(label <= level_k) = logistic(cut_k - x . beta) by maximum likelihood (BFGS)."""
    levels = sorted(training[label].unique())
    endog = pd.Series(pd.Categorical(training[label], categories=levels, ordered=True), index=training.index)
    model = OrderedModel(endog, training[list(inputs)].astype(float), distr="logit")
    result = model.fit(method="bfgs", maxiter=FIT_MAX_ITERATIONS, disp=False)
    params = OrdinalParams.from_ordered_model(result)
    return FitResult(
        params=params,
        estimates=_estimates(result, params),
        log_likelihood=float(result.llf),
        null_log_likelihood=float(result.llnull),
        pseudo_r2=float(result.prsquared),
        aic=float(result.aic),
        n_obs=int(result.nobs),
        converged=bool(result.mle_retvals["converged"]),
    )


def _estimates(result, params: OrdinalParams) -> pd.DataFrame:
    """Betas as fitted; cut points converted from statsmodels' (first cut, log increments)
    parametrisation to thresholds, their standard errors by the delta method."""
    n_betas = len(params.betas)
    estimates = np.asarray(result.params)
    covariance = np.asarray(result.cov_params())
    increments = estimates[n_betas:]
    # cut_k = t_0 + sum_{i=1..k} exp(t_i): d cut_k / d t_0 = 1, d cut_k / d t_i = exp(t_i) for i <= k
    jacobian = np.tril(np.tile(np.concatenate(([1.0], np.exp(increments[1:]))), (len(increments), 1)))
    cut_covariance = jacobian @ covariance[n_betas:, n_betas:] @ jacobian.T
    z = stats.norm.ppf(0.5 + CONFIDENCE / 2)
    rows = [
        {"name": name, "kind": "beta", "estimate": estimate, "std_err": np.sqrt(covariance[i, i])}
        for i, (name, estimate) in enumerate(zip(params.input_names, estimates[:n_betas]))
    ] + [
        {
            "name": f"cut {format_level(lower)}|{format_level(upper)}",
            "kind": "cut",
            "lower_level": lower,
            "upper_level": upper,
            "estimate": cut,
            "std_err": np.sqrt(cut_covariance[k, k]),
        }
        for k, (lower, upper, cut) in enumerate(zip(params.levels[:-1], params.levels[1:], params.cuts))
    ]
    table = pd.DataFrame(rows, columns=["name", "kind", "lower_level", "upper_level", "estimate", "std_err"])
    return table.assign(ci_low=table["estimate"] - z * table["std_err"], ci_high=table["estimate"] + z * table["std_err"])


def round_to_half_star(stars: pd.Series) -> pd.Series:
    """CMS rounding: to the nearest half star, x.25 and x.75 round up."""
    return np.floor(stars * 2 + 0.5) / 2


@dataclass(frozen=True)
class CrossValidation:
    folds: int
    seed: int
    predictions: pd.DataFrame  # per contract: fold, observed, predicted (argmax level), expected_stars, expected_rounded
    exact_accuracy: float
    within_half_star_accuracy: float
    expected_rounded_exact_accuracy: float
    baseline_level: float  # the most common level (of the whole set; each fold uses its training part's)
    baseline_exact_accuracy: float
    baseline_within_half_star_accuracy: float
    confusion: pd.DataFrame  # observed level (rows) x predicted level (columns), counts
    calibration: pd.DataFrame  # per level: mean predicted probability, observed frequency, observed count

    def summary(self) -> dict[str, float]:
        """The accuracies against the most-common-rating baseline, as the fit's statistics name them."""
        return {
            "cv_folds": self.folds,
            "cv_exact_accuracy": self.exact_accuracy,
            "cv_within_half_star_accuracy": self.within_half_star_accuracy,
            "cv_expected_rounded_exact_accuracy": self.expected_rounded_exact_accuracy,
            "baseline_level": self.baseline_level,
            "baseline_exact_accuracy": self.baseline_exact_accuracy,
            "baseline_within_half_star_accuracy": self.baseline_within_half_star_accuracy,
        }


def stratified_folds(labels: pd.Series, folds: int, seed: int) -> np.ndarray:
    """Fold number per row; each level is shuffled and dealt round-robin, continuing across levels
    so that small levels do not all start in fold 0."""
    rng = np.random.default_rng(seed)
    assignment = np.empty(len(labels), dtype=int)
    dealt = 0
    for level in sorted(labels.unique()):
        rows = np.flatnonzero(labels.to_numpy() == level)
        rng.shuffle(rows)
        assignment[rows] = (np.arange(len(rows)) + dealt) % folds
        dealt += len(rows)
    return assignment


def cross_validate(training: pd.DataFrame, label: str = "label", folds: int = CV_FOLDS, seed: int = CV_SEED) -> CrossValidation:
    fold_of_row = stratified_folds(training[label], folds, seed)
    levels = sorted(training[label].unique())
    held_out_parts = []
    for fold in range(folds):
        train, test = training[fold_of_row != fold], training[fold_of_row == fold]
        prediction = predict(fit(train, label).params, test)
        probabilities = prediction.probabilities.reindex(columns=levels, fill_value=0.0)
        held_out_parts.append(
            pd.DataFrame(
                {
                    "fold": fold,
                    "observed": test[label],
                    "predicted": probabilities.idxmax(axis=1).astype(float),
                    "expected_stars": prediction.expected_stars,
                    "baseline": float(train[label].mode().min()),
                }
            ).join(probabilities.add_prefix("p_"))
        )
    held_out = pd.concat(held_out_parts).loc[training.index]
    held_out["expected_rounded"] = round_to_half_star(held_out["expected_stars"])
    observed = held_out["observed"]
    calibration = pd.DataFrame(
        {
            "mean_predicted_probability": [held_out[f"p_{level}"].mean() for level in levels],
            "observed_frequency": [(observed == level).mean() for level in levels],
            "observed_count": [int((observed == level).sum()) for level in levels],
        },
        index=pd.Index(levels, name="level"),
    )
    confusion = pd.crosstab(
        pd.Categorical(observed, categories=levels),
        pd.Categorical(held_out["predicted"], categories=levels),
        rownames=["observed"],
        colnames=["predicted"],
        dropna=False,
    )
    return CrossValidation(
        folds=folds,
        seed=seed,
        predictions=held_out,
        exact_accuracy=float((held_out["predicted"] == observed).mean()),
        within_half_star_accuracy=float(((held_out["predicted"] - observed).abs() <= 0.5).mean()),
        expected_rounded_exact_accuracy=float((held_out["expected_rounded"] == observed).mean()),
        baseline_level=float(training[label].mode().min()),
        baseline_exact_accuracy=float((held_out["baseline"] == observed).mean()),
        baseline_within_half_star_accuracy=float(((held_out["baseline"] - observed).abs() <= 0.5).mean()),
        confusion=confusion,
        calibration=calibration,
    )


def simulate(params: OrdinalParams, inputs: pd.DataFrame, seed: int) -> pd.Series:
    """A level (star value) per input row, drawn from the model's predicted distribution."""
    probabilities = predict(params, inputs).probabilities.to_numpy()
    draws = np.random.default_rng(seed).random(len(inputs))[:, None]
    level_index = np.minimum((draws > probabilities.cumsum(axis=1)).sum(axis=1), len(params.levels) - 1)
    return pd.Series(np.asarray(params.levels)[level_index], index=inputs.index, name="label")


def parameter_table(result: FitResult, validation: CrossValidation, seed: OrdinalParams = SEED) -> pd.DataFrame:
    """The tidy table the model asset stores: beta and cut rows beside the seed's values, then
    fit and cross-validation statistics as `statistic` rows (estimate holds the value).

    A cut's seed value is the seed's threshold for reaching the same star value (P(Y >= upper_level)),
    NaN where the seed has no such level (half stars)."""
    seed_cut_by_upper = dict(zip(seed.levels[1:], seed.cuts))
    estimates = result.estimates.assign(
        seed_value=[
            seed.betas.get(row.name) if row.kind == "beta" else seed_cut_by_upper.get(row.upper_level, np.nan)
            for row in result.estimates.itertuples()
        ]
    )
    statistics = {
        "log_likelihood": result.log_likelihood,
        "null_log_likelihood": result.null_log_likelihood,
        "pseudo_r2": result.pseudo_r2,
        "aic": result.aic,
        "n_obs": result.n_obs,
        "converged": float(result.converged),
        **validation.summary(),
    }
    statistic_rows = pd.DataFrame(
        {"name": list(statistics), "kind": "statistic", "estimate": [float(v) for v in statistics.values()]}
    )
    return pd.concat([estimates, statistic_rows], ignore_index=True)[STAR_RATING_MODEL.column_names]
