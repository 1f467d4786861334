"""The four model inputs from CMS measure data: one definition for the training set (CMS 2026
published tables) and for the plan's own contracts (gold.contract_measure_rates).

    hedis        mean of the available C01, C02, C11, C12, C14, C20 rates (pp), at least 3 of the 6.
                 These are the HEDIS measures the plan's member-level data supports (STARS.md section 4);
                 an unweighted mean, like the seed's "composite rate".
    cahps        mean of the CAHPS patient-experience measure stars (CMS 1..5 scale), at least 4 of the 8:
                 C22 Getting Needed Care, C23 Getting Appointments and Care Quickly, C24 Customer Service,
                 C25 Rating of Health Care Quality, C26 Rating of Health Plan, C27 Care Coordination,
                 D05 Rating of Drug Plan, D06 Getting Needed Prescription Drugs.
                 (C03 Annual Flu Vaccine is also collected by the CAHPS survey, but it is a vaccination
                 rate, not member experience, so it is left out.) Stars, not scores, because the plan's
                 own contracts turn their CAHPS scores into stars with the 2026 cut points.
    adherence    mean of D08, D09, D10 rates (pp), at least 2 of the 3.
    readmission  C18 Plan All-Cause Readmissions rate (pp), required.

Each composite needs at least half of its measures (rounded up): a mean of fewer would describe a
few measures rather than the domain. A contract below an input's minimum gets NaN for that input and
is named in `missing_inputs`. The training set drops those contracts (no imputation: a guessed input
would be fitted as if observed) and counts them per missing input. 2026: of 516 rated contracts, 72
are dropped (no C18 rate 47, too few CAHPS stars 31, too few HEDIS rates 2; some miss two), 444 kept.

Label: the published overall rating, with sparse extreme ratings merged (merge_sparse_levels).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

from stars_assets.lib.cms import crosswalk
from stars_assets.lib.ordinal.params import INPUTS, missing_inputs
from stars_assets.lib.tables import PLAN_CONTRACT_ID, Column, TableSpec

TRAINING_STAR_YEAR = 2026
MIN_CONTRACTS_PER_LEVEL = 10  # a rating level with fewer contracts cannot carry its own cut point


@dataclass(frozen=True)
class FeatureDefinition:
    input_name: str
    measure_keys: tuple[str, ...]  # crosswalk keys; each star year's ids come from the crosswalk
    source: str  # "rate" (percentage points) or "stars" (CMS measure stars)

    @property
    def min_measures(self) -> int:
        return math.ceil(len(self.measure_keys) / 2)

    def ids(self, star_year: int) -> tuple[str, ...]:
        """The measures' CMS ids in a star year (those rated that year)."""
        ids = crosswalk.ids_by_key(star_year)
        return tuple(ids[key] for key in self.measure_keys if key in ids)

    @property
    def measure_ids(self) -> tuple[str, ...]:
        return self.ids(TRAINING_STAR_YEAR)


FEATURES: tuple[FeatureDefinition, ...] = (
    FeatureDefinition(
        "hedis",
        (
            "breast_cancer_screening",
            "colorectal_cancer_screening",
            "diabetes_eye_exam",
            "diabetes_blood_sugar_controlled",
            "controlling_blood_pressure",
            "transitions_of_care",
        ),
        "rate",
    ),
    FeatureDefinition(
        "cahps",
        (
            "getting_needed_care",
            "getting_appointments_quickly",
            "customer_service",
            "rating_of_health_care_quality",
            "rating_of_health_plan",
            "care_coordination",
            "rating_of_drug_plan",
            "getting_needed_prescription_drugs",
        ),
        "stars",
    ),
    FeatureDefinition("adherence", ("adherence_diabetes", "adherence_hypertension", "adherence_statins"), "rate"),
    FeatureDefinition("readmission", ("plan_all_cause_readmissions",), "rate"),
)


def measure_count_column(feature: FeatureDefinition) -> str:
    return f"n_{feature.input_name}_measures"


def composite_inputs(measures: pd.DataFrame, star_year: int = TRAINING_STAR_YEAR) -> pd.DataFrame:
    """Per contract model inputs from long measure rows (contract_id, measure_id, rate, stars).

    Returns one row per contract_id present in `measures` (index contract_id): each input, the number
    of measures behind it, and `missing_inputs` (comma-separated input names below their minimum, '' if none).
    """
    contracts = pd.Index(sorted(measures["contract_id"].unique()), name="contract_id")
    inputs = pd.DataFrame(index=contracts)
    for feature in FEATURES:
        rows = measures[measures["measure_id"].isin(feature.ids(star_year))]
        values = pd.to_numeric(rows[feature.source], errors="coerce").astype(float)
        per_contract = values.groupby(rows["contract_id"]).agg(["mean", "count"]).reindex(contracts)
        count = per_contract["count"].fillna(0).astype(int)
        inputs[feature.input_name] = per_contract["mean"].where(count >= feature.min_measures)
        inputs[measure_count_column(feature)] = count
    inputs["missing_inputs"] = missing_inputs(inputs)
    return inputs


def contract_inputs_from_measure_rates(rates: pd.DataFrame) -> pd.DataFrame:
    """The plan's own contracts: rows (contract_id, measure_id, rate, projected_stars) -> model inputs.

    `rate` is a percent (for CAHPS measures a 0-100 score, unused: CAHPS enters through
    projected_stars, the same scale as the training set). Same output as composite_inputs.
    """
    return composite_inputs(rates.rename(columns={"projected_stars": "stars"}))


def merge_sparse_levels(ratings: pd.Series, min_contracts: int = MIN_CONTRACTS_PER_LEVEL) -> dict[float, float]:
    """Map each published rating to its model level: an extreme rating held by fewer than
    `min_contracts` contracts joins its inner neighbour, repeatedly, and takes the neighbour's star
    value (so level values stay star values). 2026 training set: 2.0 (2 contracts) joins 2.5 (15),
    5.0 (11 of the 18 published; 7 lack an input) stays its own level."""
    counts = ratings.value_counts().sort_index()
    levels = list(counts.index)
    level_of = {rating: rating for rating in levels}

    def merge(sparse: float, into: float) -> None:
        counts[into] += counts[sparse]
        for rating, level in level_of.items():
            if level == sparse:
                level_of[rating] = into

    while len(levels) > 2 and counts[levels[0]] < min_contracts:
        merge(levels.pop(0), levels[0])
    while len(levels) > 2 and counts[levels[-1]] < min_contracts:
        merge(levels.pop(), levels[-1])
    return {float(rating): float(level) for rating, level in level_of.items()}


# Every published rating is present (the set keeps rated contracts) and every input (contracts missing one are dropped).
TRAINING_SET = TableSpec(
    "model.cms_training_set",
    f"One row per {TRAINING_STAR_YEAR} MA-PD contract with a published overall Star Rating and all model inputs, with the label.",
    (
        PLAN_CONTRACT_ID,
        Column("organization_type", "VARCHAR", "CMS organization type (Local CCP, Regional CCP, PFFS, 1876 Cost)"),
        Column("overall", "DOUBLE", f"published {TRAINING_STAR_YEAR} overall Star Rating", nullable=False),
        *[Column(spec.name, "DOUBLE", f"{spec.label} ({spec.unit})", nullable=False) for spec in INPUTS],
        *[Column(measure_count_column(f), "BIGINT", f"measures behind {f.input_name}", nullable=False) for f in FEATURES],
        Column(
            "label",
            "DOUBLE",
            "model level: the overall rating after merging sparse extreme ratings (a star value)",
            nullable=False,
        ),
    ),
    primary_key=("contract_id",),
)


@dataclass(frozen=True)
class TrainingSet:
    frame: pd.DataFrame  # one row per kept contract: contract_id, organization_type, inputs, counts, overall, label
    dropped: pd.DataFrame  # rated contracts without a complete set of inputs, with missing_inputs
    level_of_rating: dict[float, float]  # published overall rating -> model level

    def dropped_per_input(self) -> dict[str, int]:
        """Contracts dropped because of each input (a contract missing two inputs counts for both)."""
        named = self.dropped["missing_inputs"].str.split(",").explode()
        return {feature.input_name: int((named == feature.input_name).sum()) for feature in FEATURES}


def training_set(
    measure_scores: pd.DataFrame,
    measure_stars: pd.DataFrame,
    summary_ratings: pd.DataFrame,
    star_year: int = TRAINING_STAR_YEAR,
) -> TrainingSet:
    """Contracts with a published overall rating (only MA-PD contracts get one), their inputs and label."""

    def of_year(frame: pd.DataFrame) -> pd.DataFrame:
        return frame[frame["star_year"] == star_year]

    rated = of_year(summary_ratings).dropna(subset=["overall"])[["contract_id", "organization_type", "overall"]]
    measures = pd.merge(
        of_year(measure_scores)[["contract_id", "measure_id", "value"]].rename(columns={"value": "rate"}),
        of_year(measure_stars)[["contract_id", "measure_id", "stars"]],
        on=["contract_id", "measure_id"],
        how="outer",
    )
    inputs = composite_inputs(measures[measures["contract_id"].isin(rated["contract_id"])])
    contracts = rated.merge(inputs.drop(columns="missing_inputs"), left_on="contract_id", right_index=True, how="left")
    # Recomputed after the merge so a rated contract with no measure rows at all counts as missing every input.
    contracts["missing_inputs"] = missing_inputs(contracts)
    complete = contracts["missing_inputs"] == ""
    counts = {measure_count_column(feature): int for feature in FEATURES}
    kept = contracts[complete].drop(columns="missing_inputs").astype(counts)
    level_of_rating = merge_sparse_levels(kept["overall"])
    kept = kept.assign(label=kept["overall"].map(level_of_rating))
    return TrainingSet(
        frame=kept.sort_values("contract_id").reset_index(drop=True),
        dropped=contracts[~complete].sort_values("contract_id").reset_index(drop=True),
        level_of_rating=level_of_rating,
    )
