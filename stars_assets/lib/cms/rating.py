"""CMS Part C & D Star Ratings engine: measure stars, summary and overall ratings.

Implements the 2026 Technical Notes (sections "Summary and Overall Ratings: Weighting of Measures",
"Applying the Improvement Measure(s)", "Applying the Reward Factor", "Categorical Adjustment Index",
"Rounding Rules", and the disaster provisions for new measures). Every number that changes from year
to year lives in a `RatingRules` instance built by `rules_for(star_year)` from the measure crosswalk and the
published thresholds: a new star year is a block of crosswalk rows and its thresholds, not code.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Mapping
from decimal import ROUND_HALF_UP, Decimal

import numpy as np
import pandas as pd

from stars_assets.lib.cms import crosswalk
from stars_assets.lib.cms.tables import ALL_ORG_TYPES

# CMS computes summary ratings, means and variances "with at least six digits of precision" and
# publishes the reward-factor thresholds at six decimals; a threshold is itself some contract's value,
# so comparisons happen at that precision (a contract at the 65th percentile is "at or above" it).
RATING_PRECISION = 6
# Quality Bonus Payment: 4 stars or more.
QBP_RATING = 4.0


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


REWARD_MEAN_FILE = "reward_factor_mean_thresholds.csv"
REWARD_VARIANCE_FILE = "reward_factor_variance_thresholds.csv"
CAI_VALUES_FILE = "cai_overall_values.csv"
REWARD_FACTORS = {
    ("high", "low"): 0.4,
    ("high", "medium"): 0.3,
    ("relatively_high", "low"): 0.2,
    ("relatively_high", "medium"): 0.1,
}


def _published_reward_thresholds(star_year: int) -> dict[tuple[bool, bool], RewardThresholds]:
    """Tables 8 and 9 (overall column) of a star year, keyed by (with improvement, with new measures); empty when
    not published here. A year without new measures publishes one set per improvement choice (blank column)."""
    root = crosswalk.cms_reference_root()
    columns = ["Year", "Improvement", "New Measures", "Percentile", "Overall Rating"]
    means = pd.read_csv(root / REWARD_MEAN_FILE, usecols=columns, dtype={"New Measures": str}).query("Year == @star_year")
    variances = pd.read_csv(root / REWARD_VARIANCE_FILE, usecols=columns, dtype={"New Measures": str}).query("Year == @star_year")
    thresholds = {}
    for with_improvement in (True, False):
        for with_new in (True, False):

            def pick(table: pd.DataFrame, percentile: int, with_improvement=with_improvement, with_new=with_new) -> float:
                rows = table[
                    (table["Improvement"] == ("With" if with_improvement else "Without"))
                    & table["New Measures"].fillna("With" if with_new else "Without").eq("With" if with_new else "Without")
                    & (table["Percentile"] == percentile)
                ]
                return float(rows["Overall Rating"].iloc[0]) if len(rows) else math.nan

            values = (pick(means, 65), pick(means, 85), pick(variances, 30), pick(variances, 70))
            if not any(math.isnan(value) for value in values):
                thresholds[(with_improvement, with_new)] = RewardThresholds(*values)
    return thresholds


def _published_cai(star_year: int) -> dict[int, float]:
    values = pd.read_csv(crosswalk.cms_reference_root() / CAI_VALUES_FILE).query("star_year == @star_year")
    return dict(zip(values["final_adjustment_category"].astype(int), values["overall_cai"].astype(float)))


@functools.cache
def rules_for(star_year: int) -> RatingRules:
    """A star year's rules: measure weights and roles from the crosswalk, reward thresholds and CAI values from
    the published tables. Thresholds or CAI a year does not publish here stay empty (see
    `with_derived_reward_thresholds`; a contract's CAI then counts as 0)."""
    try:
        measures = crosswalk.year_measures(star_year)
    except KeyError as error:
        raise KeyError(f"no CMS rating rules for star year {star_year}: {error}") from None
    return RatingRules(
        star_year=star_year,
        weights={measure: float(weight) for measure, weight in measures["weight"].items()},
        improvement_measures=frozenset(measures.index[measures["improvement"]]),
        overall_duplicates=frozenset(measures.index[measures["overall_duplicate_of"].notna()]),
        puerto_rico_zero_weight=frozenset(measures.index[measures["puerto_rico_zero_weight"]]),
        new_measure_disaster_year={
            measure: int(year) for measure, year in measures["new_measure_disaster_year"].dropna().items()
        },
        reward_thresholds=_published_reward_thresholds(star_year),
        overall_cai=_published_cai(star_year),
        reward_factors=REWARD_FACTORS,
        disaster_affected_pct=25.0,
        improvement_hold_harmless_floor=4.0,
    )


# The rules a function applies when none are given: the newest star year whose rules reproduce CMS exactly.
DEFAULT_STAR_YEAR = 2026


def cai_value_range() -> tuple[float, float]:
    """Lowest and highest overall CAI value of any published year: the bounds for a year whose CAI is not published."""
    values = pd.read_csv(crosswalk.cms_reference_root() / CAI_VALUES_FILE)["overall_cai"]
    return float(values.min()), float(values.max())


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


def next_cut_point(measure_id: str, value: float, cut_points: pd.DataFrame, org_type: str = "MA-PD") -> NextCutPoint | None:
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
    mean: float,
    variance: float,
    rules: RatingRules | None = None,
    with_improvement: bool = True,
    with_new_measures: bool = True,
) -> float:
    """0.4 / 0.3 / 0.2 / 0.1 for high or relatively high means with low or medium variance, else 0.

    The thresholds depend on which measures the mean was computed over (Tables 8 and 9).
    """
    rules = rules or rules_for(DEFAULT_STAR_YEAR)
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


def cai_value(cai_category: int | None, rules: RatingRules | None = None) -> float:
    """Overall-rating CAI for a final adjustment category; 0 when the contract has none."""
    rules = rules or rules_for(DEFAULT_STAR_YEAR)
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
    stars: Mapping[str, float],
    weights: Mapping[str, float],
    rules: RatingRules,
    with_improvement: bool,
    with_new_measures: bool,
    cai: float,
) -> RatingVariant:
    included = {
        measure: star
        for measure, star in stars.items()
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
    rules: RatingRules | None = None,
    cai_category: int | None = None,
    puerto_rico_only: bool = False,
    disaster_pct_by_year: Mapping[int, float] | None = None,
) -> RatingResult:
    """Overall-style rating over whatever measure stars are given (the full set, or a projection on a subset).

    Applies the overall rating's weights, reward-factor thresholds and CAI, the improvement
    hold-harmless, and, for disaster-affected contracts, the new-measure hold-harmless.
    """
    rules = rules or rules_for(DEFAULT_STAR_YEAR)
    stars = {
        measure: float(star)
        for measure, star in stars_by_measure.items()
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
    "star_year",
    "contract_id",
    "measures_rated",
    "cai_category",
    "cai_value",
    "weighted_mean_with_improvement",
    "weighted_mean_without_improvement",
    "variance_with_improvement",
    "variance_without_improvement",
    "reward_factor_with_improvement",
    "reward_factor_without_improvement",
    "unrounded_with_improvement",
    "unrounded_without_improvement",
    "rounded_with_improvement",
    "rounded_without_improvement",
    "used_improvement",
    "new_measure_hold_harmless_eligible",
    "used_new_measures",
    "overall_rating",
]


def _overall_record(
    star_year: int,
    contract_id: str,
    stars: dict[str, int],
    rules: RatingRules,
    contract_cai: pd.DataFrame,
    disasters: pd.DataFrame,
) -> dict:
    key = (star_year, contract_id)
    category = contract_cai["overall_fac"].get(key) if "overall_fac" in contract_cai else None
    disaster_pct_by_year = {
        star_year - 2: disasters["disaster_pct_measurement_year"].get(key, 0.0),
        star_year - 3: disasters["disaster_pct_prior_measurement_year"].get(key, 0.0),
    }
    puerto_rico_only = contract_cai["puerto_rico_only"].get(key, False) if "puerto_rico_only" in contract_cai else False
    result = summary_rating(
        stars, rules, category, puerto_rico_only=bool(puerto_rico_only), disaster_pct_by_year=disaster_pct_by_year
    )
    return {
        "star_year": star_year,
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


def with_derived_reward_thresholds(rules: RatingRules, stars_by_contract: list[Mapping[str, float]]) -> RatingRules:
    """Rules whose reward-factor thresholds are the 65th/85th percentiles of the contracts' weighted means and the
    30th/70th of their variances (Attachment H), for a year whose thresholds are not published here (or a
    forecast year). Percentiles as SAS computes them by default (averaging at ties of the empirical CDF)."""
    thresholds = {}
    for with_improvement in (True, False):
        for with_new in (True, False):
            means, variances = [], []
            for stars in stars_by_contract:
                included = {
                    measure: float(star)
                    for measure, star in stars.items()
                    if measure not in rules.overall_duplicates
                    and rules.weights.get(measure, 0.0) > 0
                    and (with_improvement or measure not in rules.improvement_measures)
                    and (with_new or measure not in rules.new_measure_disaster_year)
                }
                if len(included) >= 2:
                    means.append(weighted_mean(included, rules.weights))
                    variances.append(weighted_variance(included, rules.weights))
            if not means:
                raise ValueError(f"no contracts to derive {rules.star_year} reward-factor thresholds from")
            mean_65, mean_85 = np.percentile(means, [65, 85], method="averaged_inverted_cdf")
            variance_30, variance_70 = np.percentile(variances, [30, 70], method="averaged_inverted_cdf")
            thresholds[(with_improvement, with_new)] = RewardThresholds(
                *(round(float(value), RATING_PRECISION) for value in (mean_65, mean_85, variance_30, variance_70))
            )
    return dataclasses.replace(rules, reward_thresholds=thresholds)


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
    published = set(
        summary_ratings.loc[summary_ratings["overall"].notna(), "contract_id"].astype(str)
        + "|"
        + summary_ratings.loc[summary_ratings["overall"].notna(), "star_year"].astype(str)
    )
    records = []
    rated = measure_stars.dropna(subset=["stars"])
    for star_year, year_stars in rated.groupby("star_year"):
        stars_by_contract = {
            contract_id: dict(zip(contract_stars["measure_id"], contract_stars["stars"].astype(int)))
            for contract_id, contract_stars in year_stars.groupby("contract_id")
        }
        stars_by_contract = {
            contract: stars for contract, stars in stars_by_contract.items() if {measure[0] for measure in stars} == {"C", "D"}
        }
        year_rules = rules or rules_for(int(star_year))
        if not year_rules.reward_thresholds:
            year_rules = with_derived_reward_thresholds(
                year_rules, [stars for contract, stars in stars_by_contract.items() if f"{contract}|{star_year}" in published]
            )
        for contract_id, stars in stars_by_contract.items():
            records.append(_overall_record(int(star_year), contract_id, stars, year_rules, contract_cai, disasters))
    table = pd.DataFrame.from_records(records, columns=OVERALL_RATING_COLUMNS)
    table["cai_category"] = table["cai_category"].astype("Int64")
    return table
