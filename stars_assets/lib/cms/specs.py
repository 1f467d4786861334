"""The cms tables (CMS's published Star Ratings tables as parsed by lib/cms/tables.py, and what is computed
from them), each defined once as a TableSpec; their Dagster column schemas derive from these.
No Dagster here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from stars_assets.lib.tables import Column, TableSpec

# The ratings CMS publishes per contract, the ratings CAI adjusts (each with its final adjustment category) and the
# figures of the overall-rating calculation the recomputation keeps.
PUBLISHED_RATINGS = {
    "part_c_summary": "Part C summary",
    "part_d_summary": "Part D summary",
    "overall": "overall rating (MA-PD contracts)",
}
CAI_RATINGS = {
    "part_c": "Part C summary",
    "part_d_mapd": "MA-PD Part D summary",
    "part_d_pdp": "PDP Part D summary",
    "overall": "Overall rating",
}
RATING_FIGURES = {
    "weighted_mean": "Weighted mean of measure stars",
    "variance": "Weighted variance",
    "reward_factor": "Reward factor: 0, 0.1, 0.2, 0.3 or 0.4",
    "unrounded": "Mean + reward factor + CAI",
    "rounded": "Half-star rating",
}

STAR_YEAR = Column("star_year", "BIGINT", "Star Ratings year, from the folder name", nullable=False)
CONTRACT_ID = Column("contract_id", "VARCHAR", "CMS contract number (H/R/S/E + 4 digits), trimmed", nullable=False)
MEASURE_ID = Column("measure_id", "VARCHAR", "CMS measure id for the star year, C01..C33, D01..D12", nullable=False)
MEASURE_NAME = Column("measure_name", "VARCHAR", "Measure name as published, dashes and quotes repaired", nullable=False)
REASON = Column(
    "reason", "VARCHAR", "Why there is no value, as a snake_case code (too_small, not_required, ...); null when there is one"
)
RAW = Column("raw", "VARCHAR", "The cell as published", nullable=False)


def _per_contract(name: str, description: str, columns: tuple[Column, ...], key: tuple[Column, ...] = ()) -> TableSpec:
    """A table with a row per star year, contract and `key` columns."""
    leading = (STAR_YEAR, CONTRACT_ID, *key)
    return TableSpec(f"cms.{name}", description, (*leading, *columns), primary_key=tuple(c.name for c in leading))


def _per_contract_measure(name: str, description: str, published: Column) -> TableSpec:
    """A published per contract and measure table: the published figure, or the reason there is none."""
    return _per_contract(name, description, (MEASURE_NAME, published, REASON, RAW), key=(MEASURE_ID,))


def _family(name: str, type_: str, description: str, members: Iterable[tuple[str, str]]) -> tuple[Column, ...]:
    """Columns of one kind, one per (key, text) member, their names and descriptions formatted with it."""
    return tuple(Column(name.format(key), type_, description.format(text)) for key, text in members)


def _with_reasons(figures: Mapping[str, str], type_: str, described: str) -> tuple[Column, ...]:
    """Each published figure beside the reason code CMS gives when there is none."""
    return tuple(
        column
        for name, text in figures.items()
        for column in (
            Column(name, type_, described.format(text)),
            Column(f"{name}_reason", "VARCHAR", f"Reason code when there is no {text}"),
        )
    )


MEASURE_SCORES = _per_contract_measure(
    "measure_scores",
    "CMS Measure Data: each contract's score on each measure, or the reason it has none (long format).",
    Column("value", "DOUBLE", "Measure score in published units; percentages in points (76% -> 76.0)"),
)
MEASURE_STARS = _per_contract_measure(
    "measure_stars",
    "CMS Measure Stars: each contract's stars (1..5) on each measure, or the reason it has none (long format).",
    Column("stars", "BIGINT", "Measure stars 1..5; null with a reason when not rated"),
)

SUMMARY_RATINGS = _per_contract(
    "summary_ratings",
    "CMS Summary Ratings: published Part C, Part D and overall ratings per contract, with disaster percentages.",
    (
        Column("organization_type", "VARCHAR", "Local CCP, Regional CCP, PDP, 1876 Cost, PFFS, MSA, ..."),
        Column("contract_name", "VARCHAR", "Contract name"),
        Column("organization_marketing_name", "VARCHAR", "Marketing name"),
        Column("parent_organization", "VARCHAR", "Parent organization"),
        Column("snp", "BOOLEAN", "Contract offers a Special Needs Plan", nullable=False),
        *[
            Column(f"disaster_pct_{year}", "DOUBLE", f"% of members in FEMA disaster areas, star year - {lag} ({source} year)")
            for year, lag, source in (("measurement_year", 2, "HEDIS"), ("prior_measurement_year", 3, "HOS"))
        ],
        *_with_reasons(PUBLISHED_RATINGS, "DOUBLE", "Published {}, half stars"),
    ),
)

CUT_POINTS = TableSpec(
    "cms.cut_points",
    "CMS Part C and Part D cut points: the score bands for 1..5 stars per measure and org type.",
    (
        STAR_YEAR,
        Column("part", "VARCHAR", "C or D", nullable=False),
        Column("org_type", "VARCHAR", "MA-PD or PDP for Part D; All for Part C (one set for every contract)", nullable=False),
        MEASURE_ID,
        MEASURE_NAME,
        Column("stars", "BIGINT", "Star band 1..5", nullable=False),
        *[Column(bound, "DOUBLE", f"{bound.capitalize()} bound of the band; null when open") for bound in ("lower", "upper")],
        *[
            Column(f"{bound}_inclusive", "BOOLEAN", f"Score equal to {bound} earns the band ({op})", nullable=False)
            for bound, op in (("lower", ">="), ("upper", "<="))
        ],
        Column("higher_is_better", "BOOLEAN", "False for readmissions, complaints, members leaving", nullable=False),
        Column("decimals", "BIGINT", "Precision of the published thresholds; scores are rounded to it first", nullable=False),
        RAW,
    ),
)

CAI = _per_contract(
    "cai",
    "CMS Categorical Adjustment Index: each contract's final adjustment categories and Puerto Rico flag.",
    (
        Column("puerto_rico_only", "BOOLEAN", "Contract serves only Puerto Rico (adherence measures weigh 0)", nullable=False),
        *_family("{}_fac", "BIGINT", "{} final adjustment category (1..9)", CAI_RATINGS.items()),
    ),
)

# The published tables, parsed each by the function of lib/cms/tables.py named as the table.
REFERENCE_TABLES = (MEASURE_SCORES, MEASURE_STARS, SUMMARY_RATINGS, CUT_POINTS, CAI)

OVERALL_RATINGS_RECOMPUTED = _per_contract(
    "overall_ratings_recomputed",
    "Overall Star Rating of every contract with Part C and Part D measure stars, recomputed with the CMS rating engine.",
    (
        Column("measures_rated", "BIGINT", "Measure stars in the with-improvement calculation", nullable=False),
        Column("cai_category", "BIGINT", "Overall final adjustment category; null when the contract has none"),
        Column("cai_value", "DOUBLE", "CAI added before rounding", nullable=False),
        # Each figure twice: with the improvement measures C30/D04 and without them.
        *_family(
            "{}_improvement",
            "DOUBLE",
            "{} C30/D04",
            (
                (f"{figure}_{variant}", f"{text}, {included}")
                for figure, text in RATING_FIGURES.items()
                for variant, included in (("with", "incl."), ("without", "excl."))
            ),
        ),
        Column("used_improvement", "BOOLEAN", "False when the improvement hold-harmless left out C30/D04", nullable=False),
        Column(
            "new_measure_hold_harmless_eligible", "BOOLEAN", "Disaster-affected (>= 25%), with new-measure data", nullable=False
        ),
        Column("used_new_measures", "BOOLEAN", "False when the new-measure hold-harmless dropped C04/C05/C13", nullable=False),
        Column("overall_rating", "DOUBLE", "Recomputed overall rating, half stars"),
    ),
)

PROJECTION_CUT_POINTS = TableSpec(
    "cms.projection_cut_points",
    "Cut points forecast for the star year the plan's current measurement year will be rated in, in the cut_points layout.",
    (
        *CUT_POINTS.columns,
        Column(
            "forecast_error_mean",
            "DOUBLE",
            "Back-test: mean amount (points) the actual cut points were harder than forecast, same horizon",
        ),
        Column("forecast_error_sd", "DOUBLE", "Back-test: spread of that error; P(4+) simulates cut points from both"),
    ),
)
