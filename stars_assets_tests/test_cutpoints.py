"""The cut-point engine on CMS's published scores: re-derives each year's cut points and measure stars."""

import numpy as np
import pandas as pd
import pytest

from stars_assets import settings
from stars_assets.lib.cms import backtest, crosswalk, cutpoints, tables


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
    free = cutpoints.year_cut_points(scores, specs, 2022, prior, {"m": 60.0})  # no guardrails before 2023
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
    # CAHPS stars go through the significance test (fitted on other years): above the 78-81% of base groups alone.
    cahps = table[table["measures"] == "cahps"].set_index("star_year")
    assert sorted(cahps.index) == history.years and (cahps["stars_reproduced"] > 0.8).all()


def test_engine_is_worse_with_the_measures_direction_reversed(history):
    year = history.scores[history.scores["star_year"] == 2026]
    specs = backtest.specs_for(history)[2026]
    reversed_specs = {
        key: cutpoints.MeasureSpec(key, not spec.higher_is_better, spec.method, spec.decimals, spec.percent_scale)
        for key, spec in specs.items()
    }
    published = history.thresholds[history.thresholds["star_year"] == 2026]
    right = backtest.threshold_comparison(cutpoints.year_cut_points(year, specs, 2026, fold_draws=1), published)
    wrong = backtest.threshold_comparison(cutpoints.year_cut_points(year, reversed_specs, 2026, fold_draws=1), published)
    assert (right["difference"].abs() <= 1).mean() > (wrong["difference"].abs() <= 1).mean() + 0.3


def test_a_single_surviving_score_is_the_five_star_cut_point_and_the_lower_levels_fall_to_the_guardrail():
    # Most scores at 99, a few far below: outlier deletion leaves one distinct score, so one cluster (5 stars).
    scores = pd.DataFrame({"measure_key": "m", "value": np.concatenate([np.full(200, 99.0), [60.0, 70.0, 80.0]])})
    specs = {"m": cutpoints.MeasureSpec("m", True, "clustering", 0, True)}
    assert cutpoints.cluster_cut_points(np.full(50, 99.0), higher_is_better=True)[-1] == 99.0
    unguarded = cutpoints.year_cut_points(scores, specs, 2026)
    assert list(unguarded["threshold"]) == [0.0, 0.0, 0.0, 99.0]
    prior = pd.DataFrame({"measure_key": "m", "stars": [2, 3, 4, 5], "threshold": [97.0, 98, 99, 100]})
    guarded = cutpoints.year_cut_points(scores, specs, 2026, prior, {"m": 10.0})
    assert list(guarded["threshold"]) == [92.0, 93.0, 94.0, 99.0]


def test_new_and_respecified_measures_skip_the_guardrails_for_three_years():
    scores = pd.DataFrame({"measure_key": "m", "value": np.repeat([40.0, 55, 70, 85, 95], 30)})
    prior = pd.DataFrame({"measure_key": "m", "stars": [2, 3, 4, 5], "threshold": [50.0, 60, 70, 80]})

    def thresholds(star_year: int, since: int | None) -> list[float]:
        specs = {"m": cutpoints.MeasureSpec("m", True, "clustering", 0, True, since)}
        return list(cutpoints.year_cut_points(scores, specs, star_year, prior, {"m": 60.0})["threshold"])

    free, capped = [55.0, 70.0, 85.0, 95.0], [55.0, 65.0, 75.0, 85.0]
    assert thresholds(2026, since=2024) == free  # third year in the ratings
    assert thresholds(2026, since=2023) == capped  # fourth year
    assert thresholds(2026, since=None) == capped


def test_the_sixty_percent_rule_leaves_affected_contracts_out_of_clustering_until_2025():
    scores = pd.DataFrame(
        {"contract_id": ["H1", "H2", "H1", "H2"], "measure_key": ["m", "m", "c", "c"], "value": [80.0, 70.0, 85.0, 84.0]}
    )
    specs = {
        "m": cutpoints.MeasureSpec("m", True, "clustering", 0, True),
        "c": cutpoints.MeasureSpec("c", True, "cahps", 0, True),
    }
    disaster_pct = pd.Series({"H1": 60.0, "H2": 59.0})
    kept_2025 = cutpoints.clustering_population(scores, disaster_pct, specs, 2025)
    assert sorted(zip(kept_2025["contract_id"], kept_2025["measure_key"])) == [("H1", "c"), ("H2", "c"), ("H2", "m")]
    assert len(cutpoints.clustering_population(scores, disaster_pct, specs, 2026)) == 4


def test_cms_cut_point_files_replace_the_compiled_thresholds(history):
    files = tables.cut_points(settings.cms_reference_dir(2026))
    files = crosswalk.with_measure_keys(
        files[(files["org_type"] != "PDP") & (files["stars"] >= 2)].drop(columns="higher_is_better")
    )
    files["threshold"] = files["lower"].where(files["higher_is_better"], files["upper"])
    joined = history.thresholds.merge(files, on=["star_year", "measure_key", "stars"], suffixes=("", "_file"))
    assert len(joined) == len(files)
    assert np.allclose(joined["threshold"], joined["threshold_file"])


def test_averaging_fold_partitions_steadies_the_cut_points_across_seeds():
    # Overlapping score groups: which contracts a fold leaves out moves the cluster edges.
    values = np.random.default_rng(7).normal(70, 8, 300).round()
    scores = pd.DataFrame({"measure_key": "m", "value": values})
    specs = {"m": cutpoints.MeasureSpec("m", True, "clustering", 2, False)}

    def spread(draws: int) -> float:
        runs = [cutpoints.year_cut_points(scores, specs, 2023, seed=seed, fold_draws=draws)["threshold"] for seed in range(6)]
        return float(pd.concat(runs, axis=1).std(axis=1).mean())

    assert spread(4) < spread(1)
