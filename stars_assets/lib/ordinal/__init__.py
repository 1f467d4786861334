"""The Star Rating ordinal model: parameter sets (the seed's and fitted ones), prediction, levers,
features from CMS measure data, fitting and cross-validation. No Dagster here: assets and the
`stars-predict` command both call this package."""

from stars_assets.lib.ordinal.features import (
    FEATURES,
    TrainingSet,
    composite_inputs,
    contract_inputs_from_measure_rates,
    merge_sparse_levels,
    training_set,
)
from stars_assets.lib.ordinal.fit import (
    CrossValidation,
    FitResult,
    cross_validate,
    fit,
    parameter_table,
    round_to_half_star,
    simulate,
)
from stars_assets.lib.ordinal.params import (
    INPUT_NAMES,
    INPUTS,
    INPUTS_BY_NAME,
    QBP_STARS,
    SEED,
    InputError,
    InputSpec,
    OrdinalParams,
    format_level,
    missing_inputs,
    validate_inputs,
)
from stars_assets.lib.ordinal.predict import Prediction, levers, predict, predict_contracts, probability_column

__all__ = [
    "FEATURES",
    "INPUTS",
    "INPUTS_BY_NAME",
    "INPUT_NAMES",
    "QBP_STARS",
    "SEED",
    "CrossValidation",
    "FitResult",
    "InputError",
    "InputSpec",
    "OrdinalParams",
    "Prediction",
    "TrainingSet",
    "composite_inputs",
    "contract_inputs_from_measure_rates",
    "cross_validate",
    "fit",
    "format_level",
    "levers",
    "merge_sparse_levels",
    "missing_inputs",
    "parameter_table",
    "predict",
    "predict_contracts",
    "probability_column",
    "round_to_half_star",
    "simulate",
    "training_set",
    "validate_inputs",
]
