"""Pass/fail rules for a week of model.contract_predictions and model.measure_levers (the asset checks
are thin wrappers). Each rule takes the week's rows as written to the warehouse."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from stars_assets.lib.ordinal.contract_predictions import PROBABILITY_COLUMNS
from stars_assets.lib.ordinal.quality import Verdict

TOLERANCE = 1e-9
EXAMPLES = 5


def _examples(rows: pd.DataFrame, columns: list[str]) -> list[str]:
    return [
        ", ".join(f"{column}={value}" for column, value in zip(columns, row))
        for row in rows[columns].head(EXAMPLES).itertuples(index=False)
    ]


def probabilities_sum_to_one(predictions: pd.DataFrame, tolerance: float = TOLERANCE) -> Verdict:
    """Rows with a prediction: the level probabilities are in [0, 1] and sum to 1. Rows without one
    (null expected_stars) must name the missing inputs."""
    predicted = predictions[predictions["expected_stars"].notna()]
    probabilities = predicted[PROBABILITY_COLUMNS].astype(float)
    total = probabilities.fillna(0.0).sum(axis=1)
    out_of_range = ((probabilities < -tolerance) | (probabilities > 1 + tolerance)).any(axis=1)
    bad = predicted[((total - 1.0).abs() > tolerance) | out_of_range]
    unexplained = predictions[predictions["expected_stars"].isna() & (predictions["missing_inputs"].fillna("") == "")]
    passed = bad.empty and unexplained.empty
    return Verdict(
        passed=passed,
        description=(
            f"{len(predicted)} predicted rows sum to 1 within {tolerance:g}"
            if passed
            else f"{len(bad)} row(s) whose probabilities do not sum to 1 or leave [0, 1]; "
            f"{len(unexplained)} row(s) without a prediction and without missing inputs"
        ),
        metadata={
            "rows_checked": len(predictions),
            "rows_predicted": len(predicted),
            "rows_missing_inputs": int(predictions["expected_stars"].isna().sum()),
            "max_abs_sum_error": float((total - 1.0).abs().max()) if len(total) else 0.0,
            "failing_rows": len(bad) + len(unexplained),
            "examples": _examples(pd.concat([bad, unexplained]), ["contract_id", "model", "expected_stars"]),
        },
    )


def expected_stars_within_levels(predictions: pd.DataFrame, tolerance: float = TOLERANCE) -> Verdict:
    """Expected stars between the model's lowest and highest level; P(4+) in [0, 1]."""
    predicted = predictions[predictions["expected_stars"].notna()]
    expected = predicted["expected_stars"].astype(float)
    p_four_plus = predicted["p_four_plus"].astype(float)
    bad = predicted[
        (expected < predicted["lowest_level"] - tolerance)
        | (expected > predicted["highest_level"] + tolerance)
        | (p_four_plus < -tolerance)
        | (p_four_plus > 1 + tolerance)
    ]
    return Verdict(
        passed=bad.empty,
        description=(
            f"{len(predicted)} expected ratings within their model's levels"
            if bad.empty
            else f"{len(bad)} row(s) with expected stars outside the model's levels or P(4+) outside [0, 1]"
        ),
        metadata={
            **_failing_rows(predicted, bad, ["contract_id", "model", "expected_stars", "lowest_level", "highest_level"]),
            "min_expected_stars": float(expected.min()) if len(expected) else None,
            "max_expected_stars": float(expected.max()) if len(expected) else None,
        },
    )


def _failing_rows(checked: pd.DataFrame, bad: pd.DataFrame, shown: list[str]) -> dict:
    return {"rows_checked": len(checked), "failing_rows": len(bad), "examples": _examples(bad, shown)}


def one_row_per_contract_and_model(predictions: pd.DataFrame, models: Sequence[str]) -> Verdict:
    """Exactly one row per (contract, model) for every model in `models`, and no other model."""
    counts = predictions.groupby(["contract_id", "model"]).size()
    duplicated = counts[counts > 1]
    contracts = predictions["contract_id"].unique()
    expected = pd.MultiIndex.from_product([sorted(contracts), sorted(models)], names=["contract_id", "model"])
    missing = expected.difference(counts.index)
    unexpected = sorted(set(predictions["model"]) - set(models))
    passed = duplicated.empty and missing.empty and not unexpected
    return Verdict(
        passed=passed,
        description=(
            f"{len(contracts)} contract(s) x {len(models)} models, one row each"
            if passed
            else f"{len(duplicated)} duplicated and {len(missing)} missing (contract, model) rows; unexpected models {unexpected}"
        ),
        metadata={
            "contracts": len(contracts),
            "models": list(models),
            "duplicated_keys": len(duplicated),
            "missing_keys": len(missing),
            "unexpected_models": unexpected,
            "examples": [f"{contract} {model}" for contract, model in list(duplicated.index) + list(missing)][:EXAMPLES],
        },
    )


def lever_distances_not_negative(levers: pd.DataFrame) -> Verdict:
    """Distances to the next cut point (published and with rounding) are present and >= 0."""
    distances = levers[["distance", "distance_to_earn"]].astype(float)
    bad = levers[(distances.isna() | (distances < 0)).any(axis=1) | (levers["distance_to_earn"] > levers["distance"])]
    return Verdict(
        passed=bad.empty,
        description=(
            f"{len(levers)} lever distances >= 0"
            if bad.empty
            else f"{len(bad)} lever(s) with a missing or negative distance, or a distance to earn above the distance"
        ),
        metadata=_failing_rows(levers, bad, ["contract_id", "measure_id", "rate", "distance", "distance_to_earn"]),
    )


def lever_gains_not_negative(levers: pd.DataFrame, tolerance: float = TOLERANCE) -> Verdict:
    """unrounded_gain >= 0 (= weight / total weight) always. rounded_gain >= 0 too, except where one more
    star lowers the reward factor enough to lower the rounded summary (a real CMS effect, reported, not a failure)."""
    unrounded = levers["unrounded_gain"].astype(float)
    rounded = levers["rounded_gain"].astype(float)
    reward_fell = levers["reward_factor_after"] < levers["reward_factor_before"]
    bad = levers[unrounded.isna() | (unrounded < -tolerance) | rounded.isna() | ((rounded < -tolerance) & ~reward_fell)]
    explained = levers[(rounded < -tolerance) & reward_fell]
    return Verdict(
        passed=bad.empty,
        description=(
            f"{len(levers)} lever gains >= 0"
            + (f" ({len(explained)} rounded loss(es) from a lower reward factor)" if len(explained) else "")
            if bad.empty
            else f"{len(bad)} lever(s) with a negative or missing gain"
        ),
        metadata={
            "rows_checked": len(levers),
            "failing_rows": len(bad),
            "rounded_losses_from_reward_factor": len(explained),
            "levers_with_half_star_gain": int((rounded > tolerance).sum()),
            "max_rounded_gain": float(np.nanmax(rounded)) if len(rounded) else None,
            "examples": _examples(pd.concat([bad, explained]), ["contract_id", "measure_id", "unrounded_gain", "rounded_gain"]),
        },
    )


def one_row_per_contract_and_measure(levers: pd.DataFrame) -> Verdict:
    counts = levers.groupby(["contract_id", "measure_id"]).size()
    duplicated = counts[counts > 1]
    return Verdict(
        passed=duplicated.empty,
        description="one lever per contract and measure"
        if duplicated.empty
        else f"{len(duplicated)} duplicated (contract, measure)",
        metadata={
            "rows_checked": len(levers),
            "duplicated_keys": len(duplicated),
            "examples": [f"{contract} {measure}" for contract, measure in duplicated.index[:EXAMPLES]],
        },
    )
