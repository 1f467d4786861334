"""The measure crosswalk: one row per measure and star year (data/reference/cms/measure_crosswalk.csv).

CMS renumbers measures almost every year (readmissions was C15 in 2025 and C18 in 2026), so the
product names measures by a stable `measure_key` and looks up a year's id, weight, direction and
domain here. This file is the only place a CMS measure id is written; adding a star year is a new
block of rows (and the year's tables folder).
"""

from __future__ import annotations

import functools
from pathlib import Path

import pandas as pd

from stars_assets import settings

CROSSWALK_FILE = "measure_crosswalk.csv"
COLUMNS = [
    "measure_key",
    "star_year",
    "measure_id",
    "measure_name",
    "part",
    "domain",
    "weight_category",
    "weight",
    "higher_is_better",
    "improvement",
    "new_measure_disaster_year",
    "overall_duplicate_of",
    "puerto_rico_zero_weight",
    "cut_point_code",
    # The star year the measure's current specification entered the ratings, where that is 2023 or later (new
    # or substantively respecified measures); CMS applies no cut-point guardrails in its first three years.
    "specification_star_year",
]


def cms_reference_root() -> Path:
    return settings.cms_reference_dir(0).parent


@functools.cache
def _load(path: Path) -> pd.DataFrame:
    table = pd.read_csv(path, dtype={"measure_id": str, "cut_point_code": str, "overall_duplicate_of": str})
    for column in ("new_measure_disaster_year", "specification_star_year"):
        table[column] = table[column].astype("Int64")
    duplicated = table[table.duplicated(["star_year", "measure_id"]) | table.duplicated(["star_year", "measure_key"])]
    if not duplicated.empty:
        raise ValueError(f"measure crosswalk has duplicate rows: {duplicated[['star_year', 'measure_id']].to_dict('records')}")
    return table[COLUMNS]


def crosswalk(path: Path | None = None) -> pd.DataFrame:
    """Every (measure_key, star_year) row; a copy, so callers may modify it."""
    return _load(Path(path or cms_reference_root() / CROSSWALK_FILE)).copy()


def star_years() -> list[int]:
    return sorted(int(year) for year in crosswalk()["star_year"].unique())


def year_measures(star_year: int) -> pd.DataFrame:
    """The crosswalk rows of one star year, indexed by measure_id."""
    rows = crosswalk().query("star_year == @star_year")
    if rows.empty:
        raise KeyError(f"no crosswalk rows for star year {star_year}; add them to {CROSSWALK_FILE}")
    return rows.set_index("measure_id")


def measure_id(measure_key: str, star_year: int) -> str:
    """The CMS id of a measure in a star year (KeyError when the measure was not rated that year)."""
    ids = ids_by_key(star_year)
    if measure_key not in ids:
        raise KeyError(f"{measure_key} is not a {star_year} star measure")
    return ids[measure_key]


def ids_by_key(star_year: int) -> dict[str, str]:
    rows = year_measures(star_year)
    return dict(zip(rows["measure_key"], rows.index))


def keys_by_id(star_year: int) -> dict[str, str]:
    rows = year_measures(star_year)
    return dict(zip(rows.index, rows["measure_key"]))


def with_measure_keys(table: pd.DataFrame) -> pd.DataFrame:
    """Add measure_key (and the crosswalk's direction, weight, domain) to a long table keyed by star_year and
    measure_id; raises when a (year, id) is missing from the crosswalk, so a new year cannot slip through."""
    extra = ["measure_key", "higher_is_better", "weight", "domain", "part", "improvement", "cut_point_code"]
    keyed = table.merge(
        crosswalk()[["star_year", "measure_id", *extra]], on=["star_year", "measure_id"], how="left", validate="many_to_one"
    )
    missing = keyed.loc[keyed["measure_key"].isna(), ["star_year", "measure_id"]].drop_duplicates()
    if not missing.empty:
        raise KeyError(f"measures missing from {CROSSWALK_FILE}: {missing.to_dict('records')}")
    return keyed


# The vendors and the warehouse send care-gap measures in this star year's numbering.
VENDOR_MEASURE_ID_STAR_YEAR = 2026


def care_gap_measure_ids(star_year: int = VENDOR_MEASURE_ID_STAR_YEAR) -> dict[str, str]:
    """Care-gap measure code (BCS, ...) -> CMS measure id in the star year."""
    from stars_assets.lib import vocabulary as v

    return {code: measure_id(key, star_year) for code, key in v.CARE_GAP_MEASURE_KEYS.items()}


def adherence_measure_ids(star_year: int | None = None) -> dict[str, str]:
    """Drug class -> CMS id of its adherence measure in the star year (by default the latest published)."""
    from stars_assets.lib import vocabulary as v

    year = star_year or max(star_years())
    return {drug_class: measure_id(key, year) for drug_class, key in v.ADHERENCE_MEASURE_KEYS.items()}
