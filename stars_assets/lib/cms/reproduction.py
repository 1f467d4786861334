"""Does the rating engine reproduce CMS's published overall ratings? A pure comparison per star year, used by
the asset check, the back-test command and the tests.

A year whose contracts' CAI categories are published (2025, 2026 here) must match exactly. For a year without
them (2023, 2024) a contract's CAI is unknown, so the rating is also compared with what any CAI value CMS has
used could give: the published rating must lie within the range the recomputation spans over that CAI range.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

# The engine must match at least this share of published numeric overall ratings exactly (CAI published) ...
REQUIRED_MATCH_RATE = 0.99
# ... or, without the year's CAI, reach the published rating with some CAI in the known range for this share.
REQUIRED_CAI_RANGE_RATE = 0.95

MISMATCH_COLUMNS = [
    "star_year",
    "contract_id",
    "published",
    "recomputed",
    "weighted_mean_with_improvement",
    "weighted_mean_without_improvement",
    "variance_with_improvement",
    "reward_factor_with_improvement",
    "reward_factor_without_improvement",
    "cai_value",
    "unrounded_with_improvement",
    "unrounded_without_improvement",
    "used_improvement",
    "used_new_measures",
]


@dataclass(frozen=True)
class ReproductionReport:
    total: int
    matches: int
    # One row per contract whose published numeric rating was not reproduced exactly (or not rated at all).
    mismatches: pd.DataFrame
    # Published ratings the recomputation reaches with some CAI value in the known range (= matches when CAI is published).
    matches_within_cai_range: int = 0
    cai_published: bool = True

    @property
    def match_rate(self) -> float:
        return self.matches / self.total if self.total else 0.0

    @property
    def cai_range_rate(self) -> float:
        return self.matches_within_cai_range / self.total if self.total else 0.0

    def passed(self, required_rate: float = REQUIRED_MATCH_RATE) -> bool:
        if self.total == 0:
            return False
        if self.cai_published:
            return self.match_rate >= required_rate
        return self.cai_range_rate >= REQUIRED_CAI_RANGE_RATE


def compare_overall_ratings(
    recomputed: pd.DataFrame, published: pd.DataFrame, cai_range: tuple[float, float] | None = None
) -> ReproductionReport:
    """Compare `overall_rating` (recomputed) with `overall` (Summary Ratings) for every contract CMS
    published a numeric overall rating for; a contract the engine did not rate counts as a mismatch.

    `cai_range` (lowest, highest CAI value) marks the ratings as computed without the year's CAI: a published
    rating then also counts as reached when some CAI in that range rounds the recomputation to it."""
    rated = published.loc[published["overall"].notna(), ["star_year", "contract_id", "overall"]]
    joined = rated.merge(recomputed, on=["star_year", "contract_id"], how="left").rename(
        columns={"overall": "published", "overall_rating": "recomputed"}
    )
    matched = joined["published"] == joined["recomputed"]
    mismatches = joined.loc[~matched, MISMATCH_COLUMNS].reset_index(drop=True)
    if cai_range is None:
        return ReproductionReport(len(joined), int(matched.sum()), mismatches, int(matched.sum()), True)
    unrounded = joined["unrounded_with_improvement"].where(
        joined["used_improvement"].fillna(True).astype(bool), joined["unrounded_without_improvement"]
    )
    lowest, highest = cai_range
    reachable = (unrounded + highest >= joined["published"] - 0.25) & (unrounded + lowest < joined["published"] + 0.25)
    return ReproductionReport(len(joined), int(matched.sum()), mismatches, int((matched | reachable).sum()), False)


REPORT_COLUMNS = [
    "star_year",
    "published_numeric_ratings",
    "matches",
    "match_rate",
    "cai_published",
    "matches_within_cai_range",
    "cai_range_rate",
    "passed",
]


def compare_by_year(
    recomputed: pd.DataFrame, published: pd.DataFrame, cai_published_years: set[int], cai_range: tuple[float, float]
) -> dict[int, ReproductionReport]:
    """One report per star year of `published`."""
    return {
        int(year): compare_overall_ratings(
            recomputed[recomputed["star_year"] == year],
            year_published,
            None if int(year) in cai_published_years else cai_range,
        )
        for year, year_published in published.groupby("star_year")
    }


def reports_table(reports: dict[int, ReproductionReport]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            (
                year,
                r.total,
                r.matches,
                round(r.match_rate, 4),
                r.cai_published,
                r.matches_within_cai_range,
                round(r.cai_range_rate, 4),
                r.passed(),
            )
            for year, r in sorted(reports.items())
        ],
        columns=REPORT_COLUMNS,
    )
