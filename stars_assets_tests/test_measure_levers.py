"""Measure-level levers on hand-made rates against the real 2026 cut points."""

import pandas as pd
import pytest

from stars_assets import settings
from stars_assets.lib.cms import tables
from stars_assets.lib.cms.levers import LEVER_COLUMN_NAMES, distance_to_earn, measure_levers, projected_summary
from stars_assets.lib.cms.rating import measure_star, round_half_star, rules_for
from stars_assets.lib.ordinal import prediction_quality as quality

RULES_2026 = rules_for(2026)


@pytest.fixture(scope="module")
def cut_points() -> pd.DataFrame:
    return tables.cut_points(settings.cms_reference_dir(2026))


def rates_of(cut_points: pd.DataFrame, contracts: dict[str, dict[str, float]]) -> pd.DataFrame:
    """gold.contract_measure_rates-shaped rows, stars projected with the 2026 cut points."""
    rows = [
        (contract_id, measure_id, measure_id, float(rate), measure_star(measure_id, rate, cut_points))
        for contract_id, measures in contracts.items()
        for measure_id, rate in measures.items()
    ]
    frame = pd.DataFrame(rows, columns=["contract_id", "measure_id", "measure_code", "rate", "projected_stars"])
    return frame.astype({"projected_stars": "Int64"})


# Stars: C01 3, C02 4, C11 3, C12 3, C14 3, C18 3, C20 3, D08 3, D09 3, D10 2, C22 4 and C26 at 5.
# Weights 1+1+1+3+3+3+1+3+3+3+2+2 = 26; weighted mean 82/26 = 3.1538 -> 3.0 (no reward factor below 3.65).
CONTRACT = {
    "C01": 75.2,
    "C02": 72,
    "C11": 79,
    "C12": 86,
    "C14": 78,
    "C18": 9.6,
    "C20": 60,
    "D08": 88.4,
    "D09": 90,
    "D10": 86,
    "C22": 83,
    "C26": 90,
}


@pytest.fixture(scope="module")
def levers(cut_points) -> pd.DataFrame:
    return measure_levers(rates_of(cut_points, {"H1001": CONTRACT}), cut_points, RULES_2026).set_index("measure_id")


def test_columns_and_one_row_per_measure_below_five_stars(levers):
    assert sorted(levers.reset_index().columns) == sorted(LEVER_COLUMN_NAMES[1:])  # as_of_week_end is the asset's
    assert "C26" not in levers.index  # 5 stars: no cut point left, no lever
    assert len(levers) == len(CONTRACT) - 1
    assert sorted(levers["lever_rank"]) == list(range(1, len(CONTRACT)))


def test_a_five_star_measure_still_counts_in_the_total_weight(levers):
    assert (levers["total_weight"] == 26).all()
    assert levers.loc["C12", "unrounded_gain"] == pytest.approx(3 / 26)
    assert levers.loc["C01", "unrounded_gain"] == pytest.approx(1 / 26)
    assert levers.loc["C22", "unrounded_gain"] == pytest.approx(2 / 26)


def test_weight_three_measure_just_below_its_4_star_cut_ranks_first(levers):
    # D08 at 88.4 is 0.6 below its 4-star cut (89); a weight-3 star lifts the mean by 3/26 = 0.115 across 3.25,
    # so the rounded summary goes 3.0 -> 3.5. C18 at 9.6 (rounds to 10, 3 stars) is also 0.6 from 9 with the same
    # gain: the tie on gain per unit is broken by measure id.
    first, second = levers.sort_values("lever_rank").index[:2]
    assert (first, second) == ("C18", "D08")
    d08 = levers.loc["D08"]
    assert (d08["current_stars"], d08["next_stars"], d08["threshold"]) == (3, 4, 89.0)
    assert d08["distance"] == pytest.approx(0.6)
    assert d08["rounded_gain"] == 0.5 and (d08["summary_before"], d08["summary_after"]) == (3.0, 3.5)
    assert d08["unrounded_gain_per_unit"] == pytest.approx(3 / 26 / 0.6)


def test_weight_one_measure_as_close_gains_no_half_star_and_ranks_below(levers):
    c01 = levers.loc["C01"]  # 75.2 -> 4 stars at 76: 0.8 away, but only 1/26 on the mean
    assert c01["distance"] == pytest.approx(0.8) and c01["rounded_gain"] == 0.0
    assert c01["summary_unrounded_after"] == pytest.approx(83 / 26)
    every_half_star = levers[levers["rounded_gain"] == 0.5]["lever_rank"]
    assert c01["lever_rank"] > every_half_star.max()


def test_ranking_rounded_gain_first_then_gain_per_unit_of_distance(levers):
    ranked = levers.sort_values("lever_rank")
    keys = list(zip(-ranked["rounded_gain"], -ranked["unrounded_gain_per_unit"], ranked.index))
    assert keys == sorted(keys)
    # C22 (weight 2, 1 point from 5 stars) needs no more score than C12 (weight 3, 1 point from 4 stars)
    # but gains less on the mean and no half star, so C12 ranks above it.
    assert levers.loc["C12", "lever_rank"] < levers.loc["C22", "lever_rank"]


def test_lower_is_better_readmissions_distance_is_how_far_the_rate_must_fall(levers, cut_points):
    c18 = levers.loc["C18"]
    assert not c18["higher_is_better"]
    assert (c18["current_stars"], c18["next_stars"], c18["threshold"], bool(c18["threshold_inclusive"])) == (3, 4, 9.0, True)
    assert c18["distance"] == pytest.approx(0.6)  # 9.6 -> 9.0
    assert c18["distance_to_earn"] == pytest.approx(0.1)  # below 9.5 the rate rounds to 9
    high = measure_levers(rates_of(cut_points, {"H1002": {"C18": 12.4, "C01": 80}}), cut_points, RULES_2026)
    row = high.set_index("measure_id").loc["C18"]
    assert (row["current_stars"], row["threshold"]) == (2, 10.0)  # 12.4 rounds to 12: 2 stars; 3 stars at <= 10
    assert row["distance"] == pytest.approx(2.4) and row["distance_to_earn"] == pytest.approx(1.9)


def test_distance_to_earn_uses_cms_half_up_rounding(levers):
    assert levers.loc["C01", "distance_to_earn"] == pytest.approx(0.3)  # 75.5 rounds to 76
    assert distance_to_earn(75.2, 76, True, True, 0) == pytest.approx(0.3)
    assert distance_to_earn(0.50, 0.32, True, False, 2) == pytest.approx(0.175)  # D02-style "<= 0.32", 2 decimals
    assert (levers["distance_to_earn"] <= levers["distance"]).all()
    assert (levers["distance_to_earn"] >= 0).all()


def test_half_star_jump_only_when_the_unrounded_summary_crosses_a_quarter_boundary(cut_points):
    contracts = {
        # mean 76/24 = 3.167: +3/24 -> 3.292 crosses 3.25 (3.0 -> 3.5); +1/24 -> 3.208 does not
        "H2001": {
            "C01": 75,
            "C02": 72,
            "C11": 81,
            "C12": 86,
            "C14": 78,
            "C18": 9.6,
            "C20": 60,
            "D08": 88,
            "D09": 90,
            "D10": 88,
            "C22": 83,
        },
        # mean 79/23 = 3.435 (3.5): even C12 from 1 to 2 stars (+3/23) stops at 3.565, short of 3.75
        "H2002": {
            "C01": 80,
            "C02": 75,
            "C11": 85,
            "C12": 50,
            "C14": 85,
            "C20": 75,
            "D08": 90,
            "D09": 92,
            "D10": 91,
            "C22": 83,
            "C23": 80,
        },
    }
    levers = measure_levers(rates_of(cut_points, contracts), cut_points, RULES_2026)
    assert len(levers) > 15
    for row in levers.itertuples():
        before, after = row.summary_unrounded_before, row.summary_unrounded_after
        crosses = any(before < boundary <= after + 1e-12 for boundary in (k / 2 + 0.25 for k in range(2, 10)))
        assert (row.rounded_gain > 0) == crosses, row
        assert row.rounded_gain == round_half_star(after) - round_half_star(before)
    h2001 = levers[levers["contract_id"] == "H2001"].set_index("measure_id")
    assert h2001.loc["C12", "rounded_gain"] == 0.5 and h2001.loc["C01", "rounded_gain"] == 0.0
    assert h2001.loc["C01", "summary_unrounded_after"] == pytest.approx(77 / 24)  # 3.208: still 3.0
    assert list(h2001["summary_unrounded_before"]) == pytest.approx([76 / 24] * len(h2001))
    assert (h2001["summary_before"] == 3.0).all()
    h2002 = levers[levers["contract_id"] == "H2002"].set_index("measure_id")
    assert (h2002["rounded_gain"] == 0).all() and h2002.loc["C12", "summary_unrounded_after"] == pytest.approx(82 / 23)


def test_a_higher_star_can_lower_the_rounded_summary_through_the_reward_factor_and_the_check_allows_it():
    stars = {
        "C01": 5,
        "C02": 2,
        "C11": 2,
        "C12": 5,
        "C14": 5,
        "C18": 2,
        "C20": 4,
        "D08": 4,
        "D09": 5,
        "D10": 5,
        "C22": 4,
        "C23": 3,
        "C24": 4,
        "C26": 4,
    }
    before = projected_summary(stars, RULES_2026)
    after = projected_summary({**stars, "C20": 5}, RULES_2026)
    assert after.weighted_mean > before.weighted_mean
    assert (before.reward_factor, after.reward_factor) == (0.3, 0.0)  # variance crosses the 70th percentile
    assert (before.rating, after.rating) == (4.5, 4.0)
    row = pd.DataFrame(
        [
            {
                "contract_id": "H3001",
                "measure_id": "C20",
                "unrounded_gain": 1 / 30,
                "rounded_gain": -0.5,
                "reward_factor_before": 0.3,
                "reward_factor_after": 0.0,
            }
        ]
    )
    verdict = quality.lever_gains_not_negative(row)
    assert verdict.passed and verdict.metadata["rounded_losses_from_reward_factor"] == 1
    assert not quality.lever_gains_not_negative(row.assign(reward_factor_after=0.3)).passed


def test_checks_on_the_lever_rows(levers):
    rows = levers.reset_index()
    assert quality.lever_distances_not_negative(rows).passed
    assert quality.lever_gains_not_negative(rows).passed
    assert quality.one_row_per_contract_and_measure(rows).passed
    assert not quality.lever_distances_not_negative(rows.assign(distance=-0.1)).passed
    assert not quality.one_row_per_contract_and_measure(pd.concat([rows, rows.head(1)])).passed


def test_projected_stars_that_disagree_with_the_cut_points_are_refused(cut_points):
    rates = rates_of(cut_points, {"H4001": {"C01": 75.2, "C12": 86}})
    rates.loc[0, "projected_stars"] = 4
    with pytest.raises(ValueError, match="different star years"):
        measure_levers(rates, cut_points, RULES_2026)


def test_no_rates_no_levers(cut_points):
    empty = rates_of(cut_points, {})
    levers = measure_levers(empty, cut_points, RULES_2026)
    assert levers.empty and list(levers.columns) == LEVER_COLUMN_NAMES[1:]
