"""CMS Star Ratings reference tables, parsed from data/reference/cms/<year>/, and the overall ratings
recomputed from them with the CMS rating engine. Every star-year folder present is loaded, so a new
year's tables are a new folder (plus its `RatingRules` for the recomputation)."""

from collections.abc import Callable
from pathlib import Path

import dagster as dg
import pandas as pd

from stars_assets import settings
from stars_assets.defs.partitions import WAREHOUSE_POOL
from stars_assets.defs.tables import table_metadata
from stars_assets.lib.cms import backtest, forecast, rating, reproduction, specs, tables
from stars_assets.lib.tables import TableSpec

# Every cms asset writes the DuckDB warehouse through the io_manager, hence the single-writer pool.
COMMON = {"group_name": "cms", "kinds": {"pandas", "duckdb"}, "owners": ["team:stars-analytics"], "pool": WAREHOUSE_POOL}
PREVIEW_ROWS = 10


def markdown_table(rows: pd.DataFrame) -> dg.MarkdownMetadataValue:
    """Rows as a Markdown table for metadata; "none" when there are none."""
    return dg.MetadataValue.md(rows.to_markdown(index=False) if len(rows) else "none")


def _table_metadata(table: pd.DataFrame) -> dict:
    metadata = {
        "dagster/row_count": len(table),
        "star_years": sorted(int(year) for year in table["star_year"].unique()),
        "preview": markdown_table(table.head(PREVIEW_ROWS)),
    }
    if "contract_id" in table:
        metadata["contracts"] = int(table["contract_id"].nunique())
    reason_columns = [column for column in table.columns if column == "reason" or column.endswith("_reason")]
    if reason_columns:
        codes = pd.concat([table[column] for column in reason_columns]).dropna()
        metadata["reason_counts"] = {code: int(count) for code, count in codes.value_counts().items()}
    return metadata


def _all_star_years(parse: Callable[[Path], pd.DataFrame]) -> pd.DataFrame:
    years = tables.available_star_years()
    if not years:
        raise FileNotFoundError("no CMS star-year folders under data/reference/cms")
    parsed = [parse(settings.cms_reference_dir(year)) for year in years]
    # A year without a table (CAI before 2025, CMS cut-point files before 2026) contributes no rows.
    return pd.concat([table for table in parsed if not table.empty] or parsed[:1], ignore_index=True)


def _reference_table_asset(spec: TableSpec) -> dg.AssetsDefinition:
    """A published CMS table over every star year, parsed by the function of lib/cms/tables.py named as the table."""
    parse: Callable[[Path], pd.DataFrame] = getattr(tables, spec.name)

    @dg.asset(key=["cms", spec.name], description=spec.description, metadata=table_metadata(spec), **COMMON)
    def _asset() -> dg.Output[pd.DataFrame]:
        table = _all_star_years(parse)
        return dg.Output(table, metadata=_table_metadata(table))

    return _asset


def cms_ins(*tables: str) -> dict[str, dg.AssetIn]:
    """Inputs from CMS tables of this layer, each named as its table."""
    return {table: dg.AssetIn(key=["cms", table]) for table in tables}


measure_scores, measure_stars, summary_ratings, cut_points, cai = (
    _reference_table_asset(spec) for spec in specs.REFERENCE_TABLES
)


@dg.asset(
    key=["cms", "overall_ratings_recomputed"],
    ins=cms_ins("measure_stars", "cai", "summary_ratings"),
    description=(
        "Overall Star Rating of every contract with Part C and Part D measure stars, recomputed from "
        "Measure Stars with the CMS rating engine (weights, reward factor, CAI, hold-harmless rules, "
        "half-star rounding), with every component, each star year under its own rules. Also rates contracts "
        "CMS left unrated for too few measures; metadata compares the recomputation with every published "
        "numeric overall rating, per star year."
    ),
    metadata=table_metadata(specs.OVERALL_RATINGS_RECOMPUTED),
    **COMMON,
)
def overall_ratings_recomputed(
    measure_stars: pd.DataFrame, cai: pd.DataFrame, summary_ratings: pd.DataFrame
) -> dg.Output[pd.DataFrame]:
    recomputed = rating.overall_ratings(measure_stars, cai, summary_ratings)
    reports = reproduction_by_year(recomputed, summary_ratings)
    metadata = _table_metadata(recomputed) | {
        "matches": sum(report.matches for report in reports.values()),
        "published_numeric_ratings": sum(report.total for report in reports.values()),
        "reproduction_by_year": markdown_table(reproduction.reports_table(reports)),
    }
    return dg.Output(recomputed, metadata=metadata)


def reproduction_by_year(recomputed: pd.DataFrame, summary_ratings: pd.DataFrame) -> dict[int, reproduction.ReproductionReport]:
    """Per star year; a year whose rules carry no CAI values is compared over the range of known CAI values."""
    years = sorted(int(year) for year in summary_ratings["star_year"].unique())
    cai_years = {year for year in years if rating.rules_for(year).overall_cai}
    return reproduction.compare_by_year(recomputed, summary_ratings, cai_years, rating.cai_value_range())


@dg.asset(
    key=["cms", "projection_cut_points"],
    ins=cms_ins("measure_scores", "measure_stars", "summary_ratings", "cai", "cut_points"),
    description=(
        "Cut points for the star year the plan's current measurement year will be rated in (the latest published "
        "star year + 2), forecast by the back-test's winning method from every published year's scores, in the "
        "cut_points layout with the latest year's measure ids; measures the forecast does not cover keep the latest "
        "published bands (raw says which)."
    ),
    metadata=table_metadata(specs.PROJECTION_CUT_POINTS),
    **COMMON,
)
def projection_cut_points(
    measure_scores: pd.DataFrame,
    measure_stars: pd.DataFrame,
    summary_ratings: pd.DataFrame,
    cai: pd.DataFrame,
    cut_points: pd.DataFrame,
) -> dg.Output[pd.DataFrame]:
    history = backtest.history_from_tables(measure_scores, measure_stars, summary_ratings, cai)
    target_year = max(history.years) + forecast.PROJECTION_YEARS_AHEAD
    bands = forecast.projection_cut_points(history, cut_points, target_year)
    # The forecast's own error over the same horizon, measured on the latest published year.
    latest = max(history.years)
    errors = forecast.difficulty_errors(history, latest - forecast.PROJECTION_YEARS_AHEAD, latest)
    bands = bands.assign(forecast_error_mean=float(errors.mean()), forecast_error_sd=float(errors.std()))
    forecast_rows = bands[bands["raw"] == "forecast"]
    return dg.Output(
        bands,
        metadata=_table_metadata(bands)
        | {
            "star_year": target_year,
            "forecast_from_star_year": max(history.years),
            "method": forecast.SHIPPED_METHOD,
            "measures_forecast": int(forecast_rows["measure_id"].nunique()),
            "measures_carried_forward": int(bands.loc[bands["raw"] != "forecast", "measure_id"].nunique()),
            "forecast_error_mean": float(errors.mean()),
            "forecast_error_sd": float(errors.std()),
            "forecast_error_backtest": f"{latest - forecast.PROJECTION_YEARS_AHEAD} -> {latest}, {len(errors)} thresholds",
        },
    )
