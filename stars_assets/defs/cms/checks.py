"""Asset checks on the CMS reference tables: one rule each, named check_<dimension>_<field>.

They are blocking: the model layer trains on these tables and the levers read the cut points, so a
bad parse must stop a run before anything downstream uses it. Their inputs load through the DuckDB
io_manager, so they share the warehouse pool with the assets.
"""

import functools

import dagster as dg
import pandas as pd

from stars_assets.defs.partitions import WAREHOUSE_POOL
from stars_assets.lib.cms import reproduction

from .assets import cut_points, markdown_table, measure_stars, overall_ratings_recomputed, reproduction_by_year, summary_ratings

EXAMPLES = 10
# Every check here blocks, and reads the warehouse through the io_manager (hence the pool).
blocking_check = functools.partial(dg.asset_check, blocking=True, pool=WAREHOUSE_POOL)


@blocking_check(
    asset=overall_ratings_recomputed,
    additional_ins={"summary_ratings": dg.AssetIn(key=["cms", "summary_ratings"])},
    description=(
        f"Per star year, the year's rules reproduce at least {reproduction.REQUIRED_MATCH_RATE:.0%} of CMS's published "
        "numeric overall ratings exactly when the year's CAI is published; without it, at least "
        f"{reproduction.REQUIRED_CAI_RANGE_RATE:.0%} are reached by some CAI value in the known range. Every mismatch is listed."
    ),
)
def check_reproduction_overall_rating(
    overall_ratings_recomputed: pd.DataFrame, summary_ratings: pd.DataFrame
) -> dg.AssetCheckResult:
    reports = reproduction_by_year(overall_ratings_recomputed, summary_ratings)
    mismatches = pd.concat([report.mismatches for report in reports.values()], ignore_index=True)
    by_year = reproduction.reports_table(reports)
    return dg.AssetCheckResult(
        passed=bool(reports) and all(report.passed() for report in reports.values()),
        metadata={
            "matches": int(by_year["matches"].sum()),
            "published_numeric_ratings": int(by_year["published_numeric_ratings"].sum()),
            "required_match_rate": reproduction.REQUIRED_MATCH_RATE,
            "required_cai_range_rate": reproduction.REQUIRED_CAI_RANGE_RATE,
            "reproduction_by_year": markdown_table(by_year),
            "years_failing": [int(year) for year in by_year.loc[~by_year["passed"], "star_year"]],
            "mismatch_count": len(mismatches),
            "mismatches": markdown_table(mismatches.head(EXAMPLES * 4)),
        },
    )


@blocking_check(
    asset=measure_stars,
    description="Every measure star is 1..5, and every row has either stars or a reason code (never both, never neither).",
)
def check_validity_measure_stars(measure_stars: pd.DataFrame) -> dg.AssetCheckResult:
    rated = measure_stars["stars"].notna()
    out_of_range = rated & ~measure_stars["stars"].isin([1, 2, 3, 4, 5])
    has_reason = measure_stars["reason"].notna()
    ambiguous = rated == has_reason
    invalid = measure_stars[out_of_range | ambiguous]
    return dg.AssetCheckResult(
        passed=invalid.empty,
        metadata={
            "rows": len(measure_stars),
            "stars_out_of_range": int(out_of_range.sum()),
            "rows_with_both_or_neither_stars_and_reason": int(ambiguous.sum()),
            "examples": markdown_table(invalid.head(EXAMPLES)),
        },
    )


@blocking_check(
    asset=cut_points,
    additional_ins={"measure_stars": dg.AssetIn(key=["cms", "measure_stars"])},
    description="Every measure that has stars in a star year with CMS cut-point files has a full set of 1..5 star bands.",
)
def check_completeness_cut_points(cut_points: pd.DataFrame, measure_stars: pd.DataFrame) -> dg.AssetCheckResult:
    keys = ["star_year", "measure_id"]
    # Years with CMS's cut-point files here; the others' thresholds come from the compiled table.
    years_with_files = set(cut_points["star_year"].unique())
    rated = measure_stars["stars"].notna() & measure_stars["star_year"].isin(years_with_files)
    rated_measures = measure_stars.loc[rated, keys].drop_duplicates()
    bands = cut_points.groupby([*keys, "org_type"])["stars"].apply(lambda stars: sorted(stars) == [1, 2, 3, 4, 5])
    complete = bands[bands].reset_index()[keys].drop_duplicates()
    missing = rated_measures.merge(complete, on=keys, how="left", indicator=True)
    missing = missing.loc[missing["_merge"] == "left_only", keys]
    return dg.AssetCheckResult(
        passed=missing.empty,
        metadata={
            "measures_with_stars": len(rated_measures),
            "measures_without_complete_cut_points": len(missing),
            "examples": markdown_table(missing.head(EXAMPLES)),
        },
    )


@blocking_check(
    asset=summary_ratings,
    description="One summary-ratings row per star year and contract, so ratings join to contracts without fan-out.",
)
def check_uniqueness_contract_id(summary_ratings: pd.DataFrame) -> dg.AssetCheckResult:
    duplicated = summary_ratings[summary_ratings.duplicated(["star_year", "contract_id"], keep=False)]
    return dg.AssetCheckResult(
        passed=duplicated.empty,
        metadata={
            "rows": len(summary_ratings),
            "duplicate_rows": len(duplicated),
            "examples": markdown_table(duplicated[["star_year", "contract_id"]].head(EXAMPLES)),
        },
    )
