"""CAHPS measure stars on CMS's published tables: base groups from rounded percentiles and the significance test
against the national mean, with the percentile shift and the margins fitted only on other years."""

import numpy as np
import pandas as pd
import pytest

from stars_assets.lib.cms import backtest, cahps, cutpoints


@pytest.fixture(scope="session")
def cahps_specs(cms_history):
    return {
        year: {key: spec for key, spec in year_specs.items() if spec.method == "cahps"}
        for year, year_specs in backtest.specs_for(cms_history).items()
    }


@pytest.fixture(scope="session")
def models(cms_history, cahps_specs):
    return backtest.cahps_models(cms_history, cahps_specs)


@pytest.fixture(scope="session")
def cahps_table(cms_history):
    return backtest.cahps_backtest(cms_history)


def test_derounded_scores_stay_within_their_rounding_interval():
    spread = cahps.derounded(np.array([81.0, 80.0, 80.0, 80.0, 79.0]))
    assert list(np.round(spread)) == [79.0, 80.0, 80.0, 80.0, 81.0]
    assert (np.diff(spread) > 0).all() and spread[1] > 79.5 and spread[3] < 80.5


def test_significance_moves_base_groups_only_in_the_documented_directions():
    # Ten contracts around a mean of 80; margins of 2 points below and above.
    scored = pd.DataFrame(
        {
            "star_year": 2026,
            "measure_key": "m",
            "value": [70.0, 79.0, 76.0, 79.0, 80.0, 83.0, 81.0, 81.0, 90.0, 81.0],
            "base": [1, 1, 2, 3, 3, 3, 4, 5, 5, 5],
        }
    )
    assert scored["value"].mean() == 80.0
    margins = pd.DataFrame({"measure_key": ["m"], "margin_below": [2.0], "margin_above": [2.0]})
    stars = cahps.significance_stars(scored, margins)
    # 1 stays 1 only when significantly below; 3 goes down or up only when significant; 5 stays 5 only when
    # significantly above; 2 and 4 stay.
    assert list(stars) == [1, 2, 2, 3, 3, 4, 4, 4, 5, 4]
    unknown = cahps.significance_stars(scored.assign(measure_key="other"), margins)
    assert list(unknown) == list(scored["base"])


def test_significance_on_the_published_tables_keeps_cms_directions(cms_history, cahps_specs, models):
    year = 2026
    scores = cms_history.scores[cms_history.scores["star_year"] == year]
    published = cms_history.thresholds[cms_history.thresholds["star_year"] == year]
    base = cutpoints.assign_stars(scores[scores["measure_key"].isin(cahps_specs[year])], published, cahps_specs[year])
    final = backtest.with_cahps_significance(base, cahps_specs[year], models[year])
    moves = pd.crosstab(base["stars"], final["stars"])
    print("\n2026 CAHPS base group (rows) -> final stars (columns)\n" + moves.to_string())
    allowed = {1: {1, 2}, 2: {2}, 3: {2, 3, 4}, 4: {4}, 5: {4, 5}}
    for base_group, row in moves.iterrows():
        assert set(row[row > 0].index) <= allowed[int(base_group)]
    # The test moves many contracts, and base groups 1 and 5 keep most of theirs (far from the mean).
    assert (base["stars"] != final["stars"]).sum() > 300
    assert moves.loc[1, 1] > moves.loc[1].sum() / 2 and moves.loc[5, 5] > moves.loc[5].sum() / 2


def test_model_is_fitted_only_on_other_years(cms_history, cahps_specs, models):
    assert sorted(models) == cms_history.years
    for year, model in models.items():
        assert model.fitted_on == tuple(other for other in cms_history.years if other != year)
        assert (model.margins[["margin_below", "margin_above"]] > 0).all().all()
        assert len(model.margins) == len(cahps_specs[year])
        assert -1 <= model.percentile_shift <= 0
    # Scrambling 2026's published stars leaves 2026's own model alone and changes the models fitted on 2026.
    stars = cms_history.stars.copy()
    in_2026 = stars["star_year"] == 2026
    stars.loc[in_2026, "stars"] = np.random.default_rng(0).permutation(stars.loc[in_2026, "stars"].to_numpy())
    history = backtest.History(cms_history.scores, stars, cms_history.summary, cms_history.cai, cms_history.thresholds)
    scrambled = backtest.cahps_models(history, cahps_specs)
    pd.testing.assert_frame_equal(scrambled[2026].margins, models[2026].margins)
    assert not scrambled[2025].margins.equals(models[2025].margins)


def test_shift_and_significance_reproduce_more_cahps_cut_points_and_stars(cahps_table):
    print("\n" + cahps_table.to_string(index=False))
    table = cahps_table.set_index("star_year")
    assert list(table.index) == [2023, 2024, 2025, 2026]
    # Out of sample in every year: the shift reproduces at least as many published CAHPS cut points, and the
    # significance test more published stars, from the engine's and from CMS's own cut points.
    assert (table["exact_shifted"] >= table["exact_percentiles"]).all()
    assert table["exact_shifted"].mean() > table["exact_percentiles"].mean()
    assert (table["stars_shifted_significance"] > table["stars_percentiles"]).all()
    assert (table["stars_published_significance"] > table["stars_published"]).all()
    assert (table["stars_shifted_significance"] <= table["stars_published_significance"]).all()
