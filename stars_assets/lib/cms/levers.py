"""Measure-level levers: for each measure with a projected star, how far the score is from the next
CMS cut point and what crossing it would do to the projected summary rating.

Two gains per measure, because half-star rounding decides what a star is worth:

    unrounded_gain  weight / total_weight: the rise of the weighted mean of measure stars when this
                    measure's star goes up by one (total_weight over the measures the summary counts).
    rounded_gain    the actual change of the half-star-rounded projected summary, recomputed with
                    `summary_rating` on the measure stars with this one raised by one star. It is 0 or
                    +0.5 (rarely more, when the reward factor also rises) and it is +0.5 only when the
                    unrounded summary crosses an x.25 or x.75 boundary. It can even be negative: a
                    higher star can raise the weighted variance past a reward-factor threshold, and a
                    smaller reward factor can outweigh the higher mean (reward_factor_before/_after show it).

Ranking within a contract (lever_rank 1 = best): largest rounded_gain first, then the largest
unrounded gain per unit of distance (unrounded_gain / distance: weighted-mean stars per point of
score), then measure_id. Measures already at 5 stars have no next cut point and no lever row.

Distances are in the measure's own units (percentage points for rates, score points for CAHPS) and
never negative, whichever direction the measure improves in (C18 readmissions: lower is better, so
the distance is how far the rate must fall). `distance` is to the published cut point (as
`next_cut_point`); CMS rounds a score half up to the cut point's precision before banding it, so
`distance_to_earn` (up to half a unit less) is the move after which the rounded score earns the next
star: reaching it suffices for a higher-is-better measure, a lower-is-better one must pass it.

The projected summary follows gold.contract_projected_summary: the CMS overall-rating rules on the
measures available (weights, reward factor, improvement hold-harmless, half-star rounding), no CAI.
No Dagster here.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Annotated

import pandas as pd

from stars_assets.lib.cms.rating import RatingRules, measure_star, next_cut_point, summary_rating
from stars_assets.lib.cms.tables import ALL_ORG_TYPES
from stars_assets.lib.tables import PLAN_CONTRACT_ID, Column, row_columns, weekly_contract_table

RANKING_RULE = (
    "largest rounded_gain first, then largest unrounded_gain_per_unit (unrounded gain per unit of distance "
    "to the published cut point), then measure_id"
)


@dataclass(frozen=True)
class Lever:
    """A row of model.measure_levers as measure_levers finds it, before the ranking; every lever is complete
    (a measure at 5 stars has no next cut point and no row)."""

    contract_id: Annotated[str, PLAN_CONTRACT_ID.description]
    measure_id: Annotated[str, "CMS measure id (C01..C33, D01..D12)"]
    measure_code: Annotated[str, "the plan's measure code (BCS, PDC_STATIN, C18, ...)"]
    rate: Annotated[float, "this week's score in the measure's own units (percent; CAHPS a 0-100 score)"]
    current_stars: Annotated[int, "projected measure stars now"]
    next_stars: Annotated[int, "the star the next cut point earns (current_stars + 1)"]
    threshold: Annotated[float, "the published cut point of the next star"]
    threshold_inclusive: Annotated[bool, "reaching the threshold exactly earns the next star (>= / <=)"]
    higher_is_better: Annotated[bool, "false for lower-is-better measures (C18 readmissions)"]
    distance: Annotated[float, "how far the score must move to the published cut point, own units, >= 0"]
    distance_to_earn: Annotated[
        float, "how far the score must move until CMS's half-up rounding to the cut point's precision earns the next star, >= 0"
    ]
    weight: Annotated[float, "the measure's CMS weight as counted in the summary (0 when the summary does not count it)"]
    total_weight: Annotated[float, "sum of the weights of the measures the projected summary counts"]
    unrounded_gain: Annotated[float, "weight / total_weight: rise of the weighted mean of stars for one more star"]
    unrounded_gain_per_unit: Annotated[float, "unrounded_gain / distance (stars per unit of score)"]
    reward_factor_before: Annotated[float, "CMS reward factor of the projected summary now"]
    reward_factor_after: Annotated[float, "reward factor with this measure one star higher"]
    summary_unrounded_before: Annotated[float, "projected summary before rounding (weighted mean + reward factor) now"]
    summary_unrounded_after: Annotated[float, "the same with this measure one star higher"]
    summary_before: Annotated[float, "projected summary rating now (half stars)"]
    summary_after: Annotated[float, "projected summary rating with this measure one star higher (half stars)"]
    rounded_gain: Annotated[float, "summary_after - summary_before: what crossing the cut point does to the rounded rating"]


MEASURE_LEVERS = weekly_contract_table(
    "model.measure_levers",
    "Per plan contract, week and measure below 5 stars: the distance to the next cut point and its gain.",
    "measure_id",
    (
        *row_columns(Lever),
        Column("lever_rank", "INTEGER", f"1 = best lever of the contract this week: {RANKING_RULE}", nullable=False),
    ),
)
LEVER_COLUMN_NAMES = MEASURE_LEVERS.column_names
REQUIRED_RATE_COLUMNS = ["contract_id", "measure_id", "rate", "projected_stars"]
DISTANCE_DECIMALS = 9


@dataclass(frozen=True)
class ProjectedSummary:
    """The CMS summary over a set of measure stars, the pass that stood (as gold.contract_projected_summary)."""

    counted_weights: Mapping[str, float]  # measure -> weight, for the measures the summary counts
    weighted_mean: float
    reward_factor: float
    unrounded: float
    rating: float

    @property
    def total_weight(self) -> float:
        return sum(self.counted_weights.values())


def projected_summary(stars: Mapping[str, float], rules: RatingRules) -> ProjectedSummary:
    """summary_rating over `stars` (no CAI), with the weights of the measures the standing pass counted:
    duplicates (D02, D03) and zero weights never count; improvement measures only when they were used."""
    result = summary_rating(stars, rules)
    variant = result.with_improvement if result.used_improvement else result.without_improvement
    counted = {
        measure: rules.weights[measure]
        for measure, star in stars.items()
        if star is not None
        and not pd.isna(star)
        and measure not in rules.overall_duplicates
        and rules.weights.get(measure, 0.0) > 0
        and (result.used_improvement or measure not in rules.improvement_measures)
        and (result.used_new_measures or measure not in rules.new_measure_disaster_year)
    }
    return ProjectedSummary(counted, variant.weighted_mean, variant.reward_factor, variant.unrounded, result.rating)


def _decimals(measure_id: str, cut_points: pd.DataFrame, org_type: str) -> int:
    bands = cut_points[(cut_points["measure_id"] == measure_id) & cut_points["org_type"].isin([org_type, ALL_ORG_TYPES])]
    return int(bands["decimals"].max())


def distance_to_earn(value: float, threshold: float, inclusive: bool, higher_is_better: bool, decimals: int) -> float:
    """The score move after which the score, rounded half up to `decimals`, is in the next band.

    ">= 76" (0 decimals): 75.5 rounds to 76, so from 75.2 the move is 0.3 (the published distance is 0.8).
    "<= 7" (lower is better): a score below 7.5 rounds to 7 or less, so from 9.2 the move is 1.7 (just past it).
    """
    half = 0.5 * 10.0**-decimals
    if higher_is_better:
        boundary = threshold - half if inclusive else threshold + half
        return max(boundary - value, 0.0)
    boundary = threshold + half if inclusive else threshold - half
    return max(value - boundary, 0.0)


def measure_levers(
    rates: pd.DataFrame,
    cut_points: pd.DataFrame,
    rules: RatingRules,
    org_type: str = "MA-PD",
    fixed_stars: Mapping[str, Mapping[str, int]] | None = None,
) -> pd.DataFrame:
    """One row per (contract, measure with a projected star below 5), ranked within each contract.

    `rates`: rows like gold.contract_measure_rates (contract_id, measure_id, rate, projected_stars;
    measure_code optional) for one week. `cut_points`: cms.cut_points rows of the star year the
    projected stars were computed with (a projected star that disagrees with them is an error).
    `fixed_stars`: per contract, stars counted in the summary but not levers themselves (the improvement measures,
    held at their projected stars). Returns LEVER_COLUMN_NAMES except as_of_week_end.
    """
    fixed_stars = fixed_stars or {}
    missing = [column for column in REQUIRED_RATE_COLUMNS if column not in rates.columns]
    if missing:
        raise ValueError(f"rates lack column(s) {', '.join(missing)}")
    rated = rates[rates["projected_stars"].notna() & rates["rate"].notna()]
    records = []
    for contract_id, rows in rated.groupby("contract_id", sort=True):
        stars = dict(zip(rows["measure_id"], rows["projected_stars"].astype(int)))
        fixed = dict(fixed_stars.get(contract_id, {}))
        before = projected_summary({**stars, **fixed}, rules)
        codes = dict(zip(rows["measure_id"], rows["measure_code"] if "measure_code" in rows else rows["measure_id"]))
        for measure_id, value in zip(rows["measure_id"], rows["rate"].astype(float)):
            computed = measure_star(measure_id, value, cut_points, org_type)
            if computed != stars[measure_id]:
                raise ValueError(
                    f"{contract_id} {measure_id}: projected_stars {stars[measure_id]} but the cut points give "
                    f"{computed} for {value:g}; rates and cut points come from different star years"
                )
            cut = next_cut_point(measure_id, value, cut_points, org_type)
            if cut is None:  # 5 stars: no cut point left to cross
                continue
            # Rounded so float noise (89 - 88.4 = 0.6000000000000085) does not break ties in the ranking.
            distance = round(cut.distance, DISTANCE_DECIMALS)
            after = projected_summary({**stars, **fixed, measure_id: cut.next_stars}, rules)
            weight = before.counted_weights.get(measure_id, 0.0)
            unrounded_gain = weight / before.total_weight
            records.append(
                Lever(
                    contract_id=contract_id,
                    measure_id=measure_id,
                    measure_code=codes[measure_id],
                    rate=value,
                    current_stars=cut.current_stars,
                    next_stars=cut.next_stars,
                    threshold=cut.threshold,
                    threshold_inclusive=cut.threshold_inclusive,
                    higher_is_better=cut.higher_is_better,
                    distance=distance,
                    distance_to_earn=round(
                        distance_to_earn(
                            value,
                            cut.threshold,
                            cut.threshold_inclusive,
                            cut.higher_is_better,
                            _decimals(measure_id, cut_points, org_type),
                        ),
                        DISTANCE_DECIMALS,
                    ),
                    weight=weight,
                    total_weight=before.total_weight,
                    unrounded_gain=unrounded_gain,
                    # A score sitting on an exclusive threshold is zero distance from it: any move is worth it.
                    unrounded_gain_per_unit=unrounded_gain / distance if distance > 0 else math.inf,
                    reward_factor_before=before.reward_factor,
                    reward_factor_after=after.reward_factor,
                    summary_unrounded_before=before.unrounded,
                    summary_unrounded_after=after.unrounded,
                    summary_before=before.rating,
                    summary_after=after.rating,
                    rounded_gain=after.rating - before.rating,
                )
            )
    levers = pd.DataFrame.from_records([asdict(lever) for lever in records], columns=[f.name for f in fields(Lever)])
    levers = levers.sort_values(
        ["contract_id", "rounded_gain", "unrounded_gain_per_unit", "measure_id"],
        ascending=[True, False, False, True],
        kind="stable",
    ).reset_index(drop=True)
    levers["lever_rank"] = levers.groupby("contract_id").cumcount() + 1
    return levers.astype({"current_stars": int, "next_stars": int, "lever_rank": int})
