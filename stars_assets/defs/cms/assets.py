"""CMS Star Ratings reference tables, parsed from data/reference/cms/<year>/, and the overall ratings
recomputed from them with the CMS rating engine. Every star-year folder present is loaded, so a new
year's tables are a new folder (plus its `RatingRules` for the recomputation)."""

from collections.abc import Callable
from pathlib import Path

import dagster as dg
import pandas as pd

from stars_assets import settings
from stars_assets.defs.partitions import WAREHOUSE_POOL
from stars_assets.lib.cms import rating, reproduction, tables

# Every cms asset writes the DuckDB warehouse through the io_manager, hence the single-writer pool.
COMMON = {"group_name": "cms", "kinds": {"pandas", "duckdb"}, "owners": ["team:stars-analytics"], "pool": WAREHOUSE_POOL}
PREVIEW_ROWS = 10


def _column(name: str, type_: str, description: str) -> dg.TableColumn:
    return dg.TableColumn(name, type_, description=description)


STAR_YEAR = _column("star_year", "int", "Star Ratings year, from the folder name")
CONTRACT_ID = _column("contract_id", "string", "CMS contract number (H/R/S/E + 4 digits), trimmed")
MEASURE_ID = _column("measure_id", "string", "CMS measure id for the star year, C01..C33, D01..D12")
MEASURE_NAME = _column("measure_name", "string", "Measure name as published, dashes and quotes repaired")
REASON = _column("reason", "string", "Why there is no value, as a snake_case code (too_small, not_required, ...); null when there is one")
RAW = _column("raw", "string", "The cell as published")

SCHEMAS = {
    "measure_scores": dg.TableSchema(columns=[
        STAR_YEAR, CONTRACT_ID, MEASURE_ID, MEASURE_NAME,
        _column("value", "float", "Measure score in published units; percentages in points (76% -> 76.0)"),
        REASON, RAW,
    ]),
    "measure_stars": dg.TableSchema(columns=[
        STAR_YEAR, CONTRACT_ID, MEASURE_ID, MEASURE_NAME,
        _column("stars", "int", "Measure stars 1..5; null with a reason when not rated"),
        REASON, RAW,
    ]),
    "summary_ratings": dg.TableSchema(columns=[
        STAR_YEAR, CONTRACT_ID,
        _column("organization_type", "string", "Local CCP, Regional CCP, PDP, 1876 Cost, PFFS, MSA, ..."),
        _column("contract_name", "string", "Contract name"),
        _column("organization_marketing_name", "string", "Marketing name"),
        _column("parent_organization", "string", "Parent organization"),
        _column("snp", "bool", "Contract offers a Special Needs Plan"),
        _column("disaster_pct_measurement_year", "float", "% of members in FEMA disaster areas, star year - 2 (HEDIS year)"),
        _column("disaster_pct_prior_measurement_year", "float", "% of members in FEMA disaster areas, star year - 3 (HOS year)"),
        _column("part_c_summary", "float", "Published Part C summary rating (half stars)"),
        _column("part_c_summary_reason", "string", "Reason code when there is no Part C summary"),
        _column("part_d_summary", "float", "Published Part D summary rating (half stars)"),
        _column("part_d_summary_reason", "string", "Reason code when there is no Part D summary"),
        _column("overall", "float", "Published overall rating (MA-PD contracts, half stars)"),
        _column("overall_reason", "string", "Reason code when there is no overall rating"),
    ]),
    "cut_points": dg.TableSchema(columns=[
        STAR_YEAR,
        _column("part", "string", "C or D"),
        _column("org_type", "string", "MA-PD or PDP for Part D; All for Part C (one set for every contract)"),
        MEASURE_ID, MEASURE_NAME,
        _column("stars", "int", "Star band 1..5"),
        _column("lower", "float", "Lower bound of the band; null when open"),
        _column("upper", "float", "Upper bound of the band; null when open"),
        _column("lower_inclusive", "bool", "Score equal to lower earns the band (>=)"),
        _column("upper_inclusive", "bool", "Score equal to upper earns the band (<=)"),
        _column("higher_is_better", "bool", "False for readmissions, complaints, members leaving"),
        _column("decimals", "int", "Precision of the published thresholds; scores are rounded to it first"),
        RAW,
    ]),
    "cai": dg.TableSchema(columns=[
        STAR_YEAR, CONTRACT_ID,
        _column("puerto_rico_only", "bool", "Contract serves only Puerto Rico (adherence measures weigh 0)"),
        _column("part_c_fac", "int", "Part C summary final adjustment category"),
        _column("part_d_mapd_fac", "int", "MA-PD Part D summary final adjustment category"),
        _column("part_d_pdp_fac", "int", "PDP Part D summary final adjustment category"),
        _column("overall_fac", "int", "Overall rating final adjustment category 1..9"),
    ]),
    "overall_ratings_recomputed": dg.TableSchema(columns=[
        STAR_YEAR, CONTRACT_ID,
        _column("measures_rated", "int", "Measure stars in the with-improvement calculation"),
        _column("cai_category", "int", "Overall final adjustment category"),
        _column("cai_value", "float", "CAI added before rounding"),
        _column("weighted_mean_with_improvement", "float", "Weighted mean of measure stars incl. C30/D04"),
        _column("weighted_mean_without_improvement", "float", "Weighted mean excl. C30/D04"),
        _column("variance_with_improvement", "float", "Weighted variance incl. C30/D04"),
        _column("variance_without_improvement", "float", "Weighted variance excl. C30/D04"),
        _column("reward_factor_with_improvement", "float", "0, 0.1, 0.2, 0.3 or 0.4"),
        _column("reward_factor_without_improvement", "float", "0, 0.1, 0.2, 0.3 or 0.4"),
        _column("unrounded_with_improvement", "float", "Mean + reward factor + CAI"),
        _column("unrounded_without_improvement", "float", "Mean + reward factor + CAI"),
        _column("rounded_with_improvement", "float", "Half-star rating incl. C30/D04"),
        _column("rounded_without_improvement", "float", "Half-star rating excl. C30/D04"),
        _column("used_improvement", "bool", "False when the improvement hold-harmless kept the rating without C30/D04"),
        _column("new_measure_hold_harmless_eligible", "bool", "Disaster-affected (>= 25%) with data for a new measure"),
        _column("used_new_measures", "bool", "False when the new-measure hold-harmless dropped C04/C05/C13"),
        _column("overall_rating", "float", "Recomputed overall rating, half stars"),
    ]),
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
    return pd.concat([parse(settings.cms_reference_dir(year)) for year in years], ignore_index=True)


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
measure_scores, measure_stars, summary_ratings, cut_points, cai = (
    _reference_table_asset(name, getattr(tables, name), description) for name, description in REFERENCE_TABLES.items()
)


@dg.asset(
    key=["cms", "overall_ratings_recomputed"],
    ins={
        "measure_stars": dg.AssetIn(key=["cms", "measure_stars"]),
        "cai": dg.AssetIn(key=["cms", "cai"]),
        "summary_ratings": dg.AssetIn(key=["cms", "summary_ratings"]),
    },
    description=(
        "Overall Star Rating of every contract with Part C and Part D measure stars, recomputed from "
        "Measure Stars with the CMS rating engine (weights, reward factor, CAI, hold-harmless rules, "
        "half-star rounding), with every component. Also rates contracts CMS left unrated for too few "
        "measures; metadata compares the recomputation with every published numeric overall rating."
    ),
    metadata={"dagster/column_schema": SCHEMAS["overall_ratings_recomputed"]},
    **COMMON,
)
def overall_ratings_recomputed(
    measure_stars: pd.DataFrame, cai: pd.DataFrame, summary_ratings: pd.DataFrame
) -> dg.Output[pd.DataFrame]:
    recomputed = rating.overall_ratings(measure_stars, cai, summary_ratings)
    report = reproduction.compare_overall_ratings(recomputed, summary_ratings)
    metadata = _table_metadata(recomputed) | {
        "matches": report.matches,
        "published_numeric_ratings": report.total,
        "match_rate": report.match_rate,
        "mismatches": markdown_table(report.mismatches),
    }
    return dg.Output(recomputed, metadata=metadata)
