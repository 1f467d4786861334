"""The plan's own contracts, week by week: the ordinal model's rating distribution, expected stars,
P(4+ stars) and the seed's two levers, under every parameter set side by side (the seed's reference
calibration and the fitted model), beside the CMS projected summary and reward factor.

One long table, keyed by (as_of_week_end, contract_id, model), so the trajectory over weeks is one
query (TRAJECTORY_SQL). Rating levels differ between parameter sets (the seed: 1..5 whole stars; the
2026 fit: 2.5..5 half stars, its 2.5 holding the merged 2.0 ratings), so the table has one
probability column per half star from 1 to 5, null where a level is not one of the model's.
No Dagster here.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from stars_assets.lib.ordinal.features import contract_inputs_from_measure_rates
from stars_assets.lib.ordinal.params import INPUTS, QBP_STARS, OrdinalParams
from stars_assets.lib.ordinal.predict import predict_contracts, probability_column
from stars_assets.lib.tables import PLAN_CONTRACT_ID, Column, weekly_contract_table

TABLE = "model.contract_predictions"
TOP_LEVERS = 2
# Every CMS rating value: the probability columns of the table.
RATING_LEVELS: tuple[float, ...] = tuple(float(level) for level in np.arange(1.0, 5.01, 0.5))
PROBABILITY_COLUMNS = [probability_column(level) for level in RATING_LEVELS]
# Columns of gold.contract_projected_summary carried over as they are.
SUMMARY_COLUMNS = [
    "measures_rated",
    "reward_factor",
    "projected_summary_unrounded",
    "projected_summary",
    "p_four_plus_cut_points",
]

LEVER_STEPS = {spec.name: spec.step for spec in INPUTS}

# A contract missing a model input keeps its rows, with the prediction columns null; the CMS columns are null
# where gold has no projected summary for the contract.
PREDICTIONS = weekly_contract_table(
    TABLE,
    "Per plan contract, week and parameter set: the rating distribution, expected stars, P(4+) and levers.",
    "model",
    (
        PLAN_CONTRACT_ID,
        Column(
            "model",
            "VARCHAR",
            "parameter set: seed (the reference calibration) or fitted (model.star_rating_model)",
            nullable=False,
        ),
        *[Column(spec.name, "DOUBLE", f"model input: {spec.label} ({spec.unit})") for spec in INPUTS],
        Column(
            "missing_inputs",
            "VARCHAR",
            "inputs short of their minimum measures, comma-separated; '' if none (else predictions are null)",
            nullable=False,
        ),
        Column("lowest_level", "DOUBLE", "the model's lowest rating level (fitted: may merge lower ratings)", nullable=False),
        Column("highest_level", "DOUBLE", "the model's highest rating level", nullable=False),
        *[
            Column(column, "DOUBLE", f"P(rating = {level:g} stars); null when {level:g} is not a level of the model")
            for column, level in zip(PROBABILITY_COLUMNS, RATING_LEVELS)
        ],
        Column("expected_stars", "DOUBLE", "expected rating: sum over levels of level x P(level)"),
        Column("p_four_plus", "DOUBLE", f"P(rating >= {QBP_STARS:g} stars): the Quality Bonus Payment line"),
        *[
            column
            for rank in range(1, TOP_LEVERS + 1)
            for column in (
                Column(
                    f"lever_{rank}",
                    "VARCHAR",
                    f"input with the {'largest' if rank == 1 else f'#{rank}'} gain in expected stars "
                    "for the seed's one-year step (+5 pp HEDIS, +0.3 CAHPS, +5 pp adherence, -2 pp readmission)",
                ),
                Column(f"lever_{rank}_step", "DOUBLE", f"the seed's step for lever_{rank}, in the input's unit"),
                Column(f"lever_{rank}_gain", "DOUBLE", f"E[stars | input + step] - E[stars] for lever_{rank}"),
            )
        ],
        Column("measures_rated", "INTEGER", "measures with projected stars behind the CMS projected summary (gold)"),
        Column(
            "reward_factor",
            "DOUBLE",
            "CMS reward factor the projected measure stars earn (gold.contract_projected_summary); null without projected stars",
        ),
        Column("projected_summary_unrounded", "DOUBLE", "CMS projected summary before half-star rounding (no CAI)"),
        Column("projected_summary", "DOUBLE", "CMS projected summary rating from the measure stars (half stars, no CAI)"),
        Column(
            "p_four_plus_cut_points",
            "DOUBLE",
            "P(CMS projected summary >= 4 stars) over cut points simulated from the forecast's back-test error (gold)",
        ),
    ),
)
PREDICTION_COLUMN_NAMES = PREDICTIONS.column_names

# Every week, contract and model in one long result, with the week-on-week change of expected stars.
TRAJECTORY_SQL = f"""
SELECT as_of_week_end, contract_id, model, expected_stars, p_four_plus,
       expected_stars - lag(expected_stars) OVER w AS expected_stars_change,
       p_four_plus - lag(p_four_plus) OVER w AS p_four_plus_change,
       lever_1, lever_2, projected_summary, reward_factor
FROM {TABLE}
WINDOW w AS (PARTITION BY contract_id, model ORDER BY as_of_week_end)
ORDER BY contract_id, model, as_of_week_end
"""


def _model_rows(params: OrdinalParams, inputs: pd.DataFrame) -> pd.DataFrame:
    off_grid = [level for level in params.levels if probability_column(level) not in PROBABILITY_COLUMNS]
    if off_grid:
        raise ValueError(f"{params.name} has rating levels {off_grid} that are not half stars from 1 to 5")
    predicted = predict_contracts(params, inputs, top=TOP_LEVERS)
    rows = predicted.reindex(columns=PROBABILITY_COLUMNS)  # levels the model lacks stay null
    rows.insert(0, "model", params.name)
    for spec in INPUTS:
        rows[spec.name] = inputs[spec.name]
    rows["missing_inputs"] = predicted["missing_inputs"]
    rows["lowest_level"], rows["highest_level"] = min(params.levels), max(params.levels)
    rows["expected_stars"] = predicted["expected_stars"]
    rows["p_four_plus"] = predicted["p_four_plus"]
    for rank in range(1, TOP_LEVERS + 1):
        lever = predicted[f"lever_{rank}"]
        rows[f"lever_{rank}"] = lever
        rows[f"lever_{rank}_step"] = lever.map(LEVER_STEPS).astype(float)
        rows[f"lever_{rank}_gain"] = predicted[f"lever_{rank}_gain"]
    return rows.reset_index()


def contract_predictions(rates: pd.DataFrame, summaries: pd.DataFrame, parameter_sets: Sequence[OrdinalParams]) -> pd.DataFrame:
    """One row per (contract, parameter set) for one week.

    `rates`: gold.contract_measure_rates rows (contract_id, measure_id, rate, projected_stars);
    `summaries`: gold.contract_projected_summary rows (contract_id and SUMMARY_COLUMNS). The plan's
    contracts are those in either. A contract missing a model input keeps its rows, with
    missing_inputs named and null predictions. Returns PREDICTION_COLUMN_NAMES except as_of_week_end.
    """
    names = [params.name for params in parameter_sets]
    if len(set(names)) != len(names):
        raise ValueError(f"parameter sets need distinct names, got {names}")
    contracts = sorted(set(rates["contract_id"]) | set(summaries["contract_id"]))
    inputs = contract_inputs_from_measure_rates(rates[["contract_id", "measure_id", "rate", "projected_stars"]])
    if not contracts:
        return pd.DataFrame(columns=PREDICTION_COLUMN_NAMES[1:])
    # Reindexed: a contract with a projected summary but no rates gets NaN inputs, named as missing.
    inputs = inputs.reindex(pd.Index(contracts, name="contract_id"))
    predictions = pd.concat([_model_rows(params, inputs) for params in parameter_sets], ignore_index=True)
    summary = summaries.set_index("contract_id")[SUMMARY_COLUMNS]
    predictions = predictions.join(summary, on="contract_id")
    predictions["measures_rated"] = predictions["measures_rated"].astype("Int64")
    ordered = predictions.sort_values(["contract_id", "model"], kind="stable").reset_index(drop=True)
    return ordered.reindex(columns=PREDICTION_COLUMN_NAMES[1:])
