"""The cut-point engine on CMS's published scores: re-derives each year's cut points and measure stars."""

import numpy as np
import pandas as pd
import pytest

from stars_assets.lib.cms import backtest, cutpoints


@pytest.fixture(scope="session")
def history(cms_history) -> backtest.History:
    return cms_history


@pytest.fixture(scope="session")
def engine_backtest(history):
    return backtest.engine_backtest(history)


def test_ward_clustering_finds_separated_groups():
    values = np.concatenate([np.full(20, 50.0), np.full(20, 60.0), np.full(20, 70.0), np.full(20, 80.0), np.full(20, 90.0)])
    assert cutpoints.cluster_cut_points(values, higher_is_better=True) == [60.0, 70.0, 80.0, 90.0]
    # Lower is better: the best cluster is the lowest, and a cut point is its cluster's highest score.
    assert cutpoints.cluster_cut_points(values, higher_is_better=False) == [80.0, 70.0, 60.0, 50.0]


def test_tukey_outer_fences_drop_only_far_outliers():
    values = np.array([70.0, 71, 72, 73, 74, 75, 76, 77, 78, 79, 5])
    low, high = cutpoints.tukey_outer_fences(values, percent_scale=True)
    assert 5 < low < 70 and 79 < high < 100
    # On a 0-100 scale the fences stop at the scale's ends.
    assert cutpoints.tukey_outer_fences(np.array([10.0, 50, 90, 95]), percent_scale=True) == (0.0, 100.0)


def test_guardrails_cap_the_move_from_last_year():
    scores = pd.DataFrame({"measure_key": "m", "value": np.repeat([40.0, 55, 70, 85, 95], 30)})
    specs = {"m": cutpoints.MeasureSpec("m", True, "clustering", 0, True)}
    prior = pd.DataFrame({"measure_key": "m", "stars": [2, 3, 4, 5], "threshold": [50.0, 60, 70, 80]})
    capped = cutpoints.year_cut_points(scores, specs, 2026, prior, {"m": 60.0})
    free = cutpoints.year_cut_points(scores, specs, 2023, prior, {"m": 60.0})  # no guardrails before 2024
    assert list(free["threshold"]) == [55.0, 70.0, 85.0, 95.0]
    assert list(capped["threshold"]) == [55.0, 65.0, 75.0, 85.0]


def test_stars_from_thresholds_in_both_directions():
    thresholds = {2: 50.0, 3: 60.0, 4: 70.0, 5: 80.0}
    values = pd.Series([49.0, 50.0, 79.0, 80.0, np.nan])
    assert list(cutpoints.stars_from_thresholds(values, thresholds, True).fillna(0)) == [1, 2, 4, 5, 0]
    lower = {2: 12.0, 3: 10.0, 4: 9.0, 5: 7.0}
    assert list(cutpoints.stars_from_thresholds(pd.Series([13.0, 12.0, 7.5, 7.0]), lower, False)) == [1, 2, 4, 5]


def test_engine_backtest_reproduces_most_published_cut_points_and_stars(engine_backtest, history):
    table, detail = engine_backtest
    print("\n" + table.to_string(index=False))
    assert sorted(table["star_year"].unique()) == history.years
    overall = table[table["measures"] == "all"].set_index("star_year")
    # Sane bounds a broken engine would fail: most thresholds within a point, most measure stars reproduced.
    assert (overall["thresholds"] > 100).all()
    assert (overall["within_1_point"] > 0.6).all()
    assert (overall["stars_reproduced"] > 0.8).all()
    # The engine cannot beat the published thresholds at reproducing the published stars.
    assert (overall["stars_reproduced"] <= overall["stars_from_published_thresholds"] + 1e-9).all()
    assert detail["difference"].abs().median() <= 1


def test_engine_is_worse_with_the_measures_direction_reversed(history):
    year = history.scores[history.scores["star_year"] == 2026]
    specs = backtest.specs_for(history)[2026]
    reversed_specs = {
        key: cutpoints.MeasureSpec(key, not spec.higher_is_better, spec.method, spec.decimals, spec.percent_scale)
        for key, spec in specs.items()
    }
    published = history.thresholds[history.thresholds["star_year"] == 2026]
    right = backtest.threshold_comparison(cutpoints.year_cut_points(year, specs, 2026), published)
    wrong = backtest.threshold_comparison(cutpoints.year_cut_points(year, reversed_specs, 2026), published)
    assert (right["difference"].abs() <= 1).mean() > (wrong["difference"].abs() <= 1).mean() + 0.3
