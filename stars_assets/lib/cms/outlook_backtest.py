"""Every back-test over CMS's published history in one place, as tables: the per-year reproduction of overall
ratings, the cut-point engine (and its CAHPS steps), the cut-point forecast against carry-forward, and the
year-ahead projection."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from stars_assets.lib.cms import backtest, forecast, rating, reproduction
from stars_assets.lib.ordinal import year_ahead

HELD_OUT_BASE_YEAR = 2025  # 2025 data -> 2026 rating, never seen in training


@dataclass(frozen=True)
class BacktestReport:
    reproduction: pd.DataFrame
    engine: pd.DataFrame
    cahps: pd.DataFrame
    forecast: pd.DataFrame
    forecast_winner: str
    year_ahead: pd.DataFrame
    year_ahead_gain: dict
    year_ahead_params: pd.Series

    def tables(self) -> dict[str, pd.DataFrame]:
        gain = pd.DataFrame([self.year_ahead_gain])
        return {
            "Reproduction of published overall ratings, per star year": self.reproduction,
            "Cut-point engine: each year's cut points re-derived from that year's scores": self.engine,
            "CAHPS measures: percentile cut points and the significance test, fitted on the other years": self.cahps,
            f"Cut-point forecast vs carry-forward (shipped: {self.forecast_winner})": self.forecast,
            f"Year-ahead projection, held-out pair {HELD_OUT_BASE_YEAR} -> {HELD_OUT_BASE_YEAR + 1}": self.year_ahead,
            "Year-ahead model: exact-match gain over persistence (points, bootstrap 95% interval)": gain,
        }


def reproduction_table(history: backtest.History) -> pd.DataFrame:
    recomputed = rating.overall_ratings(history.stars, history.cai, history.summary)
    cai_years = {year for year in history.years if rating.rules_for(year).overall_cai}
    reports = reproduction.compare_by_year(recomputed, history.summary, cai_years, rating.cai_value_range())
    return reproduction.reports_table(reports)


def run_backtests(
    history: backtest.History | None = None, forecast_pairs=forecast.FORECAST_PAIRS, bootstrap_draws: int = 1000
) -> BacktestReport:
    history = history or backtest.load_history()
    specs = backtest.specs_for(history)
    engine_table, _ = backtest.engine_backtest(history)
    forecast_table = forecast.forecast_backtest(history, forecast_pairs)
    train_years = [year for year in history.years if year + 1 in history.years and year < HELD_OUT_BASE_YEAR]
    train = year_ahead.year_pairs(history, train_years, specs)
    test = year_ahead.year_pairs(history, [HELD_OUT_BASE_YEAR], specs)
    model = year_ahead.fit_year_ahead(train)
    evaluation, gain = year_ahead.evaluate(model, test, draws=bootstrap_draws)
    return BacktestReport(
        reproduction=reproduction_table(history),
        engine=engine_table,
        cahps=backtest.cahps_backtest(history),
        forecast=forecast_table,
        forecast_winner=forecast.winner(forecast_table),
        year_ahead=evaluation,
        year_ahead_gain={
            "train_pairs": ", ".join(f"{y}->{y + 1}" for y in train_years),
            "train_contracts": len(train),
            **{key: round(value, 2) if isinstance(value, float) else value for key, value in gain.items()},
        },
        year_ahead_params=model.params,
    )
