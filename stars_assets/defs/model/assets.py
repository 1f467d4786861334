"""Model layer: the CMS 2026 training set and the Star Rating ordinal model (statsmodels OrderedModel).

The work is in stars_assets.lib.ordinal; these assets wire it to the cms tables and describe the
results. The parameter table (model.star_rating_model) is also what `stars-predict --model fitted` reads.
"""

import dagster as dg
import pandas as pd

from stars_assets.defs.partitions import WAREHOUSE_POOL
from stars_assets.defs.tables import column_schema, table_metadata
from stars_assets.lib.ordinal import (
    FEATURES,
    INPUTS,
    SEED,
    CrossValidation,
    FitResult,
    cross_validate,
    fit,
    parameter_table,
    training_set,
)
from stars_assets.lib.ordinal.features import MIN_CONTRACTS_PER_LEVEL, TRAINING_SET
from stars_assets.lib.ordinal.fit import STAR_RATING_MODEL

OWNERS = ["team:stars-analytics"]
FEATURE_DEFINITIONS = "\n".join(
    f"- **{feature.input_name}**: mean of {', '.join(feature.measure_ids)} {feature.source}, "
    f"at least {feature.min_measures} of {len(feature.measure_ids)}"
    for feature in FEATURES
)


def _markdown(frame: pd.DataFrame, decimals: int = 3) -> dg.MetadataValue:
    # disable_numparse: star levels (2.5, 3.5) and counts keep their own text instead of one float format
    return dg.MetadataValue.md(frame.round(decimals).astype(object).to_markdown(disable_numparse=True))


@dg.asset(
    key=["model", "cms_training_set"],
    ins={
        "measure_scores": dg.AssetIn(key=["cms", "measure_scores"]),
        "measure_stars": dg.AssetIn(key=["cms", "measure_stars"]),
        "summary_ratings": dg.AssetIn(key=["cms", "summary_ratings"]),
    },
    group_name="model",
    kinds={"pandas", "duckdb"},
    owners=OWNERS,
    pool=WAREHOUSE_POOL,
    metadata=table_metadata(TRAINING_SET),
)
def cms_training_set(
    measure_scores: pd.DataFrame, measure_stars: pd.DataFrame, summary_ratings: pd.DataFrame
) -> dg.Output[pd.DataFrame]:
    """One row per 2026 MA-PD contract with a published overall Star Rating and all four model inputs
    (HEDIS composite, CAHPS member satisfaction, medication adherence, readmission), with the label.

    Contracts missing an input are dropped and counted per input in the metadata; sparse extreme
    ratings are merged into their inner neighbour (fewer than 10 contracts: 2026's two 2.0 contracts
    are modelled as 2.5)."""
    training = training_set(measure_scores, measure_stars, summary_ratings)
    frame = training.frame[TRAINING_SET.column_names]
    merged = {f"{rating:g}": f"{level:g}" for rating, level in training.level_of_rating.items() if rating != level}
    levels = frame.groupby("label").agg(
        contracts=("contract_id", "size"),
        published_ratings=("overall", lambda ratings: ", ".join(f"{r:g}" for r in sorted(ratings.unique()))),
    )
    inputs_summary = frame[[spec.name for spec in INPUTS]].describe().T[["mean", "std", "min", "max"]]
    return dg.Output(
        frame,
        metadata={
            "dagster/row_count": len(frame),
            "dagster/column_schema": column_schema(TRAINING_SET),
            "n_rated_contracts": len(frame) + len(training.dropped),
            "n_dropped_contracts": len(training.dropped),
            **{f"n_dropped_missing_{name}": count for name, count in training.dropped_per_input().items()},
            "dropped_contracts": dg.MetadataValue.md(
                training.dropped[["contract_id", "overall", "missing_inputs"]].to_markdown(index=False)
            ),
            "feature_definitions": dg.MetadataValue.md(FEATURE_DEFINITIONS),
            "label_merge": dg.MetadataValue.json({"min_contracts_per_level": MIN_CONTRACTS_PER_LEVEL, "merged_ratings": merged}),
            "levels": _markdown(levels),
            "inputs_summary": _markdown(inputs_summary, 2),
        },
    )


def _model_metadata(result: FitResult, validation: CrossValidation, table: pd.DataFrame) -> dict:
    columns = ["name", "estimate", "std_err", "ci_low", "ci_high", "seed_value"]
    coefficients = table[table["kind"] == "beta"][columns].set_index("name")
    cuts = table[table["kind"] == "cut"][columns].set_index("name")
    confusion = validation.confusion.rename(index="{:g}".format, columns="{:g}".format)
    calibration = validation.calibration.rename(index="{:g}".format)
    return {
        "dagster/row_count": len(table),
        "dagster/column_schema": column_schema(STAR_RATING_MODEL),
        "coefficients": _markdown(coefficients),
        "cut_points": _markdown(cuts),
        "converged": result.converged,
        "n_obs": result.n_obs,
        "log_likelihood": result.log_likelihood,
        "null_log_likelihood": result.null_log_likelihood,
        "pseudo_r2_mcfadden": result.pseudo_r2,
        "aic": result.aic,
        **validation.summary(),
        "cv_seed": validation.seed,
        "confusion_matrix": _markdown(confusion),
        "calibration_by_level": _markdown(calibration),
    }


@dg.asset(
    key=["model", "star_rating_model"],
    ins={"cms_training_set": dg.AssetIn(key=["model", "cms_training_set"])},
    group_name="model",
    kinds={"statsmodels", "pandas", "duckdb"},
    owners=OWNERS,
    pool=WAREHOUSE_POOL,
    metadata=table_metadata(STAR_RATING_MODEL),
)
def star_rating_model(cms_training_set: pd.DataFrame) -> dg.Output[pd.DataFrame]:
    """Proportional-odds ordinal logit (statsmodels OrderedModel, BFGS) of the published overall rating
    on the four inputs, P(Y <= level_k) = F(cut_k - x.beta), beside the seed's calibration.

    One row per beta and cut point (estimate, standard error, 95% CI, seed value), then fit and
    stratified 5-fold cross-validation statistics as `statistic` rows."""
    result = fit(cms_training_set)
    validation = cross_validate(cms_training_set)
    table = parameter_table(result, validation, seed=SEED)
    return dg.Output(table, metadata=_model_metadata(result, validation, table))
