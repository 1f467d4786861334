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

from .assets import cut_points, markdown_table, measure_stars, overall_ratings_recomputed, summary_ratings

EXAMPLES = 10
# Every check here blocks, and reads the warehouse through the io_manager (hence the pool).
blocking_check = functools.partial(dg.asset_check, blocking=True, pool=WAREHOUSE_POOL)


@blocking_check(
    asset=overall_ratings_recomputed,
    additional_ins={"summary_ratings": dg.AssetIn(key=["cms", "summary_ratings"])},
    description=(
        f"The rating engine reproduces at least {reproduction.REQUIRED_MATCH_RATE:.0%} of CMS's published "
        "numeric overall ratings exactly; every mismatch is listed."
    ),
)
def check_reproduction_overall_rating(
    overall_ratings_recomputed: pd.DataFrame, summary_ratings: pd.DataFrame
) -> dg.AssetCheckResult:
    report = reproduction.compare_overall_ratings(overall_ratings_recomputed, summary_ratings)
    return dg.AssetCheckResult(
        passed=report.passed(),
        metadata={
            "matches": report.matches,
            "published_numeric_ratings": report.total,
            "match_rate": report.match_rate,
            "required_match_rate": reproduction.REQUIRED_MATCH_RATE,
            "mismatch_count": len(report.mismatches),
            "mismatches": markdown_table(report.mismatches),
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
    description="Every measure that has stars in a star year has a full set of 1..5 star bands in that year's cut points.",
)
def check_completeness_cut_points(cut_points: pd.DataFrame, measure_stars: pd.DataFrame) -> dg.AssetCheckResult:
    keys = ["star_year", "measure_id"]
    rated_measures = measure_stars.loc[measure_stars["stars"].notna(), keys].drop_duplicates()
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
