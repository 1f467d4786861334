"""The outlook's back-tests on CMS's published tables: the cut-point forecast against carry-forward, the
year-ahead projection against persistence on the held-out pair 2025 -> 2026, and the stars-backtest command."""

import pandas as pd
import pytest

from stars_assets.cli import backtest as backtest_cli
from stars_assets.lib.cms import forecast
from stars_assets.lib.cms.outlook_backtest import HELD_OUT_BASE_YEAR, run_backtests
from stars_assets.lib.ordinal import year_ahead

# One pair keeps the test short; stars-backtest runs all four (one and two years ahead).
TEST_PAIRS = ((2025, 2026),)


@pytest.fixture(scope="session")
def report(cms_history):
    return run_backtests(cms_history, forecast_pairs=TEST_PAIRS, bootstrap_draws=200)


def test_forecast_backtest_runs_and_the_shipped_method_wins(report):
    table = report.forecast
    print("\n" + table.to_string(index=False))
    assert set(table["method"]) == {forecast.CARRY_FORWARD, forecast.SCORE_FORECAST}
    assert set(zip(table["base_year"], table["target_year"])) == set(TEST_PAIRS)
    assert (table["thresholds"] > 100).all() and (table["contracts"] > 400).all()
    assert table["mae_per_threshold"].between(0.1, 10).all()
    assert table["rating_bias"].abs().lt(1).all()
    # The README and the product say which method ships: it must be the one the back-test prefers.
    assert report.forecast_winner == forecast.SHIPPED_METHOD


def test_carry_forward_is_the_base_years_cut_points(cms_history):
    carried = forecast.forecast_cut_points(cms_history, 2025, 2026, forecast.CARRY_FORWARD)
    published_2025 = cms_history.thresholds[cms_history.thresholds["star_year"] == 2025]
    assert (carried["star_year"] == 2026).all()
    assert list(carried["threshold"]) == list(published_2025["threshold"])


def test_score_forecast_moves_cut_points_within_the_guardrails(cms_history):
    base = cms_history.thresholds[cms_history.thresholds["star_year"] == 2026].set_index(["measure_key", "stars"])["threshold"]
    forecast_2028 = forecast.forecast_cut_points(cms_history, 2026, 2028).set_index(["measure_key", "stars"])["threshold"]
    moved = (forecast_2028 - base.reindex(forecast_2028.index)).dropna()
    assert (moved != 0).any()
    assert moved.abs().max() <= 2 * 5 + 1e-9  # two years of at most 5 points each


def test_year_ahead_projection_is_evaluated_on_the_held_out_pair(report, cms_history):
    table = report.year_ahead.set_index("method")
    print("\n" + report.year_ahead.to_string(index=False), "\n", report.year_ahead_gain)
    assert set(table.index) == {"ordinal_model", "persistence", "rules_carried_forward"}
    assert (table["contracts"] > 400).all()
    assert table.loc["ordinal_model", "within_half_star"] > 0.8
    assert table.loc["ordinal_model", "exact"] > 0.3
    gain = report.year_ahead_gain
    assert str(HELD_OUT_BASE_YEAR) not in gain["train_pairs"].split("->")[0].split(", ")
    assert gain["ci_low"] <= gain["gain_exact_points"] <= gain["ci_high"]
    # Last year's rise falls back: the coefficient on last year's change is negative.
    assert report.year_ahead_params["last_change"] < 0


def test_year_ahead_model_takes_plain_frames(cms_history):
    pairs = year_ahead.year_pairs(cms_history, [2024])
    assert set(year_ahead.INPUTS) <= set(pairs.columns) and pairs["next_rating"].notna().all()
    model = year_ahead.fit_year_ahead(pairs)
    probabilities = model.probabilities(pairs.head(5))
    assert probabilities.sum(axis=1).round(6).eq(1).all()


def test_stars_backtest_prints_every_table(report, monkeypatch, capsys):
    monkeypatch.setattr(backtest_cli, "run_backtests", lambda **_: report)
    assert backtest_cli.main(["--markdown", "--draws", "10"]) == 0
    printed = capsys.readouterr().out
    for title in report.tables():
        assert title in printed
    assert "star_year |" in printed and "ordinal_model" in printed


def test_p_four_plus_follows_the_cut_point_error(cms_history):
    from stars_assets import settings
    from stars_assets.lib.cms import rating, tables
    from stars_assets.lib.gold.contract_rates import p_four_plus, project_measure_stars, project_summaries

    bands = forecast.projection_cut_points(cms_history, tables.cut_points(settings.cms_reference_dir(2026)), 2028)
    rules = rating.rules_for(2026)
    contract = {"C01": 84, "C02": 79, "C11": 86, "C12": 91, "C14": 86, "C20": 79, "C18": 7, "D08": 92, "D09": 93, "D10": 93}
    counts = pd.DataFrame(
        [("H9999", m, m, "test", r, 100.0, float(r)) for m, r in contract.items()],
        columns=["contract_id", "measure_id", "measure_code", "source", "numerator", "denominator", "rate"],
    )
    rates = project_measure_stars(counts, bands, rules)
    summary = project_summaries(rates, rules, bands, 0.0, 1e-9).set_index("contract_id")
    assert summary.loc["H9999", "projected_summary"] >= 4
    # No error: the projection itself decides; cut points far harder than forecast: the plan falls below 4.
    assert summary.loc["H9999", "p_four_plus_cut_points"] == 1.0
    assert p_four_plus(rates, bands, rules, error_mean=15.0, error_sd=1.0, draws=50).loc["H9999"] == 0.0
    uncertain = p_four_plus(rates, bands, rules, error_mean=3.0, error_sd=4.0, draws=100).loc["H9999"]
    assert 0.0 <= uncertain <= 1.0
