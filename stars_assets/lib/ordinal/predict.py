"""Predicted rating distribution, expected stars, P(4+) and the seed's "what would move the needle" levers."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.special import expit

from stars_assets.lib.ordinal.params import QBP_STARS, OrdinalParams, format_level, missing_inputs, validate_inputs


@dataclass(frozen=True)
class Prediction:
    probabilities: pd.DataFrame  # one column per level (star value), rows aligned with the inputs
    expected_stars: pd.Series  # sum_k level_k P(Y = level_k)
    p_four_plus: pd.Series  # P(rating >= 4 stars)


def predict(params: OrdinalParams, inputs: pd.DataFrame | Mapping[str, float]) -> Prediction:
    frame = validate_inputs(params, inputs)
    linear = frame.to_numpy() @ params.beta_vector
    cumulative = expit(np.asarray(params.cuts)[None, :] - linear[:, None])  # P(Y <= level_k)
    ones = np.ones((len(frame), 1))
    probabilities = np.diff(np.hstack([0 * ones, cumulative, ones]), axis=1)
    levels = np.asarray(params.levels)
    return Prediction(
        probabilities=pd.DataFrame(probabilities, index=frame.index, columns=list(params.levels)),
        expected_stars=pd.Series(probabilities @ levels, index=frame.index, name="expected_stars"),
        p_four_plus=pd.Series(probabilities[:, levels >= QBP_STARS].sum(axis=1), index=frame.index, name="p_four_plus"),
    )


def levers(params: OrdinalParams, inputs: pd.DataFrame | Mapping[str, float], top: int | None = 2) -> pd.DataFrame:
    """For each row and input, gain = E[Y | x_j + step_j] - E[Y | x], the step capped by the input's valid range.

    Returns one row per (input row, lever), best first within each input row, the `top` best
    (all when top is None): columns <index name or 'row'>, rank, input, step, applied_step, capped, gain.
    """
    frame = validate_inputs(params, inputs)
    baseline = predict(params, frame).expected_stars
    row_column = frame.index.name or "row"
    per_input = []
    for spec in params.inputs:
        stepped = frame.copy()
        uncapped = frame[spec.name] + spec.step
        stepped[spec.name] = uncapped.clip(spec.low, spec.high)
        per_input.append(
            pd.DataFrame(
                {
                    row_column: frame.index,
                    "input": spec.name,
                    "step": spec.step,
                    "applied_step": (stepped[spec.name] - frame[spec.name]).to_numpy(),
                    "capped": (stepped[spec.name] != uncapped).to_numpy(),
                    "gain": (predict(params, stepped).expected_stars - baseline).to_numpy(),
                }
            )
        )
    gains = pd.concat(per_input, ignore_index=True)
    # A stable sort keeps the input order for ties (e.g. two capped steps with zero gain).
    gains = gains.sort_values([row_column, "gain"], ascending=[True, False], kind="stable")
    gains["rank"] = gains.groupby(row_column, sort=False).cumcount() + 1
    if top is not None:
        gains = gains[gains["rank"] <= top]
    return gains[[row_column, "rank", "input", "step", "applied_step", "capped", "gain"]].reset_index(drop=True)


def probability_column(level: float) -> str:
    """p_stars_4, p_stars_3_5: a column name that needs no quoting in SQL."""
    return "p_stars_" + format_level(level).replace(".", "_")


def predict_contracts(params: OrdinalParams, inputs: pd.DataFrame, top: int = 2) -> pd.DataFrame:
    """One row per contract (the index of `inputs`, e.g. contract_inputs_from_measure_rates' output):
    P(rating = level) per level, expected_stars, p_four_plus, lever_<n> / lever_<n>_gain for the
    `top` levers, and missing_inputs. Contracts with a missing input keep their row with null predictions."""
    complete = inputs[list(params.input_names)].notna().all(axis=1)
    usable = inputs[complete]
    prediction = predict(params, usable)
    result = prediction.probabilities.rename(columns=probability_column)
    result["expected_stars"] = prediction.expected_stars
    result["p_four_plus"] = prediction.p_four_plus
    ranked = levers(params, usable, top=top)
    row_column = usable.index.name or "row"
    for rank in range(1, top + 1):
        at_rank = ranked[ranked["rank"] == rank].set_index(row_column)
        result[f"lever_{rank}"] = at_rank["input"]
        result[f"lever_{rank}_gain"] = at_rank["gain"]
    result = result.reindex(inputs.index)
    result["missing_inputs"] = missing_inputs(inputs, params.input_names)
    return result
