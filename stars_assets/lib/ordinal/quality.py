"""Pass/fail rules for a fitted model, read from the parameter table the model asset stores."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from stars_assets.lib.ordinal.params import OrdinalParams

# The 2026 fit reaches 0.995 cross-validated within-half-star accuracy; the floor leaves a margin for
# another year's data and sits well above always predicting the most common rating (0.79).
CV_WITHIN_HALF_STAR_FLOOR = 0.95


@dataclass(frozen=True)
class Verdict:
    passed: bool
    description: str
    metadata: dict


def statistics(table: pd.DataFrame) -> dict[str, float]:
    rows = table[table["kind"] == "statistic"]
    return dict(zip(rows["name"], rows["estimate"].astype(float)))


def fit_converged(table: pd.DataFrame) -> Verdict:
    stats = statistics(table)
    converged = stats["converged"] == 1.0
    return Verdict(
        passed=converged,
        description="BFGS converged" if converged else "BFGS did not converge: estimates are not the MLE",
        metadata={"converged": converged, "n_obs": int(stats["n_obs"]), "log_likelihood": stats["log_likelihood"]},
    )


def coefficient_signs(table: pd.DataFrame) -> Verdict:
    """Readmission must lower the rating, the other inputs raise it."""
    params = OrdinalParams.from_parameter_table(table)
    wrong = [spec.name for spec in params.inputs if params.betas[spec.name] * spec.expected_sign <= 0]
    return Verdict(
        passed=not wrong,
        description="every coefficient has its domain sign" if not wrong else f"wrong sign: {', '.join(wrong)}",
        metadata={"n_coefficients": len(params.inputs), "n_wrong_sign": len(wrong), "wrong_sign": ", ".join(wrong)},
    )


def cv_accuracy(table: pd.DataFrame, floor: float = CV_WITHIN_HALF_STAR_FLOOR) -> Verdict:
    """Cross-validated within-half-star accuracy at least `floor`, and both accuracies above the
    most-common-rating baseline."""
    stats = statistics(table)
    within, exact = stats["cv_within_half_star_accuracy"], stats["cv_exact_accuracy"]
    baseline_within, baseline_exact = stats["baseline_within_half_star_accuracy"], stats["baseline_exact_accuracy"]
    passed = within >= floor and within > baseline_within and exact > baseline_exact
    n_obs = int(stats["n_obs"])
    return Verdict(
        passed=passed,
        description=(
            f"within half a star {within:.3f} (floor {floor}, baseline {baseline_within:.3f}); "
            f"exact {exact:.3f} (baseline {baseline_exact:.3f})"
        ),
        metadata={
            "n_obs": n_obs,
            "n_within_half_star": round(within * n_obs),
            "n_exact": round(exact * n_obs),
            "cv_within_half_star_accuracy": within,
            "cv_exact_accuracy": exact,
            "baseline_within_half_star_accuracy": baseline_within,
            "baseline_exact_accuracy": baseline_exact,
            "floor": floor,
        },
    )
