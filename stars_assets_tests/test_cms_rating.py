"""The CMS 2026 rating engine: hand-worked cases for each rule, then the reproduction of the published
2026 overall ratings."""

import dataclasses
import math

import pandas as pd
import pytest

from stars_assets import settings
from stars_assets.lib.cms import rating, reproduction, tables
from stars_assets.lib.cms.rating import rules_for

RULES_2026 = rules_for(2026)

YEAR_DIR = settings.cms_reference_dir(2026)
PROCESS_MEASURES = ["C01", "C02", "C03", "C06", "C10", "C11", "C15", "C16", "C17", "C19"]


@pytest.fixture(scope="module")
def cms_2026() -> dict[str, pd.DataFrame]:
    return {
        "measure_scores": tables.measure_scores(YEAR_DIR),
        "measure_stars": tables.measure_stars(YEAR_DIR),
        "summary_ratings": tables.summary_ratings(YEAR_DIR),
        "cut_points": tables.cut_points(YEAR_DIR),
        "cai": tables.cai(YEAR_DIR),
    }


@pytest.fixture(scope="module")
def cut_points(cms_2026) -> pd.DataFrame:
    return cms_2026["cut_points"]


# --- rounding ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "unrounded, rounded",
    [
        (3.75, 4.0),
        (3.7499, 3.5),
        (3.749999, 3.5),
        (3.25, 3.5),
        (3.2499, 3.0),
        (4.0, 4.0),
        (4.24, 4.0),
        (1.25, 1.5),
        (3.7499999999999996, 4.0),  # 3.75 carrying float error still rounds up
    ],
)
def test_round_half_star(unrounded, rounded):
    assert rating.round_half_star(unrounded) == rounded


def test_round_half_up_for_measure_scores():
    assert rating.round_half_up(83.5, 0) == 84
    assert rating.round_half_up(83.49, 0) == 83
    assert rating.round_half_up(0.125, 2) == 0.13  # not banker's rounding, not float drift


# --- weights ------------------------------------------------------------------------------------


def test_2026_weights():
    weights = RULES_2026.weights
    assert len(weights) == 45
    assert {measure: weights[measure] for measure in ["C30", "D04"]} == {"C30": 5, "D04": 5}
    assert {measure for measure, weight in weights.items() if weight == 3} == {"C12", "C14", "C18", "D08", "D09", "D10"}
    assert weights["C04"] == weights["C05"] == weights["C13"] == 1
    assert weights["C22"] == weights["C33"] == weights["D02"] == weights["D06"] == 2
    assert RULES_2026.overall_duplicates == {"D02", "D03"}


def test_duplicated_part_d_measures_count_once():
    base = {"C01": 4, "C02": 3, "C28": 5}
    assert rating.summary_rating(base | {"D02": 1, "D03": 1}) == rating.summary_rating(base)


def test_puerto_rico_contracts_weigh_adherence_zero():
    stars = {"C01": 4, "C02": 4, "D08": 1, "D09": 1, "D10": 1}
    result = rating.summary_rating(stars, puerto_rico_only=True)
    assert result.with_improvement.measures == 2
    assert result.with_improvement.weighted_mean == 4.0


# --- weighted mean and variance --------------------------------------------------------------------


def test_weighted_mean_and_variance_by_hand():
    stars = {"C01": 5, "C12": 3}  # weights 1 and 3
    assert rating.weighted_mean(stars, RULES_2026.weights) == pytest.approx(3.5)
    # n * sum(w (x - mean)^2) / (W (n - 1)) = 2 * (1 * 2.25 + 3 * 0.25) / (4 * 1)
    assert rating.weighted_variance(stars, RULES_2026.weights) == pytest.approx(1.5)
    assert math.isnan(rating.weighted_variance({"C01": 5}, RULES_2026.weights))


# --- reward factor --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "mean, variance, factor",
    [
        (4.00, 0.50, 0.4),  # high mean, low variance
        (4.00, 1.00, 0.3),  # high mean, medium variance
        (4.00, 1.30, 0.0),  # high mean, high variance
        (3.70, 0.50, 0.2),  # relatively high mean, low variance
        (3.70, 1.00, 0.1),  # relatively high mean, medium variance
        (3.70, 1.30, 0.0),  # relatively high mean, high variance
        (3.60, 0.50, 0.0),  # mean below the 65th percentile
        (3.60, 1.00, 0.0),
        (3.932432, 0.914850, 0.3),  # at the 85th mean and 30th variance percentiles: high, medium
        (281 / 77, 0.5, 0.2),  # 3.6493506..., the contract at the 65th percentile (3.649351)
        (4.00, math.nan, 0.0),  # a single measure has no variance
    ],
)
def test_reward_factor_cells_with_improvement(mean, variance, factor):
    assert rating.reward_factor(mean, variance, RULES_2026) == factor


def test_reward_factor_thresholds_depend_on_the_measures_included():
    # 3.94 is above the with-improvement 85th percentile (3.932432) but below the without one (3.953125).
    assert rating.reward_factor(3.94, 0.5, RULES_2026, with_improvement=True) == 0.4
    assert rating.reward_factor(3.94, 0.5, RULES_2026, with_improvement=False) == 0.2
    # Without new measures the with-improvement 85th percentile is 3.943662.
    assert rating.reward_factor(3.94, 0.5, RULES_2026, with_new_measures=False) == 0.2


# --- CAI -------------------------------------------------------------------------------------------


def test_cai_values_by_category():
    assert [rating.cai_value(category) for category in range(1, 10)] == [
        -0.063262,
        -0.040422,
        -0.017803,
        0.003256,
        0.018790,
        0.045683,
        0.058145,
        0.101257,
        0.145515,
    ]
    assert rating.cai_value(None) == 0.0
    assert rating.cai_value(pd.NA) == 0.0


@pytest.mark.parametrize("category, expected", [(None, 3.0), (1, 3.0), (6, 3.0), (7, 3.5), (9, 3.5)])
def test_cai_is_added_before_rounding(category, expected):
    # Weighted mean 3.2 with low variance but a low mean: no reward factor. CAI 6 gives 3.245683
    # (rounds down), CAI 7 gives 3.258145 (rounds up).
    stars = dict(zip(PROCESS_MEASURES[:5], [3, 3, 3, 3, 4]))
    result = rating.summary_rating(stars, cai_category=category)
    assert result.with_improvement.weighted_mean == pytest.approx(3.2)
    assert result.with_improvement.reward_factor == 0.0
    assert result.rating == expected


# --- measure stars from cut points ---------------------------------------------------------------


@pytest.mark.parametrize(
    "measure_id, value, org_type, stars",
    [
        ("C01", 57.49, "MA-PD", 1),
        ("C01", 57.5, "MA-PD", 2),  # CMS rounds the score to the cut points' precision first
        ("C01", 58, "MA-PD", 2),
        ("C01", 75.5, "MA-PD", 4),
        ("C01", 84, "MA-PD", 5),
        ("C18", 7, "MA-PD", 5),  # lower is better: "<= 7 %"
        ("C18", 7.4, "MA-PD", 5),
        ("C18", 7.5, "MA-PD", 4),  # rounds to 8: "> 7 % to <= 9 %"
        ("C18", 9, "MA-PD", 4),
        ("C18", 10, "MA-PD", 3),
        ("C18", 12, "MA-PD", 2),
        ("C18", 13, "MA-PD", 1),
        ("C33", 100, "MA-PD", 5),  # the bare "100%" band
        ("C33", 99, "MA-PD", 4),
        ("D02", 0.11, "MA-PD", 5),
        ("D02", 0.11, "PDP", 3),  # Part D cut points differ by org type
        ("D04", -0.233766, "MA-PD", 2),
        ("D04", -0.233767, "MA-PD", 1),
    ],
)
def test_measure_star(cut_points, measure_id, value, org_type, stars):
    assert rating.measure_star(measure_id, value, cut_points, org_type) == stars


def test_measure_star_without_a_score(cut_points):
    assert rating.measure_star("C01", math.nan, cut_points) is None
    with pytest.raises(ValueError):
        rating.measure_star("C99", 50, cut_points)


def test_measure_star_matches_published_stars_for_cut_point_measures(cms_2026, cut_points):
    """Every cut-point score of a contract untouched by disaster rules gets CMS's published star.

    CAHPS measures (C03, C22-C27, D05, D06) are left out: their stars also depend on significance tests.
    """
    scores = (
        cms_2026["measure_scores"]
        .merge(cms_2026["measure_stars"][["contract_id", "measure_id", "stars"]], on=["contract_id", "measure_id"])
        .merge(cms_2026["summary_ratings"], on="contract_id")
    )
    sample = scores[
        scores["measure_id"].isin(["C01", "C12", "C18", "C28", "D02", "D08", "D11"])
        & scores["value"].notna()
        & (scores["disaster_pct_measurement_year"] < 25)
    ]
    org_types = sample["organization_type"].str.contains("PDP").map({True: "PDP", False: "MA-PD"})
    computed = [
        rating.measure_star(measure, value, cut_points, org_type)
        for measure, value, org_type in zip(sample["measure_id"], sample["value"], org_types)
    ]
    assert len(sample) > 2500
    assert (pd.Series(computed, index=sample.index) == sample["stars"]).all()


def test_next_cut_point_higher_is_better(cut_points):
    lever = rating.next_cut_point("C01", 74, cut_points)
    assert (lever.current_stars, lever.next_stars, lever.threshold, lever.distance) == (3, 4, 76, 2)
    assert lever.threshold_inclusive and lever.higher_is_better


def test_next_cut_point_lower_is_better(cut_points):
    lever = rating.next_cut_point("C18", 10, cut_points)
    assert (lever.current_stars, lever.next_stars, lever.threshold, lever.distance) == (3, 4, 9, 1)
    assert lever.threshold_inclusive and not lever.higher_is_better


def test_next_cut_point_at_five_stars_or_without_score(cut_points):
    assert rating.next_cut_point("C01", 90, cut_points) is None
    assert rating.next_cut_point("C01", math.nan, cut_points) is None


# --- hold-harmless rules ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "with_improvement, without_improvement, expected",
    [
        (3.5, 4.0, (4.0, False)),  # without >= 4 and improvement lowers it: without stands
        (4.0, 4.5, (4.5, False)),
        (4.5, 4.0, (4.5, True)),  # improvement helps: used
        (4.0, 4.0, (4.0, True)),
        (3.0, 3.5, (3.0, True)),  # without < 4: no hold-harmless
    ],
)
def test_improvement_hold_harmless(with_improvement, without_improvement, expected):
    assert rating.improvement_hold_harmless(with_improvement, without_improvement) == expected


def test_summary_rating_keeps_the_rating_without_improvement_at_four_or_more():
    # Ten process measures at 4 stars: 4.0 mean, no variance, +0.4 -> 4.5 without improvement.
    # C30 at 1 star (weight 5) pulls the mean to 3.0 with improvement.
    stars = dict.fromkeys(PROCESS_MEASURES, 4) | {"C30": 1}
    result = rating.summary_rating(stars)
    assert result.without_improvement.rounded == 4.5
    assert result.with_improvement.rounded == 3.0
    assert (result.rating, result.used_improvement) == (4.5, False)


def test_summary_rating_uses_improvement_below_four():
    stars = dict.fromkeys(PROCESS_MEASURES, 3) | {"C30": 1}
    result = rating.summary_rating(stars)
    assert (result.without_improvement.rounded, result.with_improvement.rounded) == (3.0, 2.5)
    assert (result.rating, result.used_improvement) == (2.5, True)


def test_rating_is_capped_at_five_stars():
    # Mean 5 with no variance plus the 0.4 reward factor would be 5.5.
    assert rating.summary_rating(dict.fromkeys(PROCESS_MEASURES, 5)).rating == 5.0


@pytest.mark.parametrize(
    "new_measures, disaster_pct_by_year, expected",
    [
        ({"C13": 1}, {2024: 30.0}, (4.5, False)),  # HEDIS measure, 2024 disaster: new measures dropped
        ({"C13": 1}, {2023: 30.0}, (4.0, True)),  # HEDIS measures follow 2024 disasters only
        ({"C13": 1}, {2024: 24.0}, (4.0, True)),  # under 25% is not affected
        ({"C13": 1, "C04": 1}, {2023: 30.0}, (4.5, False)),  # with an HOS measure, 2023 counts
        ({"C13": 1}, {}, (4.0, True)),
    ],
)
def test_new_measure_hold_harmless_for_disaster_affected_contracts(new_measures, disaster_pct_by_year, expected):
    stars = dict.fromkeys(PROCESS_MEASURES, 4) | new_measures
    result = rating.summary_rating(stars, disaster_pct_by_year=disaster_pct_by_year)
    assert (result.rating, result.used_new_measures) == expected


def test_summary_rating_on_a_subset_of_measures():
    """A projection over the measures a plan can compute itself."""
    stars = {"C01": 4, "C02": 5, "C11": 3, "C12": 4, "C14": 4, "C18": 3, "D08": 4, "D09": 5, "D10": 4}
    result = rating.summary_rating(stars, cai_category=5)
    # weighted mean = (4 + 5 + 3 + 12 + 12 + 9 + 12 + 15 + 12) / 21 = 84 / 21 = 4.0
    assert result.with_improvement.weighted_mean == pytest.approx(4.0)
    assert result.rating == rating.round_half_star(4.0 + result.with_improvement.reward_factor + 0.018790)


def test_rules_are_year_keyed():
    assert rating.rules_for(2026) is RULES_2026
    with pytest.raises(KeyError, match="measure_crosswalk"):
        rating.rules_for(1999)


# --- reproduction of the published 2026 ratings ---------------------------------------------------------


@pytest.fixture(scope="module")
def recomputed(cms_2026) -> pd.DataFrame:
    return rating.overall_ratings(cms_2026["measure_stars"], cms_2026["cai"], cms_2026["summary_ratings"])


def test_reproduces_published_2026_overall_ratings(cms_2026, recomputed):
    report = reproduction.compare_overall_ratings(recomputed, cms_2026["summary_ratings"])
    print(f"reproduced {report.matches} of {report.total} published 2026 overall ratings exactly")
    assert report.total == 516
    assert report.match_rate >= reproduction.REQUIRED_MATCH_RATE
    assert report.passed()
    # All 516 today; a drop below means a rule regressed.
    assert report.matches == 516, report.mismatches.to_string()


def test_each_documented_rule_is_needed_for_the_reproduction(cms_2026):
    """Switching off a rule STARS.md leaves out (or gets wrong) costs matches, so each one is real."""
    variants = {
        "D02/D03 counted twice": dataclasses.replace(RULES_2026, overall_duplicates=frozenset()),
        "no Puerto Rico adherence rule": dataclasses.replace(RULES_2026, puerto_rico_zero_weight=frozenset()),
        "no new-measure hold-harmless": dataclasses.replace(RULES_2026, disaster_affected_pct=math.inf),
    }
    for name, rules in variants.items():
        recomputed = rating.overall_ratings(cms_2026["measure_stars"], cms_2026["cai"], cms_2026["summary_ratings"], rules)
        report = reproduction.compare_overall_ratings(recomputed, cms_2026["summary_ratings"])
        assert report.matches < 516, name


def test_recomputation_reports_every_component(recomputed):
    assert list(recomputed.columns) == rating.OVERALL_RATING_COLUMNS
    assert recomputed["contract_id"].is_unique
    assert recomputed["overall_rating"].between(1, 5).all()
    assert set(recomputed["reward_factor_with_improvement"]) <= {0.0, 0.1, 0.2, 0.3, 0.4}
    assert (~recomputed["used_improvement"]).sum() > 0  # the hold-harmless fires on real contracts
