"""CMS Star Ratings reference tables, parsed from data/reference/cms/<year>/, and the overall ratings
recomputed from them with the CMS rating engine. Every star-year folder present is loaded, so a new
year's tables are a new folder (plus its `RatingRules` for the recomputation)."""

from collections.abc import Callable
from pathlib import Path

import dagster as dg
import pandas as pd

from stars_assets import settings
from stars_assets.defs.partitions import WAREHOUSE_POOL
from stars_assets.lib.cms import backtest, forecast, rating, reproduction, tables

# Every cms asset writes the DuckDB warehouse through the io_manager, hence the single-writer pool.
COMMON = {"group_name": "cms", "kinds": {"pandas", "duckdb"}, "owners": ["team:stars-analytics"], "pool": WAREHOUSE_POOL}
PREVIEW_ROWS = 10


def _column(name: str, type_: str, description: str) -> dg.TableColumn:
    return dg.TableColumn(name, type_, description=description)


STAR_YEAR = _column("star_year", "int", "Star Ratings year, from the folder name")
CONTRACT_ID = _column("contract_id", "string", "CMS contract number (H/R/S/E + 4 digits), trimmed")
MEASURE_ID = _column("measure_id", "string", "CMS measure id for the star year, C01..C33, D01..D12")
MEASURE_NAME = _column("measure_name", "string", "Measure name as published, dashes and quotes repaired")
REASON = _column(
    "reason", "string", "Why there is no value, as a snake_case code (too_small, not_required, ...); null when there is one"
)
RAW = _column("raw", "string", "The cell as published")


def _per_contract_measure(published: dg.TableColumn) -> dg.TableSchema:
    """A published per contract and measure table: the published figure, or the reason there is none."""
    return dg.TableSchema(columns=[STAR_YEAR, CONTRACT_ID, MEASURE_ID, MEASURE_NAME, published, REASON, RAW])


SCHEMAS = {
    "measure_scores": _per_contract_measure(
        _column("value", "float", "Measure score in published units; percentages in points (76% -> 76.0)")
    ),
    "measure_stars": _per_contract_measure(_column("stars", "int", "Measure stars 1..5; null with a reason when not rated")),
    "summary_ratings": dg.TableSchema(
        columns=[
            STAR_YEAR,
            CONTRACT_ID,
            _column("organization_type", "string", "Local CCP, Regional CCP, PDP, 1876 Cost, PFFS, MSA, ..."),
            _column("contract_name", "string", "Contract name"),
            _column("organization_marketing_name", "string", "Marketing name"),
            _column("parent_organization", "string", "Parent organization"),
            _column("snp", "bool", "Contract offers a Special Needs Plan"),
            _column("disaster_pct_measurement_year", "float", "% of members in FEMA disaster areas, star year - 2 (HEDIS year)"),
            _column(
                "disaster_pct_prior_measurement_year", "float", "% of members in FEMA disaster areas, star year - 3 (HOS year)"
            ),
            *[
                column
                for name, rating in (
                    ("part_c_summary", "Part C summary"),
                    ("part_d_summary", "Part D summary"),
                    ("overall", "overall rating (MA-PD contracts)"),
                )
                for column in (
                    _column(name, "float", f"Published {rating}, half stars"),
                    _column(f"{name}_reason", "string", f"Reason code when there is no {rating}"),
                )
            ],
        ]
    ),
    "cut_points": dg.TableSchema(
        columns=[
            STAR_YEAR,
            _column("part", "string", "C or D"),
            _column("org_type", "string", "MA-PD or PDP for Part D; All for Part C (one set for every contract)"),
            MEASURE_ID,
            MEASURE_NAME,
            _column("stars", "int", "Star band 1..5"),
            *[_column(bound, "float", f"{bound.capitalize()} bound of the band; null when open") for bound in ("lower", "upper")],
            *[
                _column(f"{bound}_inclusive", "bool", f"Score equal to {bound} earns the band ({op})")
                for bound, op in (("lower", ">="), ("upper", "<="))
            ],
            _column("higher_is_better", "bool", "False for readmissions, complaints, members leaving"),
            _column("decimals", "int", "Precision of the published thresholds; scores are rounded to it first"),
            RAW,
        ]
    ),
    "cai": dg.TableSchema(
        columns=[
            STAR_YEAR,
            CONTRACT_ID,
            _column("puerto_rico_only", "bool", "Contract serves only Puerto Rico (adherence measures weigh 0)"),
            *[
                _column(f"{rating}_fac", "int", f"{text} final adjustment category (1..9)")
                for rating, text in (
                    ("part_c", "Part C summary"),
                    ("part_d_mapd", "MA-PD Part D summary"),
                    ("part_d_pdp", "PDP Part D summary"),
                    ("overall", "Overall rating"),
                )
            ],
        ]
    ),
    "overall_ratings_recomputed": dg.TableSchema(
        columns=[
            STAR_YEAR,
            CONTRACT_ID,
            _column("measures_rated", "int", "Measure stars in the with-improvement calculation"),
            _column("cai_category", "int", "Overall final adjustment category"),
            _column("cai_value", "float", "CAI added before rounding"),
            # Each figure twice: with the improvement measures C30/D04 and without them.
            *[
                _column(
                    f"{figure}_{variant}_improvement", "float", f"{text}, {'incl.' if variant == 'with' else 'excl.'} C30/D04"
                )
                for figure, text in (
                    ("weighted_mean", "Weighted mean of measure stars"),
                    ("variance", "Weighted variance"),
                    ("reward_factor", "Reward factor: 0, 0.1, 0.2, 0.3 or 0.4"),
                    ("unrounded", "Mean + reward factor + CAI"),
                    ("rounded", "Half-star rating"),
                )
                for variant in ("with", "without")
            ],
            _column("used_improvement", "bool", "False when the improvement hold-harmless kept the rating without C30/D04"),
            _column("new_measure_hold_harmless_eligible", "bool", "Disaster-affected (>= 25%) with data for a new measure"),
            _column("used_new_measures", "bool", "False when the new-measure hold-harmless dropped C04/C05/C13"),
            _column("overall_rating", "float", "Recomputed overall rating, half stars"),
        ]
    ),
}


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


def _reference_table_asset(name: str, parse: Callable[[Path], pd.DataFrame], description: str) -> dg.AssetsDefinition:
    @dg.asset(
        key=["cms", name],
        description=description,
        metadata={"dagster/column_schema": SCHEMAS[name]},
        **COMMON,
    )
    def _asset() -> dg.Output[pd.DataFrame]:
        table = _all_star_years(parse)
        return dg.Output(table, metadata=_table_metadata(table))

    return _asset


# CMS's published tables: what each holds, parsed by stars_assets.lib.cms.tables.
REFERENCE_TABLES = {
    "measure_scores": "CMS Measure Data: each contract's score on each measure, or the reason it has none (long format).",
    "measure_stars": "CMS Measure Stars: each contract's stars (1..5) on each measure, or the reason it has none (long format).",
    "summary_ratings": "CMS Summary Ratings: published Part C, Part D and overall ratings per contract, with disaster percentages.",
    "cut_points": "CMS Part C and Part D cut points: the score bands for 1..5 stars per measure and org type.",
    "cai": "CMS Categorical Adjustment Index: each contract's final adjustment categories and Puerto Rico flag.",
}


def cms_ins(*tables: str) -> dict[str, dg.AssetIn]:
    """Inputs from CMS tables of this layer, each named as its table."""
    return {table: dg.AssetIn(key=["cms", table]) for table in tables}


measure_scores, measure_stars, summary_ratings, cut_points, cai = (
    _reference_table_asset(name, getattr(tables, name), description) for name, description in REFERENCE_TABLES.items()
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
    metadata={"dagster/column_schema": SCHEMAS["overall_ratings_recomputed"]},
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
    metadata={
        "dagster/column_schema": dg.TableSchema(
            columns=[
                *SCHEMAS["cut_points"].columns,
                _column(
                    "forecast_error_mean",
                    "float",
                    "Back-test: mean amount (points) the actual cut points were harder than forecast, same horizon",
                ),
                _column("forecast_error_sd", "float", "Back-test: spread of that error; P(4+) simulates cut points from both"),
            ]
        )
    },
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
