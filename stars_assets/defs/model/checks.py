"""Checks on the fitted Star Rating model; the rules live in stars_assets.lib.ordinal.quality."""

import dagster as dg
import pandas as pd

from stars_assets.lib.ordinal import quality
from stars_assets.lib.ordinal.quality import Verdict

MODEL_KEY = dg.AssetKey(["model", "star_rating_model"])


def _result(verdict: Verdict) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(passed=verdict.passed, description=verdict.description, metadata=verdict.metadata)


@dg.asset_check(asset=MODEL_KEY, blocking=True, description="The BFGS fit converged (the estimates are the MLE).")
def check_validity_fit_converged(star_rating_model: pd.DataFrame) -> dg.AssetCheckResult:
    return _result(quality.fit_converged(star_rating_model))


@dg.asset_check(asset=MODEL_KEY, blocking=True, description="Readmission lowers the rating; HEDIS, CAHPS and adherence raise it.")
def check_validity_coefficient_signs(star_rating_model: pd.DataFrame) -> dg.AssetCheckResult:
    return _result(quality.coefficient_signs(star_rating_model))


@dg.asset_check(
    asset=MODEL_KEY,
    description=(
        f"Cross-validated within-half-star accuracy of at least {quality.CV_WITHIN_HALF_STAR_FLOOR}, and exact "
        "and within-half-star accuracy above always predicting the most common rating."
    ),
)
def check_accuracy_cv_within_half_star(star_rating_model: pd.DataFrame) -> dg.AssetCheckResult:
    return _result(quality.cv_accuracy(star_rating_model))
