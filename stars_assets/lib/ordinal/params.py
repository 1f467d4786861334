"""Ordinal (proportional-odds) Star Rating parameter sets: the seed's calibration and fitted ones.

One convention throughout, statsmodels' `OrderedModel`:

    P(Y <= level_k | x) = F(cut_k - x . beta),   F = logistic

The seed writes the same model as P(Y >= k) = sigmoid(alpha_k + x . beta), so cut_{k-1} = -alpha_k.
Level values are star values, so E[Y] = sum_k level_k P(Y = level_k) is a rating in stars.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

import numpy as np
import pandas as pd

QBP_STARS = 4.0  # Quality Bonus Payment line: P(rating >= 4 stars) is what leadership reads


@dataclass(frozen=True)
class InputSpec:
    """One model input: its unit, the range a real contract can have, and the seed's lever step."""

    name: str
    label: str
    unit: str
    low: float
    high: float
    step: float  # the seed's simulated one-year improvement
    expected_sign: int  # +1: higher is better for the rating; -1: lower is better

    def describe_step(self) -> str:
        return f"{self.step:+g} {self.unit}"


# Rates are percentages, so 0..100. CAHPS is the mean of CAHPS measure stars, CMS's 1..5 scale.
INPUTS: tuple[InputSpec, ...] = (
    InputSpec("hedis", "HEDIS composite rate", "pp", 0.0, 100.0, 5.0, +1),
    InputSpec("cahps", "CAHPS member satisfaction", "stars", 1.0, 5.0, 0.3, +1),
    InputSpec("adherence", "Medication adherence", "pp", 0.0, 100.0, 5.0, +1),
    InputSpec("readmission", "Readmission rate", "pp", 0.0, 100.0, -2.0, -1),
)
INPUT_NAMES: tuple[str, ...] = tuple(spec.name for spec in INPUTS)
INPUTS_BY_NAME: Mapping[str, InputSpec] = MappingProxyType({spec.name: spec for spec in INPUTS})


class InputError(ValueError):
    """Inputs that are missing, not numeric, or outside their valid range."""


def format_level(level: float) -> str:
    return f"{level:g}"


@dataclass(frozen=True)
class OrdinalParams:
    name: str
    levels: tuple[float, ...]  # star values, ascending
    cuts: tuple[float, ...]  # thresholds between consecutive levels, ascending
    betas: Mapping[str, float]  # keyed by input name
    inputs: tuple[InputSpec, ...] = field(default=INPUTS)

    def __post_init__(self) -> None:
        object.__setattr__(self, "levels", tuple(float(level) for level in self.levels))
        object.__setattr__(self, "cuts", tuple(float(cut) for cut in self.cuts))
        object.__setattr__(self, "betas", MappingProxyType({k: float(v) for k, v in self.betas.items()}))
        if len(self.cuts) != len(self.levels) - 1:
            raise ValueError(f"{len(self.levels)} levels need {len(self.levels) - 1} cuts, got {len(self.cuts)}")
        if any(np.diff(self.levels) <= 0) or any(np.diff(self.cuts) <= 0):
            raise ValueError("levels and cuts must be strictly increasing")
        if set(self.betas) != set(self.input_names):
            raise ValueError(f"betas {sorted(self.betas)} do not match inputs {list(self.input_names)}")

    @property
    def input_names(self) -> tuple[str, ...]:
        return tuple(spec.name for spec in self.inputs)

    @property
    def beta_vector(self) -> np.ndarray:
        return np.array([self.betas[name] for name in self.input_names])

    @classmethod
    def from_ordered_model(cls, result, name: str = "fitted") -> OrdinalParams:
        """From a fitted statsmodels OrderedModel result whose exog columns are input names
        and whose endog categories are star values."""
        model = result.model
        exog_names = list(model.exog_names)[: model.exog.shape[1]]  # the rest name the thresholds
        params = np.asarray(result.params)
        thresholds = model.transform_threshold_params(params)[1:-1]  # drop the -inf/+inf ends
        return cls(
            name=name,
            levels=tuple(float(label) for label in model.labels),
            cuts=tuple(thresholds),
            betas=dict(zip(exog_names, params[: len(exog_names)])),
            inputs=tuple(INPUTS_BY_NAME[column] for column in exog_names),
        )

    @classmethod
    def from_parameter_table(cls, table: pd.DataFrame, name: str = "fitted") -> OrdinalParams:
        """From the tidy table the model asset stores (`kind` beta/cut rows; see fit.parameter_table)."""
        betas = table[table["kind"] == "beta"]
        cuts = table[table["kind"] == "cut"].sort_values("upper_level")
        return cls(
            name=name,
            levels=(cuts["lower_level"].iloc[0], *cuts["upper_level"]),
            cuts=tuple(cuts["estimate"]),
            betas=dict(zip(betas["name"], betas["estimate"])),
            inputs=tuple(INPUTS_BY_NAME[input_name] for input_name in betas["name"]),
        )


_SEED_ALPHAS = {2: -10.1, 3: -11.76, 4: -15.1, 5: -18.17}  # STARS.md section 1: P(Y >= k) intercepts

SEED = OrdinalParams(
    name="seed",
    levels=(1.0, 2.0, 3.0, 4.0, 5.0),
    cuts=tuple(-alpha for alpha in _SEED_ALPHAS.values()),
    betas={"hedis": 0.08, "cahps": 1.50, "adherence": 0.06, "readmission": -0.08},
)


def validate_inputs(params: OrdinalParams, inputs: pd.DataFrame | Mapping[str, float]) -> pd.DataFrame:
    """The inputs as a float frame in the parameter set's input order, or InputError saying what is wrong."""
    frame = pd.DataFrame([inputs]) if isinstance(inputs, Mapping) else inputs
    missing_columns = [name for name in params.input_names if name not in frame.columns]
    if missing_columns:
        raise InputError(f"missing input(s): {', '.join(missing_columns)}")
    problems = []
    numeric = pd.DataFrame(index=frame.index)
    for spec in params.inputs:
        values = pd.to_numeric(frame[spec.name], errors="coerce").astype(float)
        if values.isna().any():
            problems.append(f"{spec.name}: {int(values.isna().sum())} value(s) missing or not numeric")
        out_of_range = values[(values < spec.low) | (values > spec.high)]
        if len(out_of_range):
            problems.append(
                f"{spec.name} = {out_of_range.iloc[0]:g} is outside its valid range "
                f"{spec.low:g}..{spec.high:g} {spec.unit} ({spec.label})"
            )
        numeric[spec.name] = values
    if problems:
        raise InputError("; ".join(problems))
    return numeric


def missing_inputs(frame: pd.DataFrame, input_names: tuple[str, ...] = INPUT_NAMES) -> pd.Series:
    """Per row, the comma-separated names of the inputs that are NaN ('' when complete)."""
    absent = frame[list(input_names)].isna().to_numpy()
    names = [",".join(name for name, is_absent in zip(input_names, row) if is_absent) for row in absent]
    return pd.Series(names, index=frame.index, dtype=str)
