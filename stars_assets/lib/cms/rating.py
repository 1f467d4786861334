"""CMS Part C & D Star Ratings engine: measure stars, summary and overall ratings.

Implements the 2026 Technical Notes (sections "Summary and Overall Ratings: Weighting of Measures",
"Applying the Improvement Measure(s)", "Applying the Reward Factor", "Categorical Adjustment Index",
"Rounding Rules", and the disaster provisions for new measures). Every number that changes from year
to year lives in a `RatingRules` instance; a new star year is a new instance in `RULES_BY_YEAR`.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from decimal import ROUND_HALF_UP, Decimal

import pandas as pd

from stars_assets.lib.cms.tables import ALL_ORG_TYPES

# CMS computes summary ratings, means and variances "with at least six digits of precision" and
# publishes the reward-factor thresholds at six decimals; a threshold is itself some contract's value,
# so comparisons happen at that precision (a contract at the 65th percentile is "at or above" it).
RATING_PRECISION = 6


@dataclasses.dataclass(frozen=True)
class RewardThresholds:
    """Percentiles of contracts' weighted means and variances that set the reward factor."""

    mean_65th: float
    mean_85th: float
    variance_30th: float
    variance_70th: float


@dataclasses.dataclass(frozen=True)
class RatingRules:
    """One star year's parameters for the MA-PD overall rating (and projected ratings on a subset)."""

    star_year: int
    weights: Mapping[str, float]
    improvement_measures: frozenset[str]
    # Part D measures that duplicate a Part C measure (same data source): counted once, as Part C.
    overall_duplicates: frozenset[str]
    # Adherence measures weigh 0 for contracts serving only Puerto Rico.
    puerto_rico_zero_weight: frozenset[str]
    # New measures and the calendar year whose disasters affect them (HOS: two years before
    # measurement, HEDIS: the measurement year); decides the new-measure hold-harmless.
    new_measure_disaster_year: Mapping[str, int]
    # Keyed by (with improvement measures, with new measures): Tables 8 and 9, overall column.
    reward_thresholds: Mapping[tuple[bool, bool], RewardThresholds]
    # Overall-rating CAI value by final adjustment category (Table 12).
    overall_cai: Mapping[int, float]
    # Keyed by (mean band, variance band); any other combination earns 0.
    reward_factors: Mapping[tuple[str, str], float]
    # Share of members in disaster areas from which a contract counts as affected.
    disaster_affected_pct: float
    # A rating without improvement measures at or above this stands if improvement would lower it.
    improvement_hold_harmless_floor: float


def _weights_2026() -> dict[str, float]:
    """Attachment G: process 1, outcome and intermediate outcome 3, patient experience, complaints and
    access 2, improvement 5; new measures weigh 1 in their first year (C04/C05 return to 3 in 2027)."""
    process = {f"C{i:02d}": 1.0 for i in range(1, 34)} | {f"D{i:02d}": 1.0 for i in range(1, 13)}
    outcome = dict.fromkeys(["C04", "C05", "C12", "C14", "C18", "D08", "D09", "D10"], 3.0)
    experience_complaints_access = dict.fromkeys(
        [f"C{i}" for i in range(22, 30)] + ["C31", "C32", "C33", "D01", "D02", "D03", "D05", "D06"], 2.0
    )
    improvement = dict.fromkeys(["C30", "D04"], 5.0)
    first_year = dict.fromkeys(["C04", "C05", "C13"], 1.0)
    return process | outcome | experience_complaints_access | improvement | first_year


RULES_2026 = RatingRules(
    star_year=2026,
    weights=_weights_2026(),
    improvement_measures=frozenset({"C30", "D04"}),
    overall_duplicates=frozenset({"D02", "D03"}),
    puerto_rico_zero_weight=frozenset({"D08", "D09", "D10"}),
    new_measure_disaster_year={"C04": 2023, "C05": 2023, "C13": 2024},
    reward_thresholds={
        (True, True): RewardThresholds(3.649351, 3.932432, 0.914850, 1.263462),
        (True, False): RewardThresholds(3.656716, 3.943662, 0.905154, 1.272639),
        (False, True): RewardThresholds(3.686567, 3.953125, 0.908919, 1.269610),
        (False, False): RewardThresholds(3.700000, 3.966667, 0.915156, 1.289063),
    },
    overall_cai={
        1: -0.063262, 2: -0.040422, 3: -0.017803, 4: 0.003256, 5: 0.018790,
        6: 0.045683, 7: 0.058145, 8: 0.101257, 9: 0.145515,
    },
    reward_factors={
        ("high", "low"): 0.4,
        ("high", "medium"): 0.3,
        ("relatively_high", "low"): 0.2,
        ("relatively_high", "medium"): 0.1,
    },
    disaster_affected_pct=25.0,
    improvement_hold_harmless_floor=4.0,
)

RULES_BY_YEAR: dict[int, RatingRules] = {2026: RULES_2026}


def rules_for(star_year: int) -> RatingRules:
    if star_year not in RULES_BY_YEAR:
        raise KeyError(f"no CMS rating rules for star year {star_year}; add them to RULES_BY_YEAR")
    return RULES_BY_YEAR[star_year]


# ---------------------------------------------------------------------------------------------
# Measure stars from cut points
# ---------------------------------------------------------------------------------------------


def _measure_bands(measure_id: str, cut_points: pd.DataFrame, org_type: str) -> pd.DataFrame:
    """The five star bands of one measure for an org type (Part C bands apply to every org type)."""
    bands = cut_points[(cut_points["measure_id"] == measure_id) & cut_points["org_type"].isin([org_type, ALL_ORG_TYPES])]
    if sorted(bands["stars"]) != [1, 2, 3, 4, 5]:
        raise ValueError(f"expected one cut-point band per star for {measure_id} ({org_type}), got {len(bands)} rows")
    return bands.sort_values("stars")


def round_half_up(value: float, decimals: int) -> float:
    """Traditional rounding (CMS's rule for measure scores): 83.5 -> 84, 83.49 -> 83."""
    quantum = Decimal(1).scaleb(-decimals)
    return float(Decimal(repr(value)).quantize(quantum, rounding=ROUND_HALF_UP))


def _in_band(value: float, band: pd.Series) -> bool:
    lower, upper = band["lower"], band["upper"]
    above = pd.isna(lower) or value > lower or (band["lower_inclusive"] and value == lower)
    below = pd.isna(upper) or value < upper or (band["upper_inclusive"] and value == upper)
    return bool(above and below)


def measure_star(measure_id: str, value: float, cut_points: pd.DataFrame, org_type: str = "MA-PD") -> int | None:
    """Stars 1..5 for a measure score, or None when there is no score.

    The score is in the measure's published units (percentage points for rates). CMS rounds a score to
    the precision of the published thresholds before placing it in a band, so 75.5 on a "76 %" cut
    point earns the star above.
    """
    if value is None or pd.isna(value):
        return None
    bands = _measure_bands(measure_id, cut_points, org_type)
    rounded = round_half_up(float(value), int(bands["decimals"].max()))
    for _, band in bands.iterrows():
        if _in_band(rounded, band):
            return int(band["stars"])
    raise ValueError(f"{measure_id} score {value} falls in no published band")


@dataclasses.dataclass(frozen=True)
class NextCutPoint:
    measure_id: str
    current_stars: int
    next_stars: int
    threshold: float
    # Whether reaching the threshold exactly earns the next star (">= 76 %") or it must be passed ("> 7 %").
    threshold_inclusive: bool
    higher_is_better: bool
    # How far the score must move toward the threshold, in the measure's own units (always >= 0).
    distance: float


def next_cut_point(
    measure_id: str, value: float, cut_points: pd.DataFrame, org_type: str = "MA-PD"
) -> NextCutPoint | None:
    """The threshold of the next star up and the distance to it; None at 5 stars or without a score."""
    current = measure_star(measure_id, value, cut_points, org_type)
    if current is None or current == 5:
        return None
    bands = _measure_bands(measure_id, cut_points, org_type).set_index("stars")
    next_band = bands.loc[current + 1]
    higher_is_better = bool(next_band["higher_is_better"])
    if higher_is_better:
        threshold, inclusive, distance = next_band["lower"], next_band["lower_inclusive"], next_band["lower"] - value
    else:
        threshold, inclusive, distance = next_band["upper"], next_band["upper_inclusive"], value - next_band["upper"]
    return NextCutPoint(
        measure_id=measure_id,
        current_stars=current,
        next_stars=current + 1,
        threshold=float(threshold),
        threshold_inclusive=bool(inclusive),
        higher_is_better=higher_is_better,
        distance=max(float(distance), 0.0),
    )


# ---------------------------------------------------------------------------------------------
# Summary and overall ratings
# ---------------------------------------------------------------------------------------------


def round_half_star(rating: float) -> float:
    """Nearest half star, halves up: 3.75 -> 4.0, 3.7499 -> 3.5, 3.25 -> 3.5.

    Doubling and rounding to 9 decimals first removes float error (3.7499999999999996 is 3.75)
    without moving any value CMS would distinguish at its six-decimal precision.
    """
    return math.floor(round(rating * 2, 9) + 0.5) / 2


def weighted_mean(stars: Mapping[str, float], weights: Mapping[str, float]) -> float:
    total_weight = sum(weights[measure] for measure in stars)
    return sum(weights[measure] * star for measure, star in stars.items()) / total_weight


def weighted_variance(stars: Mapping[str, float], weights: Mapping[str, float]) -> float:
    """n * sum(w_i (x_i - mean)^2) / (W (n - 1)) (Attachment H); NaN for fewer than two measures."""
    n = len(stars)
    if n < 2:
        return math.nan
    mean = weighted_mean(stars, weights)
    total_weight = sum(weights[measure] for measure in stars)
    spread = sum(weights[measure] * (star - mean) ** 2 for measure, star in stars.items())
    return n * spread / (total_weight * (n - 1))


def reward_factor(
    mean: float, variance: float, rules: RatingRules = RULES_2026,
    with_improvement: bool = True, with_new_measures: bool = True,
) -> float:
    """0.4 / 0.3 / 0.2 / 0.1 for high or relatively high means with low or medium variance, else 0.

    The thresholds depend on which measures the mean was computed over (Tables 8 and 9).
    """
    thresholds = rules.reward_thresholds[(with_improvement, with_new_measures)]
    mean, variance = round(mean, RATING_PRECISION), round(variance, RATING_PRECISION)
    if mean >= thresholds.mean_85th:
        mean_band = "high"
    elif mean >= thresholds.mean_65th:
        mean_band = "relatively_high"
    else:
        return 0.0
    if variance < thresholds.variance_30th:
        variance_band = "low"
    elif variance < thresholds.variance_70th:
        variance_band = "medium"
    else:  # high variance, or NaN for a single measure
        return 0.0
    return rules.reward_factors[(mean_band, variance_band)]


def cai_value(cai_category: int | None, rules: RatingRules = RULES_2026) -> float:
    """Overall-rating CAI for a final adjustment category; 0 when the contract has none."""
    if cai_category is None or pd.isna(cai_category):
        return 0.0
    return rules.overall_cai[int(cai_category)]


def improvement_hold_harmless(with_improvement: float, without_improvement: float, floor: float = 4.0) -> tuple[float, bool]:
    """(rating, whether improvement measures were used).

    Improvement measures are dropped only when the rating without them is at least `floor` (4 stars)
    and including them would lower it.
    """
    if without_improvement >= floor and with_improvement < without_improvement:
        return without_improvement, False
    return with_improvement, True


@dataclasses.dataclass(frozen=True)
class RatingVariant:
    """One pass of the calculation over a chosen set of measures."""

    measures: int
    weighted_mean: float
    variance: float
    reward_factor: float
    unrounded: float
    rounded: float


@dataclasses.dataclass(frozen=True)
class RatingResult:
    rating: float
    used_improvement: bool
    used_new_measures: bool
    new_measure_hold_harmless_eligible: bool
    cai: float
    # Both improvement passes for the new-measure choice that stood.
    with_improvement: RatingVariant
    without_improvement: RatingVariant


def _effective_weights(rules: RatingRules, puerto_rico_only: bool) -> dict[str, float]:
    if not puerto_rico_only:
        return dict(rules.weights)
    return {measure: 0.0 if measure in rules.puerto_rico_zero_weight else weight for measure, weight in rules.weights.items()}


def _variant(
    stars: Mapping[str, float], weights: Mapping[str, float], rules: RatingRules,
    with_improvement: bool, with_new_measures: bool, cai: float,
) -> RatingVariant:
    included = {
        measure: star for measure, star in stars.items()
        if weights.get(measure, 0.0) > 0
        and (with_improvement or measure not in rules.improvement_measures)
        and (with_new_measures or measure not in rules.new_measure_disaster_year)
    }
    if not included:
        raise ValueError("no weighted measure stars to rate")
    mean = weighted_mean(included, weights)
    variance = weighted_variance(included, weights)
    factor = reward_factor(mean, variance, rules, with_improvement, with_new_measures)
    unrounded = mean + factor + cai
    # A rating lives on the 1..5 scale even when the reward factor and CAI push past it.
    rounded = min(max(round_half_star(unrounded), 1.0), 5.0)
    return RatingVariant(len(included), mean, variance, factor, unrounded, rounded)


def _rate(
    stars: Mapping[str, float], weights: Mapping[str, float], rules: RatingRules, cai: float, with_new_measures: bool
) -> RatingResult:
    """Both improvement passes over one choice of new measures, and the improvement hold-harmless."""
    with_improvement = _variant(stars, weights, rules, True, with_new_measures, cai)
    without_improvement = _variant(stars, weights, rules, False, with_new_measures, cai)
    rating, used_improvement = improvement_hold_harmless(
        with_improvement.rounded, without_improvement.rounded, rules.improvement_hold_harmless_floor
    )
    return RatingResult(
        rating=rating,
        used_improvement=used_improvement,
        used_new_measures=with_new_measures,
        new_measure_hold_harmless_eligible=False,
        cai=cai,
        with_improvement=with_improvement,
        without_improvement=without_improvement,
    )


def _new_measure_hold_harmless_eligible(
    stars: Mapping[str, float], rules: RatingRules, disaster_pct_by_year: Mapping[int, float]
) -> bool:
    """Disaster-affected contracts may drop the new measures: eligible when, for a year whose disasters
    affect a new measure the contract has stars for, at least 25% of members lived in a disaster area."""
    affected_years = {year for measure, year in rules.new_measure_disaster_year.items() if measure in stars}
    return any(disaster_pct_by_year.get(year, 0.0) >= rules.disaster_affected_pct for year in affected_years)


def summary_rating(
    stars_by_measure: Mapping[str, float],
    rules: RatingRules = RULES_2026,
    cai_category: int | None = None,
    puerto_rico_only: bool = False,
    disaster_pct_by_year: Mapping[int, float] | None = None,
) -> RatingResult:
    """Overall-style rating over whatever measure stars are given (the full set, or a projection on a subset).

    Applies the overall rating's weights, reward-factor thresholds and CAI, the improvement
    hold-harmless, and, for disaster-affected contracts, the new-measure hold-harmless.
    """
    stars = {
        measure: float(star) for measure, star in stars_by_measure.items()
        if star is not None and not pd.isna(star) and measure not in rules.overall_duplicates
    }
    weights = _effective_weights(rules, puerto_rico_only)
    cai = cai_value(cai_category, rules)
    eligible = _new_measure_hold_harmless_eligible(stars, rules, disaster_pct_by_year or {})
    result = _rate(stars, weights, rules, cai, with_new_measures=True)
    if eligible:
        without_new_measures = _rate(stars, weights, rules, cai, with_new_measures=False)
        if result.rating < without_new_measures.rating:
            result = without_new_measures
    return dataclasses.replace(result, new_measure_hold_harmless_eligible=eligible)


OVERALL_RATING_COLUMNS = [
    "star_year", "contract_id", "measures_rated", "cai_category", "cai_value",
    "weighted_mean_with_improvement", "weighted_mean_without_improvement",
    "variance_with_improvement", "variance_without_improvement",
    "reward_factor_with_improvement", "reward_factor_without_improvement",
    "unrounded_with_improvement", "unrounded_without_improvement",
    "rounded_with_improvement", "rounded_without_improvement",
    "used_improvement", "new_measure_hold_harmless_eligible", "used_new_measures", "overall_rating",
]


def overall_ratings(
    measure_stars: pd.DataFrame, cai: pd.DataFrame, summary_ratings: pd.DataFrame, rules: RatingRules | None = None
) -> pd.DataFrame:
    """Each MA-PD contract's overall rating recomputed from the Measure Stars table, with its components.

    Rates every contract with stars in both Part C and Part D, under its star year's rules (or `rules`).
    CMS's minimum-measure counts depend on the contract type (e.g. CCP with only I-SNP), which the public
    tables do not carry, so whether CMS published an overall rating is read from the summary table, not
    decided here. `summary_ratings` supplies the disaster percentages; `cai` the final adjustment
    category and the Puerto Rico flag.
    """
    contract_keys = ["star_year", "contract_id"]
    contract_cai = cai.set_index(contract_keys)
    disasters = summary_ratings.set_index(contract_keys)
    records = []
    rated = measure_stars.dropna(subset=["stars"])
    for (star_year, contract_id), contract_stars in rated.groupby(contract_keys):
        stars = dict(zip(contract_stars["measure_id"], contract_stars["stars"].astype(int)))
        if {measure[0] for measure in stars} != {"C", "D"}:
            continue
        key = (star_year, contract_id)
        category = contract_cai["overall_fac"].get(key)
        disaster_pct_by_year = {
            star_year - 2: disasters["disaster_pct_measurement_year"].get(key, 0.0),
            star_year - 3: disasters["disaster_pct_prior_measurement_year"].get(key, 0.0),
        }
        result = summary_rating(
            stars, rules or rules_for(int(star_year)), category,
            puerto_rico_only=bool(contract_cai["puerto_rico_only"].get(key, False)),
            disaster_pct_by_year=disaster_pct_by_year,
        )
        records.append(
            {
                "star_year": int(star_year),
                "contract_id": contract_id,
                "measures_rated": result.with_improvement.measures,
                "cai_category": None if category is None or pd.isna(category) else int(category),
                "cai_value": result.cai,
                "weighted_mean_with_improvement": result.with_improvement.weighted_mean,
                "weighted_mean_without_improvement": result.without_improvement.weighted_mean,
                "variance_with_improvement": result.with_improvement.variance,
                "variance_without_improvement": result.without_improvement.variance,
                "reward_factor_with_improvement": result.with_improvement.reward_factor,
                "reward_factor_without_improvement": result.without_improvement.reward_factor,
                "unrounded_with_improvement": result.with_improvement.unrounded,
                "unrounded_without_improvement": result.without_improvement.unrounded,
                "rounded_with_improvement": result.with_improvement.rounded,
                "rounded_without_improvement": result.without_improvement.rounded,
                "used_improvement": result.used_improvement,
                "new_measure_hold_harmless_eligible": result.new_measure_hold_harmless_eligible,
                "used_new_measures": result.used_new_measures,
                "overall_rating": result.rating,
            }
        )
    table = pd.DataFrame.from_records(records, columns=OVERALL_RATING_COLUMNS)
    table["cai_category"] = table["cai_category"].astype("Int64")
    return table
